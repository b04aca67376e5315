"""The held-out completion test: hole cutting, scoring, cross-entropy, the eval and server runners."""

from __future__ import annotations

import json
import math
import re

import pytest

from conftest import DATA, TINY
from model import heldout
from model.heldout import Hole

FIXTURES = DATA / "heldout"
ALL = {(lang, kind) for lang in heldout.LANGS for kind in heldout.KINDS}


def records() -> list[dict]:
    return heldout.records_from_dir(FIXTURES)


def line_of(text: str, offset: int) -> tuple[int, str]:
    """(start offset, text) of the line holding ``offset``."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, text[start : len(text) if end < 0 else end]


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


# ----------------------------------------------------------------------------- cutting
def test_cut_is_deterministic_and_depends_on_the_seed():
    a = heldout.cut_heldout_holes(records(), per_kind=4, seed=7)
    b = heldout.cut_heldout_holes(records(), per_kind=4, seed=7)
    assert a == b
    assert len(a) == 3 * 3 * 4
    assert {(h.lang, h.kind) for h in a} == ALL
    c = heldout.cut_heldout_holes(records(), per_kind=4, seed=8)
    assert [(h.path, h.offset, h.middle) for h in c] != [(h.path, h.offset, h.middle) for h in a]


def test_each_kind_is_cut_where_promised():
    holes = heldout.cut_heldout_holes(records(), per_kind=1000, seed=3)  # every candidate line
    assert {(h.lang, h.kind) for h in holes} == ALL
    for h in holes:
        text = h.text
        assert text[h.offset : h.offset + len(h.middle)] == h.middle
        assert h.prefix + h.middle + h.suffix == text and h.doc_text == h.prefix + h.suffix
        assert 0 < len(h.middle) <= heldout.MAX_MIDDLE and any(c.isalnum() for c in h.middle)
        start, line = line_of(text, h.offset)
        content_start, content_end = start + indent(line), start + len(line.rstrip())
        if h.kind == "rest_of_line":
            assert content_start < h.offset < content_end, h  # after the indentation, before the end
            assert h.middle == text[h.offset : content_end]  # the rest of the line, no newline
            # fixture lines all have token boundaries, so every cut is at one
            assert not text[h.offset].isspace()
            assert not (re.match(r"\w", text[h.offset - 1]) and re.match(r"\w", text[h.offset])), h
        elif h.kind == "line":
            assert h.offset == content_start  # cursor at the indentation
            assert h.middle == line.strip() and "\n" not in h.middle
            assert h.suffix[:1] in ("\n", "")  # the newline stays in the suffix
        else:
            assert h.kind == "block_lines"
            assert h.offset == content_start and indent(line) > 0  # inside a block
            assert h.middle[0] not in ")]}"
            lines = h.middle.split("\n")
            assert 2 <= len(lines) <= 4 and lines[-1].strip()
            assert all(indent(ln) >= indent(line) for ln in lines[1:] if ln.strip())  # stays in the block
            assert h.suffix[:1] in ("\n", "")


def test_prose_and_punctuation_lines_are_never_holes():
    holes = heldout.cut_heldout_holes(records(), per_kind=1000, seed=3)
    first_lines = {line_of(h.text, h.offset)[1].strip() for h in holes}
    for prose in ('"""Value of the stock of this item."""', "# prices are in cents",
                  "Used by tests/test_heldout.py as a held-out fixture (hand-written for the tests).",
                  "// A first-in first-out queue with a size limit (hand-written test fixture).", "}", ")"):
        assert prose not in first_lines
    lines = {h.middle for h in holes if h.kind == "line"}
    assert "return self.count * self.price" in lines and "this.items.push(value)" in lines
    assert "}" not in lines and '"""' not in lines


def test_corpus_directory_is_read_from_the_heldout_split(tmp_path):
    recs = records()
    with open(tmp_path / "heldout-00000.jsonl", "w") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")
    with open(tmp_path / "train-00000.jsonl", "w") as fh:  # never read
        fh.write(json.dumps({**recs[0], "path": "train.py"}) + "\n")
    holes = heldout.cut_heldout_holes(tmp_path, per_kind=3, seed=1)
    assert holes == heldout.cut_heldout_holes(recs, per_kind=3, seed=1)
    assert "train.py" not in {h.path for h in holes}


# ----------------------------------------------------------------------------- scoring
def test_useful_is_a_long_enough_or_whole_prefix():
    middle = "return self.count * self.price"
    assert heldout.useful("return self", middle)
    assert heldout.useful("retu", middle)  # 4 characters
    assert not heldout.useful("ret", middle)  # too short and not all of it
    assert heldout.useful("x", "x")  # all of it
    assert heldout.useful("  return self", middle + "\n")  # leading / trailing whitespace stripped
    assert heldout.useful("= 1", " = 1")
    assert not heldout.useful("return other", middle)  # a wrong prefix
    assert not heldout.useful("return self.count * self.price + 1", middle)  # longer than the middle
    assert not heldout.useful("", middle) and not heldout.useful("   ", middle)
    assert not heldout.useful("a\n  b", "a\n    b")  # inner indentation must match


def test_exact_and_most_frequent():
    assert heldout.exact("  x = 1\n", "x = 1")
    assert not heldout.exact("x = 2", "x = 1")
    assert heldout.most_frequent(["a", "b", "a", " a ", ""]) == (0.6, "a")
    assert heldout.most_frequent(["", "", "b"]) == (pytest.approx(2 / 3), "")
    assert heldout.most_frequent([]) == (0.0, "")


def test_syntax_scores():
    h = Hole("python", "t", "t.py", "x = f(1)\ny = 2\n", 4, "f(1)", "rest_of_line")
    assert heldout.whole_file_syntax(h, "f(2)") is True
    assert heldout.whole_file_syntax(h, "f(") is False
    assert heldout.no_new_errors(h, "g()") is True
    assert heldout.no_new_errors(h, "f(") is False
    # an answer that retypes the closing bracket after the cursor, replacing it
    r = Hole("python", "t", "t.py", "x = f(1)\n", 6, "1", "rest_of_line")
    assert heldout.whole_file_syntax(r, "1)", replace=1) is True
    assert heldout.whole_file_syntax(r, "1)", replace=0) is False
    assert heldout.no_new_errors(r, "1)", replace=1) is True
    # the author's file does not parse: whole-file syntax is not counted
    bad = Hole("python", "t", "bad.py", "x = f(1\ny = 2\n", 4, "f(1", "rest_of_line")
    assert heldout.whole_file_syntax(bad, "f(1)") is None
    js = Hole("javascript", "t", "t.js", "const a = [1, 2]\n", 10, "[1, 2]", "rest_of_line")
    assert heldout.whole_file_syntax(js, "[3]") is True and heldout.whole_file_syntax(js, "[3") is False


def test_summaries_count_blank_answers():
    h = Hole("python", "t", "t.py", "x = foo(1)\ny = 2\n", 4, "foo(1)", "rest_of_line")
    s = heldout.summarize_answers([h, h, h, h], ["foo(1)", "foo(", "", "foo(1)"])
    assert s["n"] == 4 and s["exact"] == 0.5 and s["useful"] == 0.75 and s["empty"] == 0.25
    assert s["most_frequent_share"] == 0.5 and s["most_frequent_answer"] == "foo(1)"
    assert s["whole_file_syntax"] == pytest.approx(2 / 3) and s["whole_file_syntax_n"] == 3
    assert s["no_new_errors"] == pytest.approx(2 / 3)


# ----------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def engine():
    import torch

    from dg_lsp.engine import Engine

    torch.set_num_threads(1)
    return Engine.load(str(TINY), device="cpu", threads=1)


def test_canvas_init_is_read_from_generation_config(tmp_path, engine):
    assert heldout.canvas_init_of(TINY) == "uniform"
    assert heldout.canvas_init_of(engine) == "uniform"
    (tmp_path / "generation_config.json").write_text(json.dumps({"canvas_init": "mask"}))
    assert heldout.canvas_init_of(tmp_path) == "mask"
    assert heldout.canvas_init_of({"canvas_init": "uniform"}) == "uniform"
    mask_id = engine.tokenizer.get_vocab()["<mask>"]
    assert heldout.starting_canvas(engine, "mask", 0).eq(mask_id).all()
    u = heldout.starting_canvas(engine, "uniform", 0)
    assert u.shape == (1, engine.canvas_length) and not u.eq(mask_id).all()
    assert u.equal(heldout.starting_canvas(engine, "uniform", 0))


def test_cross_entropy_of_the_true_middle(engine):
    truth = heldout.truth_ids(engine, "x" * 400)
    assert len(truth) == engine.canvas_length and truth[-1] == engine.eos_id
    assert heldout.truth_ids(engine, "")[-1] == engine.eos_id
    h = heldout.cut_heldout_holes(records(), per_kind=1, seed=0, langs=("python",), kinds=("line",))[0]
    ids = engine.prompt(h.prefix[-200:], h.suffix[:100]).ids
    u = heldout.middle_cross_entropy(engine, ids, h.middle, heldout.starting_canvas(engine, "uniform", 0))
    m = heldout.middle_cross_entropy(engine, ids, h.middle, heldout.starting_canvas(engine, "mask", 0))
    assert math.isfinite(u) and u > 0 and math.isfinite(m) and m > 0 and u != m
    # a random model is near the uniform distribution's cross-entropy
    assert abs(u - math.log(engine.vocab_size)) < 2.0


def test_run_engine_answers_every_hole(engine):
    holes = heldout.cut_heldout_holes(records(), per_kind=1, seed=0)
    rows = heldout.run_engine(engine, holes)
    assert len(rows) == len(holes) == 9
    for h, r in zip(holes, rows):
        assert isinstance(r["raw"], str) and isinstance(r["post"], str)
        assert r["mode"] in ("single", "multi") and r["prompt_tokens"] > 3 and r["cross_entropy"] > 0
        if r["mode"] == "single":
            assert "\n" not in r["post"]  # post-processing ends a single-line answer at the line end
    again = heldout.run_engine(engine, holes)  # seeded: the same answers again
    assert [{k: v for k, v in r.items() if k != "ms"} for r in rows] == [{k: v for k, v in r.items() if k != "ms"} for r in again]


def test_run_engine_with_cross_file_sources_and_retrieved_starts(engine):
    """The cross-file snippets go into the prompt (longer prompt, same holes); a start text makes
    the canvas start from it (``Engine.rewrite``), and holes without one keep the noise start."""
    holes = heldout.cut_heldout_holes(records(), per_kind=1, seed=0, langs=("python",))
    other = "\n".join(h.text for h in holes)  # names the holes' files share
    plain = heldout.run_engine(engine, holes)
    rows = heldout.run_engine(engine, holes, sources=lambda h: [("other.py", other)], cross_file_tokens=64)
    assert any(r["snippets"] > 0 for r in rows)
    for p, r in zip(plain, rows):
        assert r["prompt_tokens"] >= p["prompt_tokens"]
        assert (r["prompt_tokens"] > p["prompt_tokens"]) == (r["snippets"] > 0)
    starts = heldout.run_engine(engine, holes, start=lambda h, p, s: "value = 1" if h.kind == "line" else None)
    assert [r["start"] for r in starts] == ["value = 1" if h.kind == "line" else None for h in holes]
    for p, r, h in zip(plain, starts, holes):
        if h.kind != "line":
            assert r["raw"] == p["raw"]  # no start: the same infill as without the option


def test_eval_writes_the_heldout_tables(tmp_path):
    from model import eval as model_eval

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with open(corpus / "heldout-00000.jsonl", "w") as fh:
        for r in records():
            fh.write(json.dumps(r) + "\n")
    out = tmp_path / "eval.json"
    model_eval.main(["--model", str(TINY), "--benchmarks", "", "--heldout", "1", "--corpus", str(corpus),
                     "--threads", "1", "--out", str(out)])
    res = json.loads(out.read_text())
    h = res["heldout"]
    assert h["holes"]["total"] == 9 and len(h["rows"]) == 9 and h["canvas_init"] == "uniform"
    assert set(h["summary"]) == {f"{a}/{b}" for a in (*heldout.LANGS, "all") for b in (*heldout.KINDS, "all")}
    for g in h["summary"].values():
        assert set(g) >= {"n", "raw", "post", "cross_entropy"}
        assert set(g["raw"]) >= {"exact", "useful", "empty", "most_frequent_share", "whole_file_syntax", "no_new_errors"}
    md = out.with_suffix(".md").read_text()
    assert "Held-out completion test" in md and "| all | all | 9 |" in md


# ----------------------------------------------------------------------------- the server
def test_server_runner_scores_one_answer_per_hole():
    from benchmarks.heldout_server import evaluate, markdown

    holes = heldout.cut_heldout_holes(records(), per_kind=1, seed=0)[::2]  # 5 holes, all 3 languages
    assert len(holes) == 5 and {h.lang for h in holes} == set(heldout.LANGS)
    res = evaluate(TINY, holes, threads=1, timeout=120)
    rows = res["rows"]
    assert len(rows) == 5
    for h, r in zip(holes, rows):
        assert r["middle"] == h.middle and r["offset"] == h.offset
        assert isinstance(r["answer"], str) and r["items"] in (0, 1) and r["at_cursor"]
        assert r["useful"] == heldout.useful(r["answer"], h.middle)
        assert r["empty"] == (not r["answer"].strip())
    assert res["summary"]["all/all"]["server"]["n"] == 5
    assert any(r["items"] for r in rows)  # the server answered at least once
    md = markdown({**res, "command": "test", "model": str(TINY), "per_kind": 1, "seed": 0, "threads": 1})
    assert "| all | all | 5 |" in md


# ----------------------------------------------------------------------------- the corpus
def test_heldout_sources_never_reach_train_or_test():
    from model import corpus

    assert corpus._npm_tarball_glob("typescript@5") == "typescript-*.tgz"
    assert corpus._npm_tarball_glob("@tanstack/query-core@5.108.4") == "tanstack-query-core-5.108.4.tgz"
    assert corpus.dist_key("prompt_toolkit") in corpus.HOLDOUT_KEYS
    man = json.loads((DATA.parent.parent / "model" / "corpus_manifest.json").read_text())
    npm = {"npm:" + spec.rsplit("@", 1)[0] for spec, _ in corpus.HOLDOUT_NPM}
    held = [r for r in man["sources"] if corpus.dist_key(r["name"]) in corpus.HOLDOUT_KEYS or r["name"] in npm]
    assert held, "no held-out source in the manifest"
    for r in held:
        assert r["split"] == "heldout" and r["train_files"] == r["test_files"] == 0 and r["heldout_files"] == r["files"]
    assert all(r["split"] == "train+test" and "heldout_files" not in r for r in man["sources"] if r not in held)


def test_corpus_like_a_manifest_reads_only_its_sources(tmp_path, capsys):
    """`--like MANIFEST`: a new machine rebuilds the corpus a model was trained on, however many other
    distributions its environment holds; a source at another version is read, with a warning."""
    import sys

    from model import corpus

    like = {"sources": [{"name": "cpython-stdlib", "version": sys.version.split()[0]},
                        {"name": "pygls", "version": "0.0.0-not-this"}]}
    man = corpus.build(tmp_path / "c", max_mb=0.2, npm=False, like=like)
    assert [r["name"] for r in man["sources"]] == ["cpython-stdlib"]
    assert 0 < man["totals"]["bytes"] < 1_000_000
    reasons = {s["name"]: s["reason"] for s in man["skipped"]}
    assert reasons["msgspec"] == "not in the --like manifest"
    assert reasons["pygls"] == "--max-mb reached"  # listed, so it passed the filter
    assert "pygls is " in capsys.readouterr().err
    recs = list(corpus.iter_corpus(tmp_path / "c", "train"))
    assert recs and {r["source"] for r in recs} == {"cpython-stdlib"}
