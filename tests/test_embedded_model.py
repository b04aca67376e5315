"""The checkpoint shipped in model/ is the default behind the CLI and the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from safetensors import safe_open

from conftest import DATA, EMBEDDED, server_command
from lsp_helpers import CAPABILITIES, close, open_doc

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_embedded_checkpoint_files():
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        assert (EMBEDDED / name).exists(), name
    weights = EMBEDDED / "model.safetensors"
    assert weights.stat().st_size <= 64 * 1024 * 1024
    with safe_open(str(weights), framework="pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert dtypes <= {"BF16", "F16"}, dtypes
    assert json.loads((EMBEDDED / "config.json").read_text())["model_type"] == "diffusion_gemma"


def test_cli_complete_offline_uses_embedded_model():
    sample = DATA / "completion" / "sample.py"
    out = subprocess.run(
        [sys.executable, "-m", "dg_lsp", "complete", str(sample), "--line", "10", "--character", "11", "--json"],
        env=OFFLINE, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    # the embedded model answers with its causal draft (generation_config draft "answer"): no steps
    assert rec["mode"] == "single" and rec["decoder"] == "draft" and rec["steps"] == 0
    assert "engine_draft" in rec["timings_ms"] and 0.0 <= rec["confidence"] <= 1.0
    assert isinstance(rec["completion"], str) and "\n" not in rec["completion"]


def test_cli_doctor():
    out = subprocess.run([sys.executable, "-m", "dg_lsp", "doctor"], env=OFFLINE, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "python" in out.stdout and str(EMBEDDED.name) in out.stdout
    assert "show/withhold gate: learned (gate.json" in out.stdout  # the embedded model ships its gate


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(None), server_env=OFFLINE), scope="module")
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=CAPABILITIES))
    yield
    await close(lsp_client)


async def test_server_default_model_answers(client: LanguageClient):
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.reloadModel"))
    assert status["loaded"] and status["model"]["path"].endswith("model")
    uri = "file:///work/embedded.py"
    open_doc(client, uri, (DATA / "completion" / "sample.py").read_text())
    res = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=10, character=11),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert isinstance(res, types.InlineCompletionList)
    for item in res.items:
        assert item.range.start == types.Position(line=10, character=11)


async def test_prompt_budget_defaults_to_the_checkpoints_training_context(client: LanguageClient):
    """contextTokens 0 (the default): the embedded model gets prompts of the size it was trained
    on (config.json's context_tokens), not the generic 1024; an explicit budget overrides it."""
    from tokenizers import Tokenizer

    trained = json.loads((EMBEDDED / "config.json").read_text())["context_tokens"]
    tok = Tokenizer.from_file(str(EMBEDDED / "tokenizer.json"))
    text = sysconfig_file("argparse.py")
    line = text[: text.index("def parse_known_args")].count("\n") + 1
    uri = "file:///work/budget/argparse.py"
    open_doc(client, uri, text)

    async def context_tokens() -> int:
        ctx = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="dg-lsp.showContext", arguments=[uri, {"line": line, "character": 8}])
        )
        return len(tok.encode(ctx["prefix"]).ids) + len(tok.encode(ctx["suffix"]).ids)

    default = await context_tokens()  # (loads the model)
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))
    assert status["model"]["context_tokens"] == trained
    assert trained // 2 < default <= trained, default
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"dgLsp": {"contextTokens": 1024}}))
    try:
        await wait_until_async(lambda: context_tokens(), lambda n: n > 4 * trained)
    finally:
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"dgLsp": {"contextTokens": 0}}))


def sysconfig_file(name: str) -> str:
    import sysconfig
    from pathlib import Path

    return Path(sysconfig.get_paths()["stdlib"], name).read_text(encoding="utf-8")


async def wait_until_async(get, ok, timeout: float = 30.0):
    import asyncio
    import time

    end = time.monotonic() + timeout
    while True:
        value = await get()
        if ok(value):
            return value
        assert time.monotonic() < end, f"still {value}"
        await asyncio.sleep(0.1)
