"""textDocument/codeAction end to end: "Rewrite selection" and "Fill holes", resolved and applied."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from conftest import DATA
from lsp_helpers import apply_edit, open_doc, utf16_offset

HOLES = (DATA / "code_actions" / "holes.py").read_text()


def pos(text: str, needle: str, after: bool = False) -> types.Position:
    i = text.index(needle) + (len(needle) if after else 0)
    line = text[:i].count("\n")
    return types.Position(line=line, character=i - (text.rfind("\n", 0, i) + 1))


async def actions(client: LanguageClient, uri: str, rng: types.Range) -> list[types.CodeAction]:
    res = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    return list(res or [])


def apply_workspace_edit(text: str, edit: types.WorkspaceEdit, uri: str, version: int) -> tuple[str, list[types.Range]]:
    (change,) = edit.document_changes
    assert change.text_document.uri == uri and change.text_document.version == version
    # apply from the end so earlier ranges stay valid
    edits = sorted(change.edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True)
    for e in edits:
        text = apply_edit(text, e.range, e.new_text)
    return text, [e.range for e in change.edits]


async def test_fill_holes_edits_only_the_holes(client: LanguageClient):
    uri = "file:///work/holes.py"
    open_doc(client, uri, HOLES, version=3)
    cursor = pos(HOLES, "total = 0")
    found = await actions(client, uri, types.Range(start=cursor, end=cursor))
    fill = [a for a in found if a.kind == "refactor.rewrite.dgLsp.fillHoles"]
    assert len(fill) == 1 and "3 holes" in fill[0].title
    assert fill[0].edit is None  # computed lazily in codeAction/resolve
    resolved = await client.code_action_resolve_async(fill[0])
    new, ranges = apply_workspace_edit(HOLES, resolved.edit, uri, 3)
    # exactly the three hole markers are replaced
    expected = [
        (utf16_offset(HOLES, pos(HOLES, m)), utf16_offset(HOLES, pos(HOLES, m, after=True)))
        for m in ("pass", "# TODO: compute the mean", "    ...\n")
    ]
    got = sorted((utf16_offset(HOLES, r.start), utf16_offset(HOLES, r.end)) for r in ranges)
    assert got[0] == expected[0] and got[1] == expected[1]
    assert HOLES[got[2][0] : got[2][1]] == "..."
    # everything outside the holes is byte-identical
    assert new.startswith(HOLES[: got[0][0]])
    assert new.endswith(HOLES[got[2][1] :])
    assert "def untouched(x):\n    return math.sqrt(x)\n" in new


async def test_rewrite_selection_changes_only_the_selection(client: LanguageClient):
    uri = "file:///work/rewrite.py"
    open_doc(client, uri, HOLES, version=1)
    sel = types.Range(start=pos(HOLES, "total = 0"), end=pos(HOLES, "total = 0", after=True))
    found = await actions(client, uri, sel)
    rewrite = [a for a in found if a.kind == "refactor.rewrite.dgLsp.rewriteSelection"]
    assert len(rewrite) == 1
    resolved = await client.code_action_resolve_async(rewrite[0])
    # the tiny random model doubts everything alike and is sure of no change: the rewrite keeps
    # the selection (no edit, the user is told); an edit, when there is one, is the selection's
    # (tests/test_rewrite_doubt.py: what changes with the embedded model)
    if resolved.edit is None:
        return
    new, ranges = apply_workspace_edit(HOLES, resolved.edit, uri, 1)
    assert ranges == [sel]
    a, b = utf16_offset(HOLES, sel.start), utf16_offset(HOLES, sel.end)
    assert new.startswith(HOLES[:a]) and new.endswith(HOLES[b:])
    assert new != HOLES, "a no-op edit was offered"


async def test_only_filter_and_empty_selection(client: LanguageClient):
    uri = "file:///work/only.py"
    open_doc(client, uri, HOLES)
    cursor = pos(HOLES, "total = 0")
    found = await actions(client, uri, types.Range(start=cursor, end=cursor))
    assert not [a for a in found if a.kind == "refactor.rewrite.dgLsp.rewriteSelection"]  # nothing selected
    res = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=cursor, end=cursor),
            context=types.CodeActionContext(diagnostics=[], only=[types.CodeActionKind.QuickFix]),
        )
    )
    assert not res
    untouched = pos(HOLES, "return math.sqrt(x)")
    assert not await actions(client, uri, types.Range(start=untouched, end=untouched))


async def test_resolve_after_edit_is_content_modified(client: LanguageClient):
    uri = "file:///work/stale.py"
    open_doc(client, uri, HOLES, version=1)
    cursor = pos(HOLES, "total = 0")
    (fill,) = [a for a in await actions(client, uri, types.Range(start=cursor, end=cursor)) if "Fill" in a.title]
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=HOLES + "\n# changed\n")],
        )
    )
    with pytest.raises(JsonRpcException) as err:
        await client.code_action_resolve_async(fill)
    assert err.value.code == -32801
