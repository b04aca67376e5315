"""The token memory (dg_lsp/memory): longest-suffix matches against a brute-force search, the
mixing, and through the real server on the embedded model: a name defined only in the
workspace is completed with the memory and not without it."""

from __future__ import annotations

import asyncio
import random
import shutil

import numpy as np
import pytest
import torch
from lsprotocol import types
from pytest_lsp import LanguageClient, make_test_lsp_client

from conftest import DATA, EMBEDDED, server_command
from dg_lsp.memory.fusion import Memory, MixParams, Scope
from dg_lsp.memory.index import MAX_MATCH, TokenIndex
from lsp_helpers import CAPABILITIES, close, open_doc

FILES = DATA / "memory"


def brute(seqs, ctx, exclude=()):
    """(length, sorted positions) of the longest suffix of ``ctx`` followed by a token."""
    t = [-1]
    for s in seqs:
        t += list(s) + [-1]
    best, pos = 0, []
    for k in range(1, min(len(ctx), MAX_MATCH) + 1):
        pat = ctx[-k:]
        ps = [p for p in range(k, len(t) - 1) if t[p - k + 1 : p + 1] == pat and t[p + 1] >= 0
              and not any(a <= p < b for a, b in exclude)]
        if not ps:
            break
        best, pos = k, ps
    return best, sorted(pos)


@pytest.mark.parametrize("suffix_array", [False, True])
def test_match_and_advance_equal_brute_force(suffix_array):
    rng = random.Random(0)
    for _ in range(200):
        v = rng.choice([2, 3, 5])
        seqs = [[rng.randrange(v) for _ in range(rng.randrange(0, 40))] for _ in range(rng.randrange(1, 5))]
        ctx = [rng.randrange(v) for _ in range(rng.randrange(1, 30))]
        ix = TokenIndex(seqs, sa_min=1 if suffix_array else 10**9)
        assert (ix.sa is not None) == suffix_array
        # a hidden sequence (an open document's file in the workspace index): its whole span
        a = int(ix.starts[0])
        span = [(a, a + int(ix.lengths[0]) + 1)] if rng.random() < 0.3 else []
        excl = np.array(span, dtype=np.int64) if span else None
        m = ix.match(ctx, exclude=excl)
        assert (m.length, sorted(m.positions.tolist())) == brute(seqs, ctx, span)
        t = rng.randrange(v)
        m2 = ix.advance(m, t, ctx + [t], exclude=excl)
        assert (m2.length, sorted(m2.positions.tolist())) == brute(seqs, ctx + [t], span)


def test_document_split_at_the_cursor_is_not_its_own_match():
    """The text before the cursor always "occurs" (it is in the index): only occurrences with a
    token after them count, so the memory answers from the rest of the document."""
    before, after = [5, 6, 7, 8, 9, 5, 6], [1, 2, 3]
    ix = TokenIndex([before, after])
    m = ix.match(before)
    assert m.length == 2 and ix.next_counts(m)[0].tolist() == [7]  # "5 6" was followed by 7 earlier


def test_mix_keeps_a_distribution_and_is_silent_without_a_match():
    ix = TokenIndex([[1, 2, 3, 1, 2, 4]])
    mem = Memory([Scope("document", ix)], MixParams(weights=(("document", 0.5),)))
    p = torch.full((8,), 1 / 8)
    c = mem.cursor([1, 2])
    q = c.mix(p)
    assert abs(float(q.sum()) - 1) < 1e-6
    assert q[3] == q[4] and q[3] > q[0]  # 3 and 4 each followed "1 2" once
    c.push(3)
    assert c.evidence[-1].supplied and c.evidence[-1].length == 2
    silent = mem.cursor([7])  # 7 never occurs
    assert silent.mix(p) is p


def test_logprob_and_top_read_the_mix_one_token_at_a_time():
    """``Cursor.logprob`` (a teacher-forced score's view, used by Rewrite selection) is ``mix``
    read at one token, with two scopes that together exceed the cap; ``top`` is the memories' pick."""
    import math

    doc = TokenIndex([[1, 2, 3, 1, 2, 4, 1, 2, 3]])
    ws = TokenIndex([[1, 2, 5, 9]])
    mem = Memory([Scope("document", doc), Scope("workspace", ws)],
                 MixParams(weights=(("document", 0.6), ("workspace", 0.5)), max_total=0.9))
    p = torch.softmax(torch.arange(10, dtype=torch.float32) / 3, -1)
    c = mem.cursor([1, 2])
    q = c.mix(p)
    for tok in range(10):
        assert abs(c.logprob(tok, math.log(float(p[tok]))) - math.log(float(q[tok]))) < 1e-5, tok
    # 3 followed "1 2" in 2 of the document's 3 occurrences (0.6 x 2/3), 5 in the workspace's one (0.5 x 1)
    assert c.top() == 5
    assert mem.cursor([7]).logprob(4, -2.0) == -2.0 and mem.cursor([7]).top() is None
    m = doc.match([1, 2])
    assert doc.next_share(m, 3) == 2 / 3 and doc.next_share(m, 6) == 0.0


# ------------------------------------------------------------------ through the real server
async def _start(client: LanguageClient, root, memory: str) -> None:
    await client.initialize_session(types.InitializeParams(
        capabilities=CAPABILITIES, root_uri=root.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="ws")],
        initialization_options={"memory": memory, "crossFile": "off", "minConfidence": 0}))


async def _status(client: LanguageClient) -> dict:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    shutil.copytree(FILES / "workspace", root, dirs_exist_ok=True)
    return root


async def _complete_in(client: LanguageClient, root) -> str:
    main = (root / "app" / "main.py")
    text = main.read_text()
    cursor = text.index("frob") + len("frob")
    uri = main.as_uri()
    open_doc(client, uri, text)
    line = text.count("\n", 0, cursor)
    col = cursor - (text.rfind("\n", 0, cursor) + 1)
    res = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=col),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
    items = (res.items if isinstance(res, types.InlineCompletionList) else res) or []
    return items[0].insert_text if items else ""


@pytest.mark.parametrize("memory", ["auto", "off"])
async def test_a_name_defined_only_in_the_workspace_is_completed_with_memory(memory, workspace, tmp_path):
    """``frobnicate_widget_cache`` is defined in lib/helpers.py, never in app/main.py (which is not
    next to it: cross-file context is off anyway). With the memory the completion after ``frob``
    is the name; without it the model has no way to know it."""
    client = make_test_lsp_client()
    await client.start_io(*server_command(EMBEDDED))
    try:
        await _start(client, workspace, memory)
        if memory == "auto":
            for _ in range(600):  # the index builds in the background: wait for it (up to 60 s)
                ws = (await _status(client))["memory"]["workspace"]
                if ws and ws["state"] == "ready" and ws["files"] >= 2:
                    break
                await asyncio.sleep(0.1)
            st = await _status(client)
            assert st["memory"]["enabled"] and st["memory"]["workspace"]["tokens"] > 0
        answer = await _complete_in(client, workspace)
        st = await _status(client)
        if memory == "auto":
            # a start of the name the user accepts with Tab (the draft may stop where it is unsure)
            assert len(answer) >= 6 and "nicate_widget_cache(registry, key)".startswith(answer), answer
            last = st["memory"]["lastAnswer"]
            assert last["scopes"]["workspace"]["tokens"] > 0 and last["answer"]["supplied"] > 0
        else:
            assert "nicate" not in answer, answer
            assert not st["memory"]["enabled"] and st["memory"]["workspace"] is None
    finally:
        await close(client)


async def test_watched_file_storms_and_vanishing_files_never_block_a_completion(workspace, tmp_path):
    """A storm of workspace/didChangeWatchedFiles (files created, changed and deleted on disk while
    the index rebuilds) next to completion requests: every request is answered, the index ends
    current, and the server stays up."""
    root = tmp_path / "storm"
    shutil.copytree(workspace, root)
    client = make_test_lsp_client()
    await client.start_io(*server_command(EMBEDDED))
    try:
        await _start(client, root, "auto")
        main = root / "app" / "main.py"
        text = main.read_text()
        open_doc(client, main.as_uri(), text)
        cursor = text.index("frob") + len("frob")
        pos = types.Position(line=text.count("\n", 0, cursor), character=cursor - (text.rfind("\n", 0, cursor) + 1))
        answered = 0
        for i in range(40):
            changes = []
            for j in range(50):
                f = root / "lib" / f"gen_{i}_{j}.py"
                if j % 3 == 2:
                    f.unlink(missing_ok=True)  # vanished before the server reads it
                    kind = types.FileChangeType.Deleted
                else:
                    f.write_text(f"def generated_{i}_{j}():\n    return {j}\n")
                    kind = types.FileChangeType.Created
                changes.append(types.FileEvent(uri=f.as_uri(), type=kind))
            client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=changes))
            if i % 8 == 0:
                res = await asyncio.wait_for(client.text_document_inline_completion_async(types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=main.as_uri()), position=pos,
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked))), 30)
                answered += res is not None
        assert answered == 5
        (root / "lib" / "late.py").write_text("def zanzibar_quokka_total(x):\n    return x\n")
        client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
            types.FileEvent(uri=(root / "lib" / "late.py").as_uri(), type=types.FileChangeType.Created)]))
        for _ in range(300):  # the last change is indexed once the storm is over (debounced rebuilds)
            ws = (await _status(client))["memory"]["workspace"]
            if ws["state"] == "ready" and ws["refresh_calls"] >= 41 and ws["files"] >= 2 + 40 * 34 + 1:
                break
            await asyncio.sleep(0.1)
        ws = (await _status(client))["memory"]["workspace"]
        assert ws["state"] == "ready" and ws["error"] == ""
        assert ws["builds"] < 41  # debounced: far fewer builds than notifications
        assert ws["files"] >= 2 + 40 * 34 + 1, ws  # what exists on disk now, the late file included
    finally:
        await close(client)


def test_the_memory_steers_a_canvas_checkpoint():
    """A checkpoint that answers by denoising (the tiny random one, as the real DiffusionGemma
    would: no causal draft) gets the memory in every canvas step: after ``compute_`` the
    document's own continuation comes out, which the random model alone never writes. (At a
    token boundary: a cursor inside a word the tokenizer splits differently there, ``compute_|``,
    finds no match.)"""
    from conftest import TINY
    from dg_lsp.engine import Engine
    from dg_lsp.memory.scopes import build_memory

    engine = Engine.load(str(TINY), device="cpu", threads=1)
    assert engine.settings.draft != "answer"  # it denoises
    text = "value = compute_total_amount(items, tax)\nprint(value)\nresult = compute_total_amount("
    memory = build_memory(engine.tokens.encode, text, len(text))
    with_mem = engine.infill(text, "\n", max_new_tokens=8, canvas_length=8, memory=memory)
    without = engine.infill(text, "\n", max_new_tokens=8, canvas_length=8)
    assert with_mem.text.startswith("items, tax)"), with_mem.text
    assert not without.text.startswith("items"), without.text
    assert with_mem.memory["supplied"] >= 2 and with_mem.memory["mean_length"] >= 2
