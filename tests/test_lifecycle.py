"""initialize / settings / progress / shutdown over stdio with a real LSP client."""

from __future__ import annotations

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from conftest import TINY, server_command
from lsp_helpers import CAPABILITIES, close, wait_until


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(TINY)))
async def client(lsp_client: LanguageClient):
    yield
    await close(lsp_client)


async def test_capabilities_and_progress(client: LanguageClient):
    result = await client.initialize_session(
        types.InitializeParams(capabilities=CAPABILITIES, initialization_options={"maxTokens": 16})
    )
    caps = result.capabilities
    assert caps.inline_completion_provider
    assert caps.completion_provider is not None
    assert caps.code_action_provider.resolve_provider is True
    kinds = {k.value if hasattr(k, "value") else k for k in caps.code_action_provider.code_action_kinds}
    assert "refactor.rewrite.dgLsp.rewriteSelection" in kinds and "refactor.rewrite.dgLsp.fillHoles" in kinds
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.reloadModel"))
    assert status["loaded"] is True and status["error"] is None
    # work-done progress: begin and end were reported for the model load
    kinds = [getattr(v, "kind", None) or v.get("kind") for values in client.progress_reports.values() for v in values]
    assert "begin" in kinds and "end" in kinds
    await client.shutdown_session()


async def test_invalid_setting_is_named_and_default_used(client: LanguageClient):
    await client.initialize_session(
        types.InitializeParams(
            capabilities=CAPABILITIES,
            initialization_options={"dgLsp": {"maxTokens": "lots", "denoisingSteps": -3, "seed": 7}},
        )
    )
    await wait_until(lambda: len(client.messages) >= 2, timeout=10)
    messages = " ".join(m.message for m in client.messages)
    assert "maxTokens" in messages and "denoisingSteps" in messages
    assert "seed" not in messages
    await client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(TINY.parent / "no-such-model")))
async def broken(lsp_client: LanguageClient):
    yield
    await close(lsp_client)


async def test_missing_model_shows_message_and_answers_empty(broken: LanguageClient):
    await broken.initialize_session(types.InitializeParams(capabilities=CAPABILITIES))
    await wait_until(lambda: broken.messages, timeout=60)
    assert any("no-such-model" in m.message for m in broken.messages)
    broken.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri="file:///a.py", language_id="python", version=1, text="x = \n")
        )
    )
    res = await broken.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri="file:///a.py"),
            position=types.Position(line=0, character=4),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert res is None or len(res.items) == 0
    await broken.shutdown_session()
