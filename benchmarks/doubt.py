"""Does the model doubt the wrong token? Localization of Rewrite selection's corruptions by doubt.

    python benchmarks/doubt.py [--model DIR] [--cut dev|test] [--per-kind 20] [--clean 60]
                               [--out docs/bench/doubt-CUT.json]

What correction training (``--noise correct``, issue 26) is meant to teach is that a canvas which
sees both sides finds the visible token that is wrong. This measures it directly, without the
proposals and costs that ``benchmarks/rewrite.py`` scores on top of it: on the same cases
(``benchmarks/canvas_cases.py``, a corrupted line or two of held-out code, and clean selections),
each selected token's doubt is read as Rewrite selection reads it (``revise.Reviser.doubts``, no
token memory: the model alone) from the canvas (the token masked, both sides seen), from the
causal draft (given its left), and from their sum (what ``revise`` ranks by); and from the canvas
read with every token visible (``visible``: one forward, the way correction noise shows the
canvas wrong tokens to find).

The wrong tokens of a corrupted selection are those overlapping the characters where it differs
from the author's text (for a dropped token, the two tokens beside the gap). Scores per doubt:

* **top-1**: the most doubted token of a corrupted selection is a wrong one (**chance**: the
  share of its tokens that are wrong, what a random order would score);
* **top-3**: a wrong one is among the three most doubted;
* **AUROC**: the chance that a wrong token is doubted more than a token of a clean selection
  (how well one threshold on doubt separates them: what keeps clean selections unchanged).

Writes JSON to ``--out`` and Markdown next to it.
"""

from __future__ import annotations

import argparse
import bisect
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from canvas_cases import RewriteCase, rewrite_benchmark_cases  # noqa: E402
from model.eval import write_report  # noqa: E402
from rewrite import window_of  # noqa: E402

# ``revise.Doubt``'s (the canvas with the token masked, the causal draft, their sum), and ``visible``:
# the canvas read in one row with every token shown (``Reviser.canvas_logprobs(masked=False)``)
SCORES = ("canvas", "causal", "score", "visible")


def differing(shown: str, original: str) -> tuple[int, int]:
    """The characters ``[a, b)`` of ``shown`` that differ from ``original`` (a == b: a gap at a)."""
    a = 0
    while a < min(len(shown), len(original)) and shown[a] == original[a]:
        a += 1
    b = 0
    while b < min(len(shown), len(original)) - a and shown[-1 - b] == original[-1 - b]:
        b += 1
    return a, len(shown) - b


def wrong_tokens(spans: list[tuple[int, int]], a: int, b: int) -> set[int]:
    """Indices of the token spans overlapping ``[a, b)``; for a gap (a == b), the tokens beside it."""
    if a < b:
        return {j for j, (s, e) in enumerate(spans) if s < b and e > a}
    return {j for j, (s, e) in enumerate(spans) if e == a or s == a or s < a < e}


def doubts_of(engine, case: RewriteCase) -> list[dict] | None:
    """Per token of the selection's core, as ``revise`` reads it in its first round (no memory):
    its span in the selection (``start``, ``end``) and its doubt under each of ``SCORES``; None
    when ``revise`` would not look."""
    import torch

    from dg_lsp.engine.prompt import encode_text
    from dg_lsp.engine.revise import DEFAULT_PARAMS, Reviser, cut_context

    doc = case.doc_text
    s, e = case.start, case.start + len(case.shown)
    prefix, suffix = window_of(engine, doc, s, e)
    context = prefix + "\n" + suffix
    prefix, suffix = cut_context(engine, prefix, suffix)
    sel = case.shown
    lead = len(sel) - len(sel.lstrip())
    core = sel.strip()
    ids = encode_text(engine.tokenizer, core)
    if not ids or len(ids) > DEFAULT_PARAMS.max_tokens:
        return None
    engine.cache.reset()
    with torch.inference_mode():  # as ``Engine.rewrite`` runs it
        rv = Reviser(engine, prefix, suffix, case.lang, DEFAULT_PARAMS, context=context)
        doubts = rv.doubts(core, ids)
        own, best, _ = rv.canvas_logprobs(ids, 1, masked=False)
    return [{"start": d.start + lead, "end": d.end + lead, "canvas": d.canvas, "causal": d.causal, "score": d.score,
             "visible": v} for d, v in zip(doubts, (best - own).tolist())]


def auroc(pos: list[float], neg: list[float]) -> float:
    """P(a positive scores above a negative), ties counted half."""
    if not pos or not neg:
        return float("nan")
    neg = sorted(neg)
    total = 0.0
    for x in pos:
        lo, hi = bisect.bisect_left(neg, x), bisect.bisect_right(neg, x)
        total += lo + 0.5 * (hi - lo)
    return total / (len(pos) * len(neg))


def measure(engine, cases: list[RewriteCase]) -> dict:
    per_kind: dict[str, dict] = {}
    pos: dict[str, list[float]] = {k: [] for k in SCORES}
    neg: dict[str, list[float]] = {k: [] for k in SCORES}
    for c in cases:
        doubts = doubts_of(engine, c)
        if doubts is None:
            continue
        if c.kind == "clean":
            for d in doubts:
                for k in SCORES:
                    neg[k].append(d[k])
            continue
        a, b = differing(c.shown, c.original)
        bad = wrong_tokens([(d["start"], d["end"]) for d in doubts], a, b)
        if not bad:
            continue
        row = per_kind.setdefault(c.kind, {"n": 0, "chance top1": 0.0, **{f"{k} top1": 0 for k in SCORES},
                                           **{f"{k} top3": 0 for k in SCORES}})
        row["n"] += 1
        row["chance top1"] += len(bad) / len(doubts)
        for k in SCORES:
            order = sorted(range(len(doubts)), key=lambda j: -doubts[j][k])
            row[f"{k} top1"] += order[0] in bad
            row[f"{k} top3"] += bool(bad & set(order[:3]))
            pos[k] += [doubts[j][k] for j in bad]
    total = {"n": sum(r["n"] for r in per_kind.values()),
             "chance top1": sum(r["chance top1"] for r in per_kind.values())}
    for k in SCORES:
        for t in ("top1", "top3"):
            total[f"{k} {t}"] = sum(r[f"{k} {t}"] for r in per_kind.values())
    out = {"per_kind": per_kind, "all": total,
           "auroc": {k: auroc(pos[k], neg[k]) for k in SCORES},
           "tokens": {"wrong": len(pos["score"]), "clean": len(neg["score"])}}
    return out


def markdown(res: dict) -> str:
    m = res["scores"]
    head = " | ".join(f"{k} top-1 / top-3" for k in SCORES)
    rows = [f"Command: `{res['command']}`  ",
            f"Model `{res['model']}`, cut **{res['cut']}**: {m['all']['n']} corrupted selections, "
            f"{m['tokens']['clean']} tokens of clean ones; {res['seconds']} s. Doubt as Rewrite selection reads it "
            "(no token memory): `canvas` (masked, both sides), `causal` (the draft, given its left), `score` (their sum), "
            "`visible` (the canvas, every token shown).",
            "", f"| kind | n | chance top-1 | {head} |", "| --- | --- | --- |" + " --- |" * len(SCORES)]
    for kind, r in list(m["per_kind"].items()) + [("**all**", m["all"])]:
        n = max(1, r["n"])
        cells = " | ".join(f"{r[f'{k} top1'] / n:.1%} / {r[f'{k} top3'] / n:.1%}" for k in SCORES)
        rows.append(f"| {kind} | {r['n']} | {r['chance top1'] / n:.1%} | {cells} |")
    rows.append("| AUROC, wrong vs clean tokens | | | " + " | ".join(f"{m['auroc'][k]:.3f}" for k in SCORES) + " |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "model"))
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    ap.add_argument("--cut", choices=("dev", "test"), default="dev")
    ap.add_argument("--per-kind", type=int, default=20)
    ap.add_argument("--clean", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    import torch

    from dg_lsp.engine import Engine

    torch.set_num_threads(a.threads)
    cases = rewrite_benchmark_cases(a.corpus, a.cut, a.per_kind, a.clean)
    t0 = time.time()
    engine = Engine.load(a.model, threads=a.threads)
    res = {"command": "python benchmarks/doubt.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "model": a.model, "cut": a.cut, "per_kind": a.per_kind, "clean": a.clean}
    res["scores"] = measure(engine, cases)
    res["seconds"] = round(time.time() - t0, 1)
    write_report(a.out or ROOT / "docs" / "bench" / f"doubt-{a.cut}.json", res, markdown(res))


if __name__ == "__main__":
    main()
