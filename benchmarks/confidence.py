"""Calibrate the confidence gate and measure alternatives on the held-out holes.

    python benchmarks/confidence.py [--model model] [--corpus data/corpus] [--per-kind 67]
                                    [--seed 1234] [--threads 1] [--out docs/bench/confidence.json]
                                    [--svg docs/confidence.svg]

The holes of the held-out completion test (``model/heldout.py``: same corpus, ``--per-kind`` and
``--seed``), each completed through ``dg_lsp.service.propose``, the code the server runs for a
request (cut, denoise, post-process, judge), with the server's recent-answer memory carried from
hole to hole as one session would:

1. **automatic** (``invoked=False``, one candidate): the suggestion the gate decides on. For every
   threshold: coverage (share of holes shown), precision (share of shown ones that are useful /
   exact), and the most frequent shown answer's share. The same for the model's raw signals
   (first-step and last-step geometric mean probability, before the judge's penalties).
2. **invoked, 1 vs 3 candidates**, one after the other on each hole with a cold prompt cache:
   useful@1, useful@3 (any of the three shown ones is useful) and the latency of each, side by side.

Writes JSON to ``--out``, Markdown next to it, and an SVG of precision and coverage per threshold.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.eval import write_report  # noqa: E402
from model.heldout import add_heldout_args  # noqa: E402

THRESHOLDS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
TARGET_PRECISION = 0.6  # issue 17: at the default gate, 60% of shown automatic suggestions useful


def _pct(q: float) -> int:
    return max(0, min(99, int(q)))


def run(model: str, corpus: Path, per_kind: int, seed: int, threads: int) -> dict:
    from dg_lsp.confidence import RecentAnswers, model_confidence
    from dg_lsp.context import SyntaxDocument, registry
    from dg_lsp.engine import Engine
    from dg_lsp.service import propose
    from dg_lsp.settings import DEFAULTS
    from model import heldout

    engine = Engine.load(model, device="cpu", threads=threads)
    holes = heldout.cut_heldout_holes(corpus, per_kind=per_kind, seed=seed)
    if not holes:
        raise SystemExit(f"no held-out holes in {corpus} (build the corpus: python -m model.corpus)")
    recent = RecentAnswers()
    rows = []
    t_start = time.perf_counter()
    for i, h in enumerate(holes):
        spec = registry().get(h.lang)
        place = (h.path, h.doc_text.count("\n", 0, h.offset))

        def go(invoked: bool, k: int):
            engine.cache.reset()
            doc = SyntaxDocument(spec, h.doc_text)
            t0 = time.perf_counter()
            p = propose(engine, spec, doc, h.offset, DEFAULTS, invoked=invoked, candidates=k, recent=recent, place=place)
            return p, (time.perf_counter() - t0) * 1000

        auto, auto_ms = go(False, 1)
        recent.add(place, auto.text)
        sig = auto.result.signals if auto.result is not None else None
        last = math.exp(min(0.0, sig.last)) if sig is not None and sig.tokens else 0.0
        pair = [go(True, 1), go(True, 3)] if i % 2 == 0 else list(reversed([go(True, 3), go(True, 1)]))
        (one, one_ms), (three, three_ms) = pair
        shown3 = [three, *three.alternatives]
        rows.append({
            "lang": h.lang, "kind": h.kind, "middle": h.middle,
            "auto": auto.text, "auto_replace": auto.replace, "confidence": auto.confidence,
            "model_first": model_confidence(sig), "model_last": last, "judged": auto.judged,
            "auto_useful": heldout.useful(auto.text, h.middle), "auto_exact": heldout.exact(auto.text, h.middle),
            "auto_ms": auto_ms,
            "useful1": heldout.useful(one.text, h.middle), "ms1": one_ms,
            "useful3": any(heldout.useful(p.text, h.middle) for p in shown3 if p.text),
            "best3_useful": heldout.useful(three.text, h.middle), "n3": sum(1 for p in shown3 if p.text), "ms3": three_ms,
        })
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{len(holes)} holes, {time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    return {"model": model, "holes": len(holes), "per_kind": per_kind, "seed": seed, "threads": threads,
            "rows": rows, "seconds": time.perf_counter() - t_start}


def curve(rows: list[dict], key: str) -> list[dict]:
    out = []
    for t in THRESHOLDS:
        shown = [r for r in rows if r["auto"].strip() and r[key] >= t]
        answers = Counter(r["auto"].strip() for r in shown)
        top = answers.most_common(1)[0] if answers else ("", 0)
        out.append({
            "threshold": t, "shown": len(shown), "coverage": len(shown) / len(rows),
            "precision_useful": (sum(r["auto_useful"] for r in shown) / len(shown)) if shown else None,
            "precision_exact": (sum(r["auto_exact"] for r in shown) / len(shown)) if shown else None,
            "most_frequent_share": top[1] / len(rows), "most_frequent": top[0],
        })
    return out


def summarize(res: dict) -> dict:
    rows = res["rows"]
    n = len(rows)
    curves = {k: curve(rows, k) for k in ("confidence", "model_first", "model_last")}
    ok = [c for c in curves["confidence"] if c["precision_useful"] is not None and c["precision_useful"] >= TARGET_PRECISION]
    q = lambda xs, p: statistics.quantiles(xs, n=100)[_pct(p) - 1] if len(xs) > 1 else (xs[0] if xs else 0.0)  # noqa: E731
    ms1, ms3 = [r["ms1"] for r in rows], [r["ms3"] for r in rows]
    return {
        "curves": curves,
        "lowest_threshold_at_target": ok[0]["threshold"] if ok else None,
        "useful_at_1": sum(r["useful1"] for r in rows) / n,
        "useful_at_3": sum(r["useful3"] for r in rows) / n,
        "best_of_3_useful": sum(r["best3_useful"] for r in rows) / n,
        "candidates_shown_mean": statistics.fmean(r["n3"] for r in rows),
        "automatic_useful": sum(r["auto_useful"] for r in rows) / n,
        "latency_ms": {"one": {"p50": statistics.median(ms1), "p99": q(ms1, 99)},
                       "three": {"p50": statistics.median(ms3), "p99": q(ms3, 99)},
                       "ratio_p50": statistics.median(ms3) / statistics.median(ms1),
                       "automatic_p50": statistics.median(r["auto_ms"] for r in rows)},
        "judged": dict(Counter((r["judged"].split(" for ")[0] if r["judged"] else "not lowered") for r in rows if r["auto"].strip())),
    }


def svg(summary: dict) -> str:
    w, h, pad = 720, 340, 56
    sx = lambda t: pad + (w - 2 * pad) * t / 0.9  # noqa: E731
    sy = lambda y: h - pad - (h - 2 * pad) * y  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="14">Confidence gate on the held-out holes '
           '(automatic requests)</text>',
           f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#333"/>',
           f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#333"/>',
           f'<text x="{w / 2}" y="{h - 16}" text-anchor="middle" font-size="12">minConfidence</text>']
    for i in range(6):
        y = i / 5
        out.append(f'<text x="{pad - 6}" y="{sy(y) + 4:.1f}" text-anchor="end" font-size="10">{y:.0%}</text>')
    for t in (0.0, 0.2, 0.4, 0.6, 0.8):
        out.append(f'<text x="{sx(t):.1f}" y="{h - pad + 14}" text-anchor="middle" font-size="10">{t:.1f}</text>')
    series = [("coverage", "coverage (share of holes shown)", "#7f7f7f"),
              ("precision_useful", "precision: useful", "#1f77b4"), ("precision_exact", "precision: exact", "#d62728")]
    for j, (key, label, color) in enumerate(series):
        pts = [(c["threshold"], c[key]) for c in summary["curves"]["confidence"] if c[key] is not None]
        if pts:
            out.append(f'<polyline points="{" ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)}" fill="none" '
                       f'stroke="{color}" stroke-width="2"/>')
            out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>' for x, y in pts]
        out.append(f'<text x="{w - pad}" y="{pad + 14 * j}" text-anchor="end" font-size="11" fill="{color}">{label}</text>')
    out.append(f'<line x1="{pad}" y1="{sy(TARGET_PRECISION):.1f}" x2="{w - pad}" y2="{sy(TARGET_PRECISION):.1f}" '
               'stroke="#1f77b4" stroke-dasharray="4,4"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def markdown(res: dict, summary: dict, command: str) -> str:
    lines = [f"Model `{res['model']}`, {res['holes']} held-out holes, command `{command}` "
             f"({res['seconds']:.0f} s).", ""]
    for key, title in (("confidence", "the served confidence (after the judge)"),
                       ("model_first", "the model's first-step signal alone"),
                       ("model_last", "the model's last-step signal alone")):
        lines += [f"Gate on {title}:", "",
                  "| minConfidence | shown | coverage | precision useful | precision exact | most frequent shown answer |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for c in summary["curves"][key]:
            pu = "n/a" if c["precision_useful"] is None else f"{c['precision_useful']:.1%}"
            pe = "n/a" if c["precision_exact"] is None else f"{c['precision_exact']:.1%}"
            lines.append(f"| {c['threshold']:.2f} | {c['shown']} | {c['coverage']:.1%} | {pu} | {pe} | "
                         f"{c['most_frequent_share']:.1%} (`{c['most_frequent'][:20]}`) |")
        lines.append("")
    lat = summary["latency_ms"]
    lines += ["Invoked requests, 1 vs 3 candidates on each hole, side by side (cold prompt cache):", "",
              "| | useful | p50 ms | p99 ms |", "| --- | --- | --- | --- |",
              f"| 1 candidate | {summary['useful_at_1']:.1%} | {lat['one']['p50']:.1f} | {lat['one']['p99']:.1f} |",
              f"| 3 candidates (any shown) | {summary['useful_at_3']:.1%} | {lat['three']['p50']:.1f} | {lat['three']['p99']:.1f} |",
              f"| 3 candidates (the best ranked) | {summary['best_of_3_useful']:.1%} | | |", "",
              f"Latency ratio (p50, 3 vs 1): {lat['ratio_p50']:.2f}x; distinct candidates shown per request: "
              f"{summary['candidates_shown_mean']:.2f}. Automatic request p50 {lat['automatic_p50']:.1f} ms.", "",
              f"Lowest threshold at >= {TARGET_PRECISION:.0%} useful precision: "
              f"{summary['lowest_threshold_at_target'] if summary['lowest_threshold_at_target'] is not None else 'none'}.",
              f"Judge's penalties on non-empty automatic answers: {summary['judged']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_heldout_args(ap, ROOT, ROOT / "docs" / "bench" / "confidence.json")
    ap.add_argument("--svg", type=Path, default=ROOT / "docs" / "confidence.svg")
    a = ap.parse_args(argv)
    res = run(a.model, a.corpus, a.per_kind, a.seed, a.threads)
    summary = summarize(res)
    res["summary"] = summary
    command = "python benchmarks/confidence.py " + " ".join(argv if argv is not None else sys.argv[1:])
    res["command"] = command.strip()
    write_report(a.out, res, markdown(res, summary, command.strip()))
    a.svg.parent.mkdir(parents=True, exist_ok=True)
    a.svg.write_text(svg(summary))


if __name__ == "__main__":
    main()
