"""Prefetch: after an edit, the server encodes the context at the cursor while the model is idle,
so the completion at the next pause finds it in the prompt cache."""

from __future__ import annotations

import asyncio

import pytest_lsp
from conftest import DATA, TINY, server_command
from lsp_helpers import CAPABILITIES, close, open_doc
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

SAMPLE = (DATA / "prefetch" / "bisect_sample.py").read_text()  # CPython's bisect.py (PSF-2.0)
URI = "file:///work/bisect_sample.py"
LINE = 40  # a line in the middle: the prompt has a suffix and a prefix


async def status(client: LanguageClient) -> dict:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))


async def type_then_complete(client: LanguageClient) -> dict:
    """Open the sample, wait for the model, type one character at LINE, then (prefetch or not)
    ask for a completion after it; the server's status afterwards."""
    for _ in range(600):
        if (await status(client))["loaded"]:
            break
        await asyncio.sleep(0.05)
    open_doc(client, URI, SAMPLE)
    pos = types.Position(line=LINE, character=0)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
        content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=pos, end=pos), text="x")],
    ))
    for _ in range(100):  # the prefetch, when on, runs to the end
        if (await status(client))["stats"]["prefetches"]:
            break
        await asyncio.sleep(0.05)
    await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=types.Position(line=LINE, character=1),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    ))
    return (await status(client))["stats"]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(TINY)))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=CAPABILITIES))
    yield
    await close(lsp_client)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(TINY)))
async def client_off(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=CAPABILITIES, initialization_options={"prefetch": False})
    )
    yield
    await close(lsp_client)


async def test_the_edit_prefetches_the_prompt(client: LanguageClient):
    stats = await type_then_complete(client)
    assert stats["prefetches"] == 1 and stats["prefetched_tokens"] > 100
    assert stats["answered"] == 1
    # the request re-encoded only the end of the prompt: the prefetch had the rest
    assert stats["prompt_cache_reuse_mean"] > 0.9


async def test_without_prefetch_the_request_encodes_everything(client_off: LanguageClient):
    stats = await type_then_complete(client_off)
    assert stats["prefetches"] == 0 and stats["prefetched_tokens"] == 0
    assert stats["answered"] == 1 and stats["prompt_cache_reuse_mean"] < 0.1
