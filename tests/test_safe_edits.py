"""Safe edits: every edit the server returns lands exactly where it says, and nowhere else.

Hypothesis draws documents (astral characters, tabs, CRLF, form feeds), cursors and
selections; a real LSP client asks the real server (tiny checkpoint) for an inline
completion, a completion item and the code actions, resolves them, and applies each edit
the way an editor does. Checked for every edit:

- its range lies in the document, on code-point boundaries (never inside a surrogate pair);
- completions start at the cursor and only replace text they re-insert (closing brackets);
- a rewrite replaces exactly the selection; fill-holes edits lie inside the selection's function;
- after the client applies the edit (and tells the server with didChange on that range), the
  server's text is the client's text: outside the range everything is identical;
- a WorkspaceEdit carries the document version, and resolving it after the document moved on
  is refused with ContentModified (-32801).
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from lsp_helpers import open_doc

SEEN: Counter[str] = Counter()
PROPS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LINES = st.sampled_from([
    "def f(x):", "    return x + ", "    y = foo(", "s = '😀é中'", "x = [1, 2", "\tz = {", "# comment 𝔘 ok", "",
    "if a:", "    pass", "class C:", "    def m(self, 𝔘):", "        return (", "t = \"a\" +\x0c", "print(x)",
    "    for i in range(", "        total += ", "}", "value = f(g(h(1)))",
])
_BREAK = re.compile(r"\r\n|\r|\n")
_n = iter(range(10**9))


@st.composite
def documents(draw):
    sep = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    return sep.join(draw(st.lists(LINES, min_size=1, max_size=10))) + draw(st.sampled_from(["", sep]))


def lsp_lines(text: str) -> list[str]:
    return _BREAK.split(text)


def units(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def offset_of(text: str, pos: types.Position) -> int:
    """Code-point offset of an LSP (UTF-16) position; fails on a position inside a surrogate pair."""
    starts = [0] + [m.end() for m in _BREAK.finditer(text)]
    row = lsp_lines(text)[pos.line]
    bounds = {units(row[:k]): k for k in range(len(row) + 1)}
    assert pos.character in bounds, f"{pos} is not on a code-point boundary of {row!r}"
    return starts[pos.line] + bounds[pos.character]


def position(data, text: str) -> types.Position:
    lines = lsp_lines(text)
    line = data.draw(st.integers(0, len(lines) - 1))
    return types.Position(line=line, character=units(lines[line][: data.draw(st.integers(0, len(lines[line])))]))


def is_subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


async def server_has(client: LanguageClient, uri: str, text: str) -> None:
    """The server's copy of ``uri`` is ``text`` (its length, and the context before its end)."""
    lines = lsp_lines(text)
    ctx = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="dg-lsp.showContext", arguments=[uri, {"line": len(lines) - 1, "character": units(lines[-1])}]))
    assert ctx["offset"] == len(text) and text.endswith(ctx["prefix"]), (ctx, text)


async def apply_and_sync(client: LanguageClient, uri: str, text: str, version: int, rng: types.Range, new: str) -> str:
    a, b = offset_of(text, rng.start), offset_of(text, rng.end)
    assert 0 <= a <= b <= len(text)
    after = text[:a] + new + text[b:]
    assert after[:a] == text[:a] and after[a + len(new):] == text[b:]
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(range=rng, text=new)]))
    await server_has(client, uri, after)
    return after


def check_completion_range(text: str, cursor: types.Position, rng: types.Range, new: str) -> None:
    assert rng.start == cursor, (rng, cursor)
    a, b = offset_of(text, rng.start), offset_of(text, rng.end)
    assert a <= b <= len(text)
    assert is_subsequence(text[a:b].strip(), new), f"replaces {text[a:b]!r} that {new!r} does not re-insert"


@PROPS
@given(text=documents(), data=st.data())
async def test_completion_edits_change_only_their_range(client: LanguageClient, text: str, data):
    uri = f"file:///safe/c{next(_n)}.py"
    open_doc(client, uri, text)
    cursor = position(data, text)
    inline = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=cursor,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
    comp = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=cursor))
    SEEN["completion requests"] += 2
    edits = [(i.range, i.insert_text) for i in (inline.items if inline else [])]
    edits += [(i.text_edit.range, i.text_edit.new_text) for i in (comp.items if comp else [])]
    version = 1
    for rng, new in edits[:1]:  # apply one: the other was computed for the same text
        SEEN["completion edits applied"] += 1
        check_completion_range(text, cursor, rng, new)
        version += 1
        text = await apply_and_sync(client, uri, text, version, rng, new)
    for rng, new in edits:
        assert isinstance(new, str) and rng.start == cursor
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))


@st.composite
def documents_with_holes(draw):
    """A document holding a function whose body has a hole (``pass``), among drawn lines."""
    sep = draw(st.sampled_from(["\n", "\r\n"]))
    body = draw(st.lists(st.sampled_from(["    x = foo(", "    y = 😀 + 1", "    total += 1", "\tz = {"]), max_size=3))
    body.insert(draw(st.integers(0, len(body))), "    pass")
    lines = draw(st.lists(LINES, max_size=3)) + ["def g(a):"] + body + draw(st.lists(LINES, max_size=3))
    return sep.join(lines) + sep


@settings(PROPS, max_examples=60)
@given(text=documents(), data=st.data(), move_on=st.booleans())
async def test_code_action_edits_change_only_their_range(client: LanguageClient, text: str, data, move_on: bool):
    p, q = position(data, text), position(data, text)
    await exercise_code_actions(client, text, p, q, move_on)


@settings(PROPS, max_examples=20)
@given(text=documents_with_holes(), data=st.data(), move_on=st.booleans())
async def test_fill_holes_edits_change_only_their_range(client: LanguageClient, text: str, data, move_on: bool):
    """Fill-holes edits: a selection inside a function with a hole (a rewrite of the tiny random
    model's usually changes nothing, so the applied WorkspaceEdits come from here)."""
    lines = lsp_lines(text)
    row = next(i for i, ln in enumerate(lines) if ln == "    pass")
    p = types.Position(line=row, character=data.draw(st.integers(0, 8)))
    await exercise_code_actions(client, text, p, p, move_on)


async def exercise_code_actions(client: LanguageClient, text: str, p: types.Position, q: types.Position,
                                move_on: bool) -> None:
    uri = f"file:///safe/a{next(_n)}.py"
    open_doc(client, uri, text, version=7)
    start, end = sorted([p, q], key=lambda x: (x.line, x.character))
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=start, end=end),
        context=types.CodeActionContext(diagnostics=[])))
    SEEN["code action requests"] += 1
    for action in actions or []:
        if move_on:  # the document changes between the offer and the resolve: refused
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=8),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text + "\n# edited\n")]))
            with pytest.raises(JsonRpcException) as err:
                await client.code_action_resolve_async(action)
            assert err.value.code == -32801, err.value
            SEEN["stale resolves refused"] += 1
            break
        try:
            resolved = await client.code_action_resolve_async(action)
        except JsonRpcException as exc:  # RequestFailed: no edit (e.g. superseded); never anything else
            assert exc.code == -32803, exc
            continue
        if resolved.edit is None:  # a rewrite that changes nothing offers no edit (no change suggested)
            assert "Rewrite" in action.title
            SEEN["rewrites kept unchanged"] += 1
            continue
        change = resolved.edit.document_changes[0]
        assert change.text_document.uri == uri and change.text_document.version == 7
        a, b = offset_of(text, start), offset_of(text, end)
        spans = sorted((offset_of(text, e.range.start), offset_of(text, e.range.end), e.new_text) for e in change.edits)
        for (s0, e0, _), (s1, _, _) in zip(spans, spans[1:]):
            assert e0 <= s1, "overlapping edits"
        if "Rewrite" in action.title:
            assert [(s0, e0) for s0, e0, _ in spans] == [(a, b)], (spans, a, b)
        out, last = [], 0
        for s0, e0, new in spans:
            out += [text[last:s0], new]
            last = e0
        after = "".join(out) + text[last:]
        # outside the edited spans, the text is byte-identical
        assert after.startswith(text[: spans[0][0]]) and after.endswith(text[spans[-1][1]:])
        SEEN["workspace edits applied"] += 1
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=8),
            content_changes=[types.TextDocumentContentChangePartial(range=e.range, text=e.new_text)
                             for e in sorted(change.edits, key=lambda e: (e.range.start.line, e.range.start.character),
                                             reverse=True)]))
        await server_has(client, uri, after)
        break
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))


def test_edits_were_exercised():
    """The properties above saw real edits, not only empty answers (counts go to the docs)."""
    print("\nsafe-edit cases:", dict(SEEN))
    assert SEEN["completion edits applied"] >= 3 and SEEN["workspace edits applied"] >= 3, SEEN
    assert SEEN["stale resolves refused"] >= 1, SEEN
