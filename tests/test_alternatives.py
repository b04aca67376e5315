"""Alternatives and the confidence gate, end to end: real server process, real client, and the
pieces underneath (batched canvases on the fast path, the judge, the broken-hole check)."""

from __future__ import annotations

import pytest
import torch
from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import EMBEDDED, TINY
from lsp_helpers import apply_edit, error_count, open_doc, utf16_offset, wait_until

PREFIX = "def total(items):\n    result = 0\n    for item in items:\n        result = result + "
SUFFIX = "\n    return result\n"
TEXT = PREFIX + SUFFIX
CURSOR = types.Position(line=3, character=len("        result = result + "))


async def inline(client: LanguageClient, uri: str, pos: types.Position, invoked: bool):
    kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
    return await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos,
        context=types.InlineCompletionContext(trigger_kind=kind)))


def configure(client: LanguageClient, **settings) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"dgLsp": settings}))


async def status(client: LanguageClient) -> dict:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))


async def test_invoked_request_returns_distinct_alternatives(client: LanguageClient):
    # the random-weight model's canvases, without the document's memory (which can make the tiny
    # model's answer repeat the suffix, then trimmed to nothing: tests/test_memory.py covers it)
    configure(client, minConfidence=0.0, alternatives=3, memory="off")
    uri = "file:///work/alternatives.py"
    open_doc(client, uri, TEXT)
    seen_many = False
    for line, char in ((3, CURSOR.character), (1, len("    result = ")), (2, len("    for item in "))):
        pos = types.Position(line=line, character=char)
        res = await inline(client, uri, pos, invoked=True)
        texts = [i.insert_text for i in res.items]
        assert len(texts) <= 3
        assert len(set(texts)) == len(texts), texts  # deduplicated
        for item in res.items:  # each one a safe edit at the cursor
            assert item.range is not None and item.range.start == pos and item.insert_text.strip()
            new = apply_edit(TEXT, item.range, item.insert_text)
            a, b = utf16_offset(TEXT, item.range.start), utf16_offset(TEXT, item.range.end)
            assert new[:a] == TEXT[:a] and new[a + len(item.insert_text):] == TEXT[b:]
            assert error_count(new) <= error_count(TEXT)
        seen_many |= len(texts) > 1
        comp = await client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=pos,
            context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked)))
        assert [i.sort_text for i in comp.items] == [str(k) for k in range(len(comp.items))]
        assert [i.preselect for i in comp.items] == [True] + [False] * (len(comp.items) - 1)
    assert seen_many  # the random-weight model's noise draws differ somewhere


async def test_alternatives_1_gives_one_item(client: LanguageClient):
    configure(client, minConfidence=0.0, alternatives=1)
    uri = "file:///work/one.py"
    open_doc(client, uri, TEXT)
    res = await inline(client, uri, CURSOR, invoked=True)
    assert len(res.items) <= 1


async def test_gate_withholds_automatic_but_not_invoked(client: LanguageClient):
    uri = "file:///work/gate.py"
    open_doc(client, uri, TEXT)
    # one candidate: invoked = automatic's computation; the random model's answer without the memory
    configure(client, minConfidence=0.0, alternatives=1, memory="off")
    pos = types.Position(line=1, character=len("    result = "))
    shown = await inline(client, uri, pos, invoked=False)
    assert len(shown.items) == 1  # the random-weight model has an answer here at gate 0
    configure(client, minConfidence=1.0, alternatives=1, memory="off")  # a change sends the whole section
    before = (await status(client))["stats"]["withheld"]
    pos2 = types.Position(line=3, character=CURSOR.character)  # elsewhere: the completion cache does not answer
    auto = await inline(client, uri, pos2, invoked=False)
    mid = (await status(client))["stats"]["withheld"]
    invoked = await inline(client, uri, pos2, invoked=True)
    after = (await status(client))["stats"]["withheld"]
    assert len(auto.items) == 0 and after == mid
    assert (mid == before + 1) == (len(invoked.items) == 1)  # withheld exactly when there was an answer
    configure(client, minConfidence=0.0)


async def test_bad_gate_settings_get_a_message_and_the_default(client: LanguageClient):
    configure(client, minConfidence=2, alternatives=0)
    await wait_until(lambda: sum("minConfidence" in m.message for m in client.messages) >= 1
                     and sum("alternatives" in m.message for m in client.messages) >= 1)
    st = await status(client)
    assert st["settings"]["minConfidence"] == 0.15 and st["settings"]["alternatives"] == 3


# ------------------------------------------------------------------ pieces underneath
def _engine(path=EMBEDDED):
    """The checkpoint with its canvas denoiser serving infills: these pieces are the batched
    canvases' (the embedded model answers with its causal draft, ``draft: "answer"``; any other
    DiffusionGemma checkpoint denoises)."""
    from dg_lsp.engine import Engine

    eng = Engine.load(str(path), device="cpu", threads=1)
    eng.settings.draft = "none"
    return eng


def test_batched_canvases_match_one_at_a_time():
    """Rows of one batched step equal the same canvases stepped alone (each sees only itself)."""
    eng = _engine(TINY)
    fm = eng.fast
    assert fm is not None
    ids = eng.prompt(PREFIX, SUFFIX, "python").ids
    cache = fm.new_cache()
    fm.encode(list(ids), cache)
    c = torch.randint(0, eng.vocab_size, (3, 12), generator=torch.Generator().manual_seed(0))
    big = fm.step_fn(cache, 12, rows=3)(c, None)
    for r in range(3):
        one = fm.step_fn(cache, 12)(c[r : r + 1], None)
        torch.testing.assert_close(big[r], one[0], rtol=1e-4, atol=1e-4)


def test_engine_candidates_have_confidences():
    eng = _engine()
    res = eng.infill(PREFIX, SUFFIX, language="python", candidates=3, canvas_length=16)
    assert len(res.alternatives) == 2
    for r in (res, *res.alternatives):
        assert 0.0 < r.confidence <= 1.0
        assert r.signals is not None and r.signals.tokens == len(r.token_ids) + int(r.hit_eos)
    one = eng.infill(PREFIX, SUFFIX, language="python", canvas_length=16)
    assert one.alternatives == [] and 0.0 < one.confidence <= 1.0


def test_constraints_hold_in_every_row():
    """The bracket constraints run per canvas: no candidate closes what was never opened."""
    from dg_lsp.context import registry
    from dg_lsp.engine.constraints import for_engine

    eng = _engine()
    spec = registry().get("python")
    prefix, suffix = "values = compute(alpha, ", ")\nprint(values)\n"
    cons = for_engine(eng, spec, prefix, suffix, "single")
    cons.begin([], final=True)
    res = eng.infill(prefix, suffix, language="python", candidates=4, canvas_length=16, logits_hook=cons)
    for r in (res, *res.alternatives):
        depth = 1  # the prefix's open call: the middle may close it, nothing more
        for ch in r.text.split("\n", 1)[0]:
            depth += ch == "("
            depth -= ch == ")"
            assert depth >= 0, r.text


def test_judge_lowers_degenerate_answers():
    from dg_lsp.confidence import RecentAnswers, judge, repetitive

    assert repetitive("defaultValueValueValueValueValue")
    assert repetitive("((((((")
    assert not repetitive("result + item")
    assert not repetitive("))")
    assert judge(0.9, "ValueValueValueValue").confidence == 0.0
    assert judge(0.9, "item").confidence == 0.9
    short = judge(0.9, " ( ")  # under 4 characters: worth showing only when asked
    assert short.confidence == pytest.approx(0.09) and short.model == 0.9 and "shorter" in short.reason
    assert judge(0.9, "#", broken=True).confidence < 0.9
    recent = RecentAnswers()
    for line in range(3):
        recent.add(("a.py", line), "paths")
    assert recent.others(("a.py", 9), "paths") == 3 and recent.others(("a.py", 0), "paths") == 2
    assert judge(0.9, "paths", same_elsewhere=recent.others(("a.py", 9), "paths")).confidence == 0.0
    assert judge(0.9, "paths", same_elsewhere=2).confidence == 0.9


def test_broken_hole_check():
    from dg_lsp.context import registry
    from dg_lsp.context.checks import leaves_hole_broken

    py = registry().get("python")
    prefix, suffix = "def f(xs):\n    for x in xs:\n        ", "\n    return 1\n"
    assert leaves_hole_broken(py, prefix, "# todo", suffix)  # a comment is no loop body
    assert not leaves_hole_broken(py, prefix, "print(x)", suffix)
    # a hole that parses without the middle is never "left broken"
    assert not leaves_hole_broken(py, "x = 1\n", "y = (", "\nz = 2\n")


def test_unfinished_statement_left_unfinished():
    from dg_lsp.context import registry
    from dg_lsp.context.checks import leaves_hole_broken

    js = registry().get("javascript")
    prefix, suffix = "const total = items.reduce((a, b) => ", "\nconsole.log(total);\n"
    assert leaves_hole_broken(js, prefix, "/* sum */", suffix)
    assert not leaves_hole_broken(js, prefix, "a + b, 0);", suffix)


def test_draft_candidates_keep_the_engines_answer_first():
    """With the embedded model's causal-draft answers the candidates are cuts of one draft: the
    first shown is the answer one candidate gives (not re-ranked by confidence), and every
    other one is a distinct, longer cut of the same draft."""
    from dg_lsp.context import SyntaxDocument, registry
    from dg_lsp.engine import Engine
    from dg_lsp.service import propose
    from dg_lsp.settings import DEFAULTS

    eng = Engine.load(str(EMBEDDED), device="cpu", threads=1)
    assert eng.settings.draft == "answer"
    spec = registry().get("python")
    for offset in (len(PREFIX), len("def total(items):\n    result = "), len("def total(items):\n    result = 0\n    for ")):
        one = propose(eng, spec, SyntaxDocument(spec, TEXT), offset, DEFAULTS, invoked=True, candidates=1)
        three = propose(eng, spec, SyntaxDocument(spec, TEXT), offset, DEFAULTS, invoked=True, candidates=3)
        assert three.text == one.text and three.result is not None and three.result.drafted
        texts = [p.text for p in three.alternatives]
        assert len(set(texts + [three.text])) == len(texts) + 1
