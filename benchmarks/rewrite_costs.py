"""Choose Rewrite selection's noisy-channel costs on the dev cut (``dg_lsp.engine.revise.DEFAULT_COSTS``).

    python benchmarks/rewrite_costs.py [--cut dev] [--per-kind 20] [--clean 60] [--harm 0.03] [--memory]
                                       [--out docs/bench/rewrite-costs-dev[-memory].json]

Runs ``revise`` on the cut's cases (``benchmarks/rewrite.py``'s: the same selections and windows)
with every proposal kept and none made (all costs 0, one round), records each proposal's kind and
its gain in causal log-likelihood, then searches per-kind costs (a grid, coordinate ascent from
several starts) for the most restored corrupted selections with at most ``--harm`` of the clean ones
changed. Only the dev cut is ever used to choose; ``benchmarks/rewrite.py --cut test`` reports.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from canvas_cases import rewrite_benchmark_cases  # noqa: E402
from rewrite import memory_of, window_of  # noqa: E402

GRID = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 24, 30, 40, None]  # None: never made


def collect(engine, cases, memory: bool = False) -> list[dict]:
    from dg_lsp.engine.revise import DEFAULT_COSTS, ReviseParams, revise

    zero = {k: 0.0 for k in list(DEFAULT_COSTS) + ["name", "delete"]}
    params = ReviseParams(costs=zero, memory_costs=zero)
    rows = []
    for c in cases:
        doc = c.doc_text
        s, e = c.start, c.start + len(c.shown)
        prefix, suffix = window_of(engine, doc, s, e)
        rv = revise(engine, prefix, c.shown, suffix, language=c.lang, params=params, keep_candidates=True,
                    memory=memory_of(engine, doc, s, e) if memory else None)
        rows.append({"kind": c.kind, "lang": c.lang, "original": c.original, "shown": c.shown,
                     "cands": [{k: x[k] for k in ("text", "gain", "kind", "old", "new")} for x in rv.candidates]})
    return rows


def decide(r: dict, costs: dict) -> dict | None:
    best, margin = None, 0.0
    for c in r["cands"]:
        cost = costs.get(c["kind"])
        if cost is not None and c["gain"] - cost > margin:
            best, margin = c, c["gain"] - cost
    return best


def evaluate(rows: list[dict], costs: dict) -> tuple[float, float, float]:
    clean = [r for r in rows if r["kind"] == "clean"]
    bad = [r for r in rows if r["kind"] != "clean"]
    harm = sum(decide(r, costs) is not None for r in clean) / max(1, len(clean))
    made = [decide(r, costs) for r in bad]
    restore = sum(c is not None and c["text"] == r["original"].strip() for c, r in zip(made, bad)) / max(1, len(bad))
    wrong = sum(c is not None and c["text"] != r["original"].strip() for c, r in zip(made, bad)) / max(1, len(bad))
    return harm, restore, wrong


def search(rows: list[dict], target: float) -> dict:
    kinds = sorted({c["kind"] for r in rows for c in r["cands"]})
    best = None
    for lam in (0.5, 1, 2, 4, 8, 16):
        for init in (None, 12):
            costs = {k: init for k in kinds}
            for _ in range(5):
                changed = False
                for k in kinds:
                    pick = None
                    for v in GRID:
                        h, rr, _ = evaluate(rows, dict(costs, **{k: v}))
                        obj = rr - lam * max(0.0, h - target) * 10 - 0.01 * h
                        if pick is None or obj > pick[0] + 1e-12:
                            pick = (obj, v)
                    if costs[k] != pick[1]:
                        costs[k], changed = pick[1], True
                if not changed:
                    break
            h, rr, _ = evaluate(rows, costs)
            if h <= target and (best is None or (rr, -h) > best[0]):
                best = ((rr, -h), dict(costs))
    return best[1] if best else {}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "model"))
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    ap.add_argument("--cut", default="dev")
    ap.add_argument("--per-kind", type=int, default=20)
    ap.add_argument("--clean", type=int, default=60)
    ap.add_argument("--harm", type=float, default=0.03)
    ap.add_argument("--memory", action="store_true", help="the document's token memory mixed in (MEMORY_COSTS)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    from dg_lsp.engine import Engine
    from dg_lsp.engine.revise import DEFAULT_COSTS, MEMORY_COSTS

    engine = Engine.load(a.model, threads=1)
    cases = rewrite_benchmark_cases(a.corpus, a.cut, a.per_kind, a.clean)
    t0 = time.time()
    rows = collect(engine, cases, memory=a.memory)
    out = {"command": "python benchmarks/rewrite_costs.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "cut": a.cut, "cases": len(rows), "seconds": round(time.time() - t0, 1), "targets": {}}
    oracle = collections.Counter(r["kind"] for r in rows if r["kind"] != "clean"
                                 and any(c["text"] == r["original"].strip() for c in r["cands"]))
    total = collections.Counter(r["kind"] for r in rows if r["kind"] != "clean")
    out["oracle"] = {k: oracle[k] / total[k] for k in total}  # the author's text among the proposals
    for target in sorted({0.01, a.harm, 0.05}):
        costs = search(rows, target)
        h, rr, w = evaluate(rows, costs)
        out["targets"][str(target)] = {"costs": costs, "harm": h, "restore": rr, "changed_not_restored": w}
        print(f"harm <= {target}: {json.dumps(costs)} -> harm {h:.3f}, restore {rr:.3f}, changed not restored {w:.3f}")
    shipped = {k: (MEMORY_COSTS if a.memory else DEFAULT_COSTS).get(k) for k in sorted({c["kind"] for r in rows for c in r["cands"]})}
    h, rr, w = evaluate(rows, shipped)
    out["shipped"] = {"costs": shipped, "harm": h, "restore": rr, "changed_not_restored": w}
    print(f"shipped {json.dumps(shipped)} -> harm {h:.3f}, restore {rr:.3f}, changed not restored {w:.3f}")
    path = a.out or ROOT / "docs" / "bench" / f"rewrite-costs-{a.cut}{'-memory' if a.memory else ''}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
