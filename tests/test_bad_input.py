"""Bad input gets a clear JSON-RPC error or an empty result, and the server stays up."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pytest_lsp import ClientServerConfig, LanguageClient

from conftest import CACHE, TINY, server_command
from lsp_helpers import CAPABILITIES, close, open_doc, wait_until

CORRUPT = CACHE / "corrupt-checkpoint"


def make_corrupt() -> Path:
    if CORRUPT.exists():
        shutil.rmtree(CORRUPT)
    shutil.copytree(TINY, CORRUPT)
    weights = CORRUPT / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated download
    return CORRUPT


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(make_corrupt())), scope="module")
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=CAPABILITIES))
    yield
    await close(lsp_client)


def inline(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )


async def test_corrupt_model_named_then_fixed_by_setting(client: LanguageClient):
    await wait_until(lambda: client.messages, timeout=60)
    assert any("model.safetensors" in m.message and "corrupt" in m.message for m in client.messages)
    open_doc(client, "file:///work/a.py", "x = \n")
    res = await client.text_document_inline_completion_async(inline("file:///work/a.py", 0, 4))
    assert len(res.items) == 0
    # fixing the setting reloads the model without a restart
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"dgLsp": {"model": str(TINY)}}))
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.reloadModel"))
    assert status["loaded"] and status["error"] is None


async def test_unknown_document_is_invalid_params(client: LanguageClient):
    with pytest.raises(JsonRpcException) as err:
        await client.text_document_inline_completion_async(inline("file:///never/opened.py", 0, 0))
    assert err.value.code == JsonRpcInvalidParams.CODE


@pytest.mark.parametrize("line,character", [(5, 0), (0, 99), (1, 1)])
async def test_position_outside_document(client: LanguageClient, line: int, character: int):
    open_doc(client, "file:///work/b.py", "x = 1\n")
    with pytest.raises(JsonRpcException) as err:
        await client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri="file:///work/b.py"),
                position=types.Position(line=line, character=character),
            )
        )
    assert err.value.code == JsonRpcInvalidParams.CODE


async def test_unsupported_language_is_empty(client: LanguageClient):
    open_doc(client, "file:///work/c.cob", "IDENTIFICATION DIVISION.\n", language_id="cobol")
    res = await client.text_document_inline_completion_async(inline("file:///work/c.cob", 0, 5))
    assert len(res.items) == 0
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri="file:///work/c.cob"),
            range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=5)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert not actions


async def test_still_serving_after_errors(client: LanguageClient):
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))
    assert status["loaded"]
