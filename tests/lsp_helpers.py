"""Helpers for the end-to-end tests: open documents, apply edits as an editor would."""

from __future__ import annotations

import tree_sitter
import tree_sitter_python
from lsprotocol import types
from pytest_lsp import LanguageClient

PY = tree_sitter.Language(tree_sitter_python.language())

CAPABILITIES = types.ClientCapabilities(
    window=types.WindowClientCapabilities(work_done_progress=True),
    text_document=types.TextDocumentClientCapabilities(
        code_action=types.CodeActionClientCapabilities(
            resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"]),
            data_support=True,
        ),
        inline_completion=types.InlineCompletionClientCapabilities(),
    ),
    general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
)


def open_doc(client: LanguageClient, uri: str, text: str, language_id: str = "python", version: int = 1) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=version, text=text)
        )
    )


def utf16_offset(text: str, pos: types.Position) -> int:
    """Code-point offset of an LSP (UTF-16) position, computed independently of the server."""
    lines = text.split("\n")
    units, idx = 0, 0
    line = lines[pos.line]
    while units < pos.character:
        units += 2 if ord(line[idx]) > 0xFFFF else 1
        idx += 1
    return sum(len(ln) + 1 for ln in lines[: pos.line]) + idx


def apply_edit(text: str, rng: types.Range, new_text: str) -> str:
    a, b = utf16_offset(text, rng.start), utf16_offset(text, rng.end)
    return text[:a] + new_text + text[b:]


def position_of(text: str, marker: str) -> tuple[str, types.Position]:
    """Remove ``marker`` from ``text``; return the text and the marker's UTF-16 position."""
    i = text.index(marker)
    before = text[:i]
    line = before.count("\n")
    col = before[before.rfind("\n") + 1 :]
    char = sum(2 if ord(c) > 0xFFFF else 1 for c in col)
    return text[:i] + text[i + len(marker) :], types.Position(line=line, character=char)


async def wait_until(predicate, timeout: float = 60.0, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it holds (notifications may arrive before we start waiting)."""
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met within %.0f s" % timeout)
        await asyncio.sleep(interval)


async def close(client: LanguageClient, timeout: float = 30.0) -> None:
    """shutdown + exit; kill the server if it does not go (pygls' client.stop waits forever)."""
    import asyncio

    try:
        await asyncio.wait_for(client.shutdown_session(), timeout)
    except Exception:
        pass
    finally:
        server = getattr(client, "_server", None)
        if server is not None and server.returncode is None:
            server.kill()


def error_count(text: str, parser: tree_sitter.Parser | None = None) -> int:
    """ERROR/MISSING nodes, counted with tree-sitter directly (not with dg-lsp's own check);
    Python unless ``parser`` says otherwise."""
    tree = (parser or tree_sitter.Parser(PY)).parse(text.encode())
    n, stack = 0, [tree.root_node]
    while stack:
        node = stack.pop()
        n += node.is_error or node.is_missing
        stack.extend(node.children)
    return n
