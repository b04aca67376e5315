"""$/cancelRequest between denoising steps, and the newest request for a document wins."""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled
from pytest_lsp import ClientServerConfig, LanguageClient

from conftest import TINY, server_command
from lsp_helpers import CAPABILITIES, close, open_doc

# many denoising steps (random weights never stop early) over several canvases of a block body:
# a request takes long enough to be cancelled mid-way (a single line is one 16-token canvas,
# which the tiny model denoises in well under a second even at 400 steps)
SLOW = {"denoisingSteps": 512, "maxTokens": 128}
TEXT = "def f(x):\n    \n\ny = 1\n"
POS = types.Position(line=1, character=4)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(TINY)), scope="module")
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=CAPABILITIES, initialization_options=SLOW))
    await lsp_client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.reloadModel"))
    yield
    await close(lsp_client)


def params(uri: str) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=POS,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )


async def test_cancel_in_flight_request(client: LanguageClient):
    uri = "file:///work/cancel.py"
    open_doc(client, uri, TEXT)
    loop = asyncio.get_running_loop()
    fut = asyncio.ensure_future(client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params(uri), msg_id="slow-1"))
    await asyncio.sleep(0.5)  # the request is denoising now
    t0 = loop.time()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="slow-1"))
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(fut, 30)
    assert err.value.code == JsonRpcRequestCancelled.CODE
    # the server is still up and the worker is free again soon (it stopped between steps)
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))
    assert status["loaded"]
    ctx = await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="dg-lsp.showContext", arguments=[uri, {"line": 1, "character": 4}])
        ),
        30,
    )
    assert ctx["prefix"].endswith("def f(x):\n    ")
    assert loop.time() - t0 < 30


async def test_newer_request_supersedes_older(client: LanguageClient):
    uri = "file:///work/supersede.py"
    open_doc(client, uri, TEXT)
    first = asyncio.ensure_future(client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params(uri), msg_id="old"))
    await asyncio.sleep(0.3)
    second = asyncio.ensure_future(client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params(uri), msg_id="new"))
    old = await asyncio.wait_for(first, 60)
    assert isinstance(old, types.InlineCompletionList) and len(old.items) == 0  # answered, empty
    new = await asyncio.wait_for(second, 120)
    assert isinstance(new, types.InlineCompletionList)


async def test_edit_drops_stale_request(client: LanguageClient):
    uri = "file:///work/stale-edit.py"
    open_doc(client, uri, TEXT, version=1)
    fut = asyncio.ensure_future(client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params(uri), msg_id="stale"))
    await asyncio.sleep(0.3)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=TEXT + "z = 1\n")],
        )
    )
    res = await asyncio.wait_for(fut, 60)
    assert len(res.items) == 0  # never a result computed for an older version
