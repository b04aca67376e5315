"""Rewrite selection with the embedded model, through the real server: only what the model doubts
changes, and a selection it is sure of comes back unchanged (no edit, a message saying so).

The lines are chosen by the model, not by hand: the engine (in this process, the same checkpoint
and code as the server) says which lines of a test file it is sure of (the best change it could
make is far from worth its cost, ``dg_lsp.engine.revise``); the corruption is a misspelling of a
name the file uses elsewhere on such a line.
"""

from __future__ import annotations

import os
import re

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from conftest import DATA, server_command
from lsp_helpers import CAPABILITIES, close, open_doc, wait_until
from test_code_actions import actions, apply_workspace_edit, pos

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TEXT = (DATA / "heldout" / "inventory.py").read_text()
SURE = -8.0  # nats: the best change the model could make misses its cost by at least this much


@pytest.fixture(scope="module")
def engine():
    from dg_lsp.engine import Engine

    return Engine.load(None)


def window(text: str, a: int, b: int) -> tuple[str, str]:
    """The prefix and suffix the code action passes (``code_actions.window``, budget 192)."""
    from dg_lsp.features.code_actions import window as cut

    lo, hi = cut(text, a, b, 4 * 192)
    return text[lo:a], text[b:hi]


def revise_line(engine, text: str, line: str):
    import torch

    from dg_lsp.engine.revise import revise

    a = text.index(line)
    prefix, suffix = window(text, a, a + len(line))
    with torch.inference_mode():
        return revise(engine, prefix, line, suffix, language="python")


@pytest.fixture(scope="module")
def sure_lines(engine) -> list[str]:
    """Statements of the file's functions the model is sure of."""
    lines = [ln.strip() for ln in TEXT.splitlines() if ln.startswith("        ") and not ln.strip().startswith(('"', "#"))]
    out = []
    for line in lines:
        rev = revise_line(engine, TEXT, line)
        if not rev.changed and rev.gain <= SURE and TEXT.count(line) == 1:
            out.append(line)
    assert out, "the embedded model is sure of no line of the file"
    return out


def misspelled(line: str) -> tuple[str, str, str] | None:
    """(line with its longest name that the file uses elsewhere misspelled, the name, the misspelling)."""
    names = sorted({m.group() for m in re.finditer(r"[A-Za-z_]\w{3,}", line)
                    if len(re.findall(rf"\b{m.group()}\b", TEXT)) > 1 and m.group() != "self"}, key=len, reverse=True)
    for name in names:
        bad = name[0] + name[2] + name[1] + name[3:]  # two letters swapped
        if bad != name and bad not in TEXT:
            return re.sub(rf"\b{name}\b", bad, line, count=1), name, bad
    return None


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(None), server_env=OFFLINE), scope="module")
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=CAPABILITIES))
    yield
    await close(lsp_client)


async def rewrite(client: LanguageClient, uri: str, text: str, line: str) -> types.CodeAction:
    open_doc(client, uri, text)
    sel = types.Range(start=pos(text, line), end=pos(text, line, after=True))
    (action,) = [a for a in await actions(client, uri, sel) if a.kind == "refactor.rewrite.dgLsp.rewriteSelection"]
    return await client.code_action_resolve_async(action)


async def test_a_line_the_model_is_sure_of_is_left_unchanged(client: LanguageClient, sure_lines):
    line = sure_lines[0]
    n = len(client.messages)
    resolved = await rewrite(client, "file:///work/sure/inventory.py", TEXT, line)
    assert resolved.edit is None, "a rewrite of a line the model is sure of offered an edit"
    await wait_until(lambda: any("no change suggested" in m.message for m in client.messages[n:]), timeout=30)


async def test_a_rewrite_changes_only_what_the_model_doubts(client: LanguageClient, engine, sure_lines):
    picked = next((line, m) for line in sure_lines if (m := misspelled(line)) is not None)
    line, (bad_line, name, bad) = picked
    text = TEXT.replace(line, bad_line, 1)
    # in this process: the misspelled name holds the tokens the model doubts most
    rev = revise_line(engine, text, bad_line)
    at = bad_line.index(bad)
    worst = max(rev.doubts, key=lambda d: d.score)
    assert at <= worst.start < at + len(bad) or worst.start <= at < worst.end, (worst, bad_line)
    # through the server: the edit replaces the selection, and only the doubted name changes
    resolved = await rewrite(client, "file:///work/doubt/inventory.py", text, bad_line)
    assert resolved.edit is not None, "the misspelling was not corrected"
    new, ranges = apply_workspace_edit(text, resolved.edit, "file:///work/doubt/inventory.py", 1)
    a = text.index(bad_line)
    assert ranges == [types.Range(start=pos(text, bad_line), end=pos(text, bad_line, after=True))]
    assert new == TEXT, (bad_line, new[a: a + len(line) + 20])
    changed = [i for i, (x, y) in enumerate(zip(bad_line, line)) if x != y]
    assert changed and all(at <= i < at + len(bad) for i in changed)


async def test_status_and_doctor_say_how_each_operation_answers(client: LanguageClient):
    import subprocess
    import sys

    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))
    ops = status["operations"]
    assert ops["inline_completion"].startswith("draft") and ops["fill_holes"].startswith("draft")
    assert ops["rewrite_selection"].startswith("doubt-scored canvas")
    out = subprocess.run([sys.executable, "-m", "dg_lsp", "doctor"], env=OFFLINE, capture_output=True, text=True,
                         timeout=300)
    assert "rewrite selection: doubt-scored canvas" in out.stdout and "fill holes: draft" in out.stdout, out.stdout


AUTH = (DATA / "rewrite" / "auth.py").read_text()  # ``locked`` repeats the comparison ``check`` makes


@pytest.mark.parametrize("memory", ["auto", "off"])
async def test_the_memory_of_the_file_restores_what_the_model_alone_cannot(memory: str):
    """``return self.failures.value <= 10``: the comparison ``check`` makes two functions above is
    ``>= 10``. With the token memory of the document (without the selection) the rewrite restores
    it; the model alone is not sure enough of any change and offers none."""
    from pytest_lsp import make_test_lsp_client

    good = "return self.failures.value >= 10"
    bad = "return self.failures.value <= 10"
    at = AUTH.rindex(good)
    text = AUTH[:at] + bad + AUTH[at + len(good):]
    client = make_test_lsp_client()
    await client.start_io(*server_command(None), env=OFFLINE)
    try:
        await client.initialize_session(types.InitializeParams(
            capabilities=CAPABILITIES, initialization_options={"memory": memory, "crossFile": "off"}))
        uri = f"file:///work/memory-{memory}/auth.py"
        resolved = await rewrite(client, uri, text, bad)
        if memory == "off":
            assert resolved.edit is None
            return
        assert resolved.edit is not None, "the memory did not restore the comparison"
        new, ranges = apply_workspace_edit(text, resolved.edit, uri, 1)
        assert ranges == [types.Range(start=pos(text, bad), end=pos(text, bad, after=True))]
        assert new == AUTH
        # the line as the author wrote it is left alone
        kept = await rewrite(client, f"file:///work/memory-{memory}/clean/auth.py", AUTH, good)
        assert kept.edit is None
    finally:
        await close(client)
