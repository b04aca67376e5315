"""textDocument/completion end to end: items carry a textEdit that covers what they replace."""

from __future__ import annotations

from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import DATA
from lsp_helpers import apply_edit, error_count, open_doc, utf16_offset
from test_inline_completion import positions

SAMPLE = (DATA / "completion" / "sample.py").read_text()


async def test_items_apply_cleanly(client: LanguageClient):
    uri = "file:///work/sample_completion.py"
    open_doc(client, uri, SAMPLE)
    base = error_count(SAMPLE)
    seen = 0
    for pos in positions(SAMPLE):
        res = await client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=pos,
                context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
            )
        )
        assert isinstance(res, types.CompletionList)
        for item in res.items:
            seen += 1
            edit = item.text_edit
            assert isinstance(edit, types.TextEdit)
            # single-line range that starts at the cursor (clients require it to contain the cursor)
            assert edit.range.start == pos and edit.range.end.line == pos.line
            assert edit.range.end.character >= pos.character
            assert item.label and item.filter_text is not None
            new = apply_edit(SAMPLE, edit.range, edit.new_text)
            a = utf16_offset(SAMPLE, edit.range.start)
            b = utf16_offset(SAMPLE, edit.range.end)
            assert new[:a] == SAMPLE[:a] and new[a + len(edit.new_text):] == SAMPLE[b:]
            assert error_count(new) <= base
    assert seen > 0


async def test_closing_characters_are_replaced_not_duplicated(client: LanguageClient):
    """When the line after the cursor holds only closers and the item ends with them, its range covers them."""
    uri = "file:///work/closers.py"
    text = "def f(a, b):\n    return max(a, b)\n\n\nprint(f(1, 2))\n"
    open_doc(client, uri, text)
    pos = types.Position(line=4, character=len("print(f(1, 2"))
    res = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=pos)
    )
    for item in res.items:
        new = apply_edit(text, item.text_edit.range, item.text_edit.new_text)
        # whatever the model proposed, the brackets of the line stay balanced
        last = new.split("\n")[4]
        assert last.count("(") == last.count(")")
