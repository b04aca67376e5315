"""Rewrite by doubt and fill holes by draft, in the engine: teacher-forced causal scores, the
slips a proposal may be, and the engine's operations on a real (tiny, random-weight) checkpoint."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY
from dg_lsp.engine import Engine
from dg_lsp.engine.revise import classify, edit_distance, lexemes, revise


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(str(TINY), device="cpu", dtype="float32")


def test_score_rows_matches_the_draft_and_continues_a_cached_middle(engine: Engine):
    """Row scores equal the greedy draft's own probabilities; a row that continues the first
    tokens of a middle encoded after the prompt (``at``) scores the rest exactly as the whole row."""
    fm = engine.fast
    p = engine.prompt("def add(a, b):\n    total = a + b\n    ", "\n\nprint(add(1, 2))\n")
    with torch.inference_mode():
        kv, _ = engine.cache.prepare(p.ids, "cpu")
        ids, probs = fm.draft(kv, p.ids[-1], 6)
        kv, _ = engine.cache.prepare(p.ids, "cpu")  # draft wrote after the prompt: the prompt alone again
        start = kv.length
        lp, top_ids, top_lp = fm.score_rows(kv, p.ids[-1], [ids, ids[:2]], top=2)
        torch.testing.assert_close(lp[0].exp(), torch.tensor(probs), atol=1e-5, rtol=1e-4)
        assert lp[1, 2:].abs().max() == 0  # past a row's end
        assert top_ids[0, :, 0].tolist() == ids  # the draft is the argmax
        engine.cache.extend(ids[:3], "cpu")
        tail, _, _ = fm.score_rows(kv, [ids[2], p.ids[-1]], [ids[3:], ids], at=[start + 3, start])
    torch.testing.assert_close(tail[0, : len(ids) - 3], lp[0, 3:], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(tail[1], lp[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("old,new,kind", [
    ("return preferrde_width", "return preferred_width", "spell"),
    ("return return x", "return x", "repeat"),
    ("x = f(a b)", "x = f(a, b)", "insert"),
    ("if a < b:", "if a <= b:", "operator"),
    ("if (a === b) {", "if (a == b) {", None),  # strict for loose equality: style, not a slip
    ("let i == 0", "let i = 0", "double"),
    ("x = True", "x = False", "literal"),
    ("x = a + b", "x = a b", "delete"),
    ("x = a + b", "x = a - c", None),  # two words changed
    ("x = f(a)", "x = f[a)", None),  # an operator into another family's
    ("print('helo')", "print('hello')", None),  # inside a string
    ("y = a  # the vlaue", "y = a  # the value", None),  # inside a comment
    ("y = itme", "y = it", None),  # a name the context does not use
    ("let x = 1", "lot x = 1", None),  # keywords are not misspellings
])
def test_classify_reads_an_edit_as_one_slip(old, new, kind):
    known = {"preferred_width", "a", "b", "x", "item", "lot"}
    assert classify(old, new, "token", known, language="python" if "#" in old else "javascript") == kind


def test_lexemes_and_edit_distance():
    assert lexemes("this.#x = `a ${b}` // c", "javascript") == ["this", ".", "#", "x", "=", "`a ${b}`", "// c"]
    assert lexemes("x = f'{a}'  # c", "python") == ["x", "=", "f'{a}'", "# c"]
    assert edit_distance("reset", "rseet") == 1 and edit_distance("itme", "item") == 1
    assert edit_distance("abc", "cba") == 2 and edit_distance("name", "") == 4


def test_rewrite_keeps_or_changes_only_the_selection(engine: Engine):
    """The doubt-scored rewrite returns the selection or a revision of it (never a re-noised
    canvas); ``strength`` still runs the re-noising canvas."""
    prefix, sel, suffix = "def f(a, b):\n    ", "return a + b", "\n\nprint(f(1, 2))\n"
    res = engine.rewrite(prefix, sel, suffix)
    assert res.steps == 0 and isinstance(res.text, str)
    rev = revise(engine, prefix, sel, suffix)
    assert rev.text == res.text and len(rev.doubts) == len(engine.tokenizer.encode(sel, add_special_tokens=False))
    assert [d.start for d in rev.doubts] == sorted(d.start for d in rev.doubts)
    if rev.changed:  # one slip per round, confined to the selection
        assert len(rev.edits) == 1
    old = engine.rewrite(prefix, sel, suffix, strength=0.5, seed=0)
    assert old.steps >= 1


def test_fill_holes_by_draft_answers_each_hole(engine: Engine):
    pieces = ["    b = ", "\n    return ", "\n"]
    drafted = engine.fill_holes("def f(a):\n", pieces, "", markers=["pass", "pass"], method="draft")
    canvas = engine.fill_holes("def f(a):\n", pieces, "", hole_tokens=4, method="canvas")
    assert len(drafted) == 2 and len(canvas) == 2 and all(isinstance(f, str) for f in drafted + canvas)
