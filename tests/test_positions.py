"""UTF-16 positions after emoji and CJK text cut exactly the right prefix (through the server)."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from lsp_helpers import open_doc, position_of

CURSOR = "<|cursor|>"
CASES = [
    ('greeting = "😀 héllo 漢字"; value = <|cursor|>len(greeting)\n', "python", "x.py"),
    ('s = "𝄞𝄞"  # 👍🏽 family 👨‍👩‍👧\nt = s + <|cursor|>"end"\n', "python", "x.py"),
    ("const 名前 = '🎉'; const n = <|cursor|>名前.length;\n", "javascript", "x.js"),
    ('fn main() { let s = "日本語😀"; let n = <|cursor|>s.len(); }\n', "rust", "x.rs"),
]


@pytest.mark.parametrize("marked,language,name", CASES)
async def test_prefix_ends_exactly_at_cursor(client: LanguageClient, marked: str, language: str, name: str):
    text, pos = position_of(marked, CURSOR)
    i = marked.index(CURSOR)
    uri = f"file:///work/pos-{abs(hash(marked))}/{name}"
    open_doc(client, uri, text, language_id=language)
    ctx = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="dg-lsp.showContext", arguments=[uri, {"line": pos.line, "character": pos.character}])
    )
    assert ctx["offset"] == i
    assert text[: i].endswith(ctx["prefix"]) and ctx["prefix"].endswith(marked[:i].split("\n")[-1])
    assert text[i:].startswith(ctx["suffix"]) and ctx["suffix"].startswith(marked[i + len(CURSOR):].split("\n")[0])
    # and a completion there inserts at that very position
    res = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    for item in res.items:
        assert item.range.start == pos


async def test_position_inside_surrogate_pair_and_past_line_end(client: LanguageClient):
    uri = "file:///work/pos-bad.py"
    open_doc(client, uri, 'x = "😀"\n')
    from pygls.exceptions import JsonRpcInvalidParams, JsonRpcException

    with pytest.raises(JsonRpcException) as err:
        await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=0, character=40),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        )
    assert err.value.code == JsonRpcInvalidParams.CODE
