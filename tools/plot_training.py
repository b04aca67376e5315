"""Plot the long run's slope: held-out useful / exact rate and cross-entropies per CPU-hour.

    python tools/plot_training.py [--log model/training_log.json] [--out docs/training-slope.svg]

``model/training_log.json`` holds one point per evaluated checkpoint of the run (cumulative CPU
hours, tokens, held-out scores); this writes a dependency-free SVG with two panels (rates in %,
cross-entropies in nats) and prints a least-squares slope per CPU-hour for each series.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
W, H, PAD = 720, 300, 56
RATES = (("useful_post", "useful (post-processed)", "#1f77b4"), ("useful_raw", "useful (raw)", "#9ecae1"),
         ("exact_post", "exact (post-processed)", "#d62728"),
         # the same checkpoints answering with their causal draft (draft "answer", cut at 0.1)
         ("draft_useful_post", "useful, causal draft answer (post)", "#9467bd"),
         ("draft_exact_post", "exact, causal draft answer (post)", "#8c564b"))
CES = (("causal_ce", "causal cross-entropy of the middle", "#2ca02c"),
       ("one_step_ce", "one-step cross-entropy from <mask>", "#ff7f0e"))


def slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else None


def panel(points: list[dict], series, y0: float, title: str, unit: str) -> tuple[str, dict]:
    xs = [p["cpu_hours"] for p in points]
    vals = [p[k] for p in points for k, _, _ in series if p.get(k) is not None]
    x_max = max(xs + [0.1]) * 1.1
    lo, hi = min(vals + [0.0]), max(vals + [1.0])
    if unit == "nats":
        lo, hi = min(vals) - 0.3, max(vals) + 0.3
    hi = hi * 1.1 if unit == "%" else hi
    sx = lambda x: PAD + (W - 2 * PAD) * x / x_max  # noqa: E731
    sy = lambda y: y0 + H - PAD - (H - 2 * PAD) * (y - lo) / ((hi - lo) or 1)  # noqa: E731
    out = [f'<text x="{W / 2}" y="{y0 + 20}" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{PAD}" y1="{y0 + H - PAD}" x2="{W - PAD}" y2="{y0 + H - PAD}" stroke="#333"/>',
           f'<line x1="{PAD}" y1="{y0 + PAD}" x2="{PAD}" y2="{y0 + H - PAD}" stroke="#333"/>',
           f'<text x="{W / 2}" y="{y0 + H - 16}" text-anchor="middle" font-size="12">cumulative CPU-hours</text>']
    for i in range(5):
        yv = lo + (hi - lo) * i / 4
        out.append(f'<text x="{PAD - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end" font-size="10">{yv:.1f}</text>')
        xv = x_max * i / 4
        out.append(f'<text x="{sx(xv):.1f}" y="{y0 + H - PAD + 14}" text-anchor="middle" font-size="10">{xv:.2f}</text>')
    slopes = {}
    for j, (key, label, color) in enumerate(series):
        pts = [(p["cpu_hours"], p[key]) for p in points if p.get(key) is not None]
        if not pts:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}"/>' for x, y in pts]
        out.append(f'<text x="{W - PAD - 4}" y="{y0 + PAD + 14 * j}" text-anchor="end" font-size="11" '
                   f'fill="{color}">{label} ({unit})</text>')
        slopes[key] = slope([x for x, _ in pts], [y for _, y in pts])
    return "\n".join(out), slopes


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", type=Path, default=ROOT / "model" / "training_log.json")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "training-slope.svg")
    a = ap.parse_args(argv)
    points = json.loads(a.log.read_text())["points"]
    rates, s1 = panel(points, RATES, 0, "Held-out completion test, 603 holes (rates)", "%")
    ces, s2 = panel(points, CES, H, "Held-out cross-entropy of the true middle", "nats")
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{2 * H}" font-family="sans-serif">'
           f'<rect width="100%" height="100%" fill="white"/>\n{rates}\n{ces}\n</svg>\n')
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(svg)
    for k, v in {**s1, **s2}.items():
        print(f"{k}: " + ("n/a" if v is None else f"{v:+.3f} per CPU-hour"))


if __name__ == "__main__":
    main()
