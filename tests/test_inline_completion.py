"""textDocument/inlineCompletion end to end: real server process, real client."""

from __future__ import annotations

from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import DATA
from lsp_helpers import apply_edit, error_count, open_doc, utf16_offset

SAMPLE = (DATA / "completion" / "sample.py").read_text()


def positions(text: str) -> list[types.Position]:
    """Cursor positions an editor would ask at: line ends and after `= ` / `(`."""
    out = []
    for i, line in enumerate(text.split("\n")):
        if line.strip():
            out.append(types.Position(line=i, character=len(line)))
        for marker in ("= ", "("):
            j = line.find(marker)
            if j >= 0:
                out.append(types.Position(line=i, character=j + len(marker)))
    return out[::3]  # a dozen positions spread over the file


async def inline(client: LanguageClient, uri: str, pos: types.Position, invoked: bool = True):
    kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos,
            context=types.InlineCompletionContext(trigger_kind=kind),
        )
    )


async def test_items_insert_at_cursor_and_keep_syntax(client: LanguageClient):
    uri = "file:///work/sample.py"
    open_doc(client, uri, SAMPLE)
    base_errors = error_count(SAMPLE)
    answered = 0
    for pos in positions(SAMPLE):
        res = await inline(client, uri, pos)
        assert isinstance(res, types.InlineCompletionList)
        for item in res.items:
            answered += 1
            assert item.range is not None and item.range.start == pos
            assert item.insert_text.strip()
            new = apply_edit(SAMPLE, item.range, item.insert_text)
            a, b = utf16_offset(SAMPLE, item.range.start), utf16_offset(SAMPLE, item.range.end)
            assert new[:a] == SAMPLE[:a] and new[a + len(item.insert_text):] == SAMPLE[b:]
            assert error_count(new) <= base_errors, (pos, item.insert_text)
    # the random-weight model still produces valid fragments at some positions
    assert answered > 0


async def test_automatic_trigger_inside_string_or_comment_is_empty(client: LanguageClient):
    uri = "file:///work/strings.py"
    text = 'x = "hello wor"  # a comment here\n'
    open_doc(client, uri, text)
    in_string = types.Position(line=0, character=text.index("wor") + 3)
    in_comment = types.Position(line=0, character=text.index("comment") + 3)
    for pos in (in_string, in_comment):
        res = await inline(client, uri, pos, invoked=False)
        assert len(res.items) == 0


async def test_incremental_edits_are_seen(client: LanguageClient):
    # the random-weight model's own answer: the document's memory would steer it into the text it
    # repeats (tests/test_memory.py tests that); settings restored at the end
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"dgLsp": {"memory": "off"}}))
    uri = "file:///work/typing.py"
    open_doc(client, uri, "def f(x):\n    return x\n", version=1)
    # type "y = " on a new line after the function, one character at a time
    text = "def f(x):\n    return x\n"
    line, version = 2, 1
    for ch in "y = ":
        version += 1
        pos = types.Position(line=line, character=len(text.split("\n")[line]))
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=pos, end=pos), text=ch)],
            )
        )
        text = apply_edit(text, types.Range(start=pos, end=pos), ch)
    res = await inline(client, uri, types.Position(line=2, character=4))
    assert text == "def f(x):\n    return x\ny = "
    for item in res.items:
        assert item.range.start == types.Position(line=2, character=4)
        new = apply_edit(text, item.range, item.insert_text)
        assert new.startswith(text) and error_count(new) == 0
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"dgLsp": {}}))


async def test_typing_a_proposal_is_served_from_the_cache(client: LanguageClient):
    """After a proposal, typing its first character answers with the rest, without the model."""
    uri = "file:///work/cache.py"
    open_doc(client, uri, SAMPLE)
    found = None
    for pos in positions(SAMPLE):
        res = await inline(client, uri, pos)
        if res.items and len(res.items[0].insert_text) > 1 and res.items[0].range.end == pos:
            found = pos, res.items[0].insert_text
            break
    assert found is not None, "the tiny model proposed nothing longer than one character"
    pos, proposal = found
    before = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=pos, end=pos), text=proposal[0])],
        )
    )
    after_typing = types.Position(line=pos.line, character=pos.character + len(proposal[0].encode("utf-16-le")) // 2)
    res = await inline(client, uri, after_typing)
    assert [i.insert_text for i in res.items] == [proposal[1:]]
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))
    assert status["stats"]["completion_cache_hits"] == before["stats"]["completion_cache_hits"] + 1
    # typing something else is a miss: the model runs again (whatever it proposes)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=after_typing, end=after_typing), text="\u00a7")],
        )
    )
    await inline(client, uri, types.Position(line=after_typing.line, character=after_typing.character + 1))
    status2 = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))
    assert status2["stats"]["completion_cache_hits"] == status["stats"]["completion_cache_hits"]
