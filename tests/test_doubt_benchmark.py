"""``benchmarks/doubt.py``: where a corrupted selection differs, which tokens are wrong, and the
doubt scores read from the embedded model."""

from __future__ import annotations

import math

import pytest

from conftest import DATA, EMBEDDED


def test_differing_characters_and_the_wrong_tokens():
    from benchmarks.doubt import differing, wrong_tokens

    assert differing("if x >= 10:", "if x <= 10:") == (5, 6)
    assert differing("return a b", "return a") == (8, 10)  # extra token
    assert differing("foo()", "foo(x)") == (4, 4)  # dropped: a gap
    spans = [(0, 2), (2, 4), (4, 5), (5, 7), (7, 8)]
    assert wrong_tokens(spans, 4, 6) == {2, 3}
    assert wrong_tokens(spans, 4, 4) == {1, 2}  # the tokens beside the gap
    assert wrong_tokens(spans, 5, 5) == {2, 3}


def test_auroc_counts_pairs_and_ties():
    from benchmarks.doubt import auroc

    assert auroc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert auroc([1.0], [2.0, 3.0]) == 0.0
    assert auroc([2.0], [2.0]) == 0.5
    assert math.isnan(auroc([], [1.0]))


@pytest.fixture(scope="module")
def engine():
    from dg_lsp.engine import Engine

    return Engine.load(str(EMBEDDED), threads=1)


def test_measure_reads_every_doubt_of_the_embedded_model(engine):
    from benchmarks.canvas_cases import RewriteCase
    from benchmarks.doubt import SCORES, markdown, measure

    text = (DATA / "rewrite" / "auth.py").read_text()
    line = "        if self.failures.value >= 10:"
    start = text.index(line)
    bad = RewriteCase("dev", "python", "test", "auth.py", text, start, start + len(line), line,
                      line.replace(">=", "<="), "wrong_operator")
    clean = RewriteCase("dev", "python", "test", "auth.py", text, start, start + len(line), line, line, "clean")
    m = measure(engine, [bad, clean])
    assert m["all"]["n"] == 1 and m["per_kind"]["wrong_operator"]["n"] == 1
    assert m["tokens"]["wrong"] >= 1 and m["tokens"]["clean"] >= 5
    assert 0 < m["all"]["chance top1"] < 1
    for k in SCORES:
        assert 0.0 <= m["auroc"][k] <= 1.0
        assert m["all"][f"{k} top1"] <= m["all"][f"{k} top3"] <= 1
    md = markdown({"command": "test", "model": "embedded", "cut": "dev", "seconds": 0, "scores": m})
    assert "| wrong_operator | 1 |" in md and "AUROC" in md
