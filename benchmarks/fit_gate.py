"""Fit the learned show/withhold gate (``dg_lsp/gate.py``) on dev holes and write ``gate.json``.

    python benchmarks/fit_gate.py [--model model] [--corpus data/corpus] [--out model/gate.json]

Holes: the **dev cut** of the held-out packages (``benchmarks/memory.py --cut dev``: seed 7, never the
test holes). Each is completed as an automatic request (``dg_lsp.service.propose``, ``invoked=False``)
twice: with the memory at its defaults (document, open files of the same folder, the package as the
workspace) and with it off, so the gate serves both settings. Non-blank answers are the examples;
the label is ``useful`` (``model.heldout.useful``). The fitted logistic regression (L2 1.0 on
standardised features) is written with its dev precision/coverage curve to ``--out``; the gate's
probability is then multiplied by the judge's penalty (``dg_lsp.confidence.judge``) as the server does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THRESHOLDS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7]


def curve(rows: list[dict], conf_key: str) -> list[dict]:
    out = []
    n = len(rows) or 1
    for t in THRESHOLDS:
        shown = [r for r in rows if r["answer"].strip() and r[conf_key] >= t]
        out.append({"threshold": t, "coverage": len(shown) / n,
                    "precision": (sum(r["useful"] for r in shown) / len(shown)) if shown else None})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "model"))
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    ap.add_argument("--out", type=Path, default=ROOT / "model" / "gate.json")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from benchmarks.memory import cut, run
    from dg_lsp.engine import Engine
    from dg_lsp.gate import fit
    from dg_lsp.memory.fusion import MixParams
    from model import heldout

    engine = Engine.load(args.model, device="cpu", threads=args.threads)
    engine.gate = None  # the features and the judge's own confidence, not a previous gate's
    holes = cut(args.corpus, "dev")
    records = heldout.load_records(args.corpus)
    rows = []
    for scopes in (("document", "open", "workspace"), ()):
        got = run(engine, holes, records, scopes, MixParams())
        for r in got:
            r["scopes"] = "+".join(scopes) or "none"
            r["factor"] = (r["confidence"] / r["model_confidence"]) if r["model_confidence"] > 0 else 0.0
        rows += got
    train = [r for r in rows if r["answer"].strip() and r["features"] is not None]
    gate = fit([r["features"] for r in train], [int(r["useful"]) for r in train])
    for r in rows:
        r["gate"] = gate.probability(r["features"]) * r["factor"] if r["features"] is not None and r["answer"].strip() else 0.0
    report = {}
    for name in ("document+open+workspace", "none"):
        sub = [r for r in rows if r["scopes"] == name]
        report[name] = {"holes": len(sub), "useful": sum(r["useful"] for r in sub) / max(1, len(sub)),
                        "gate": curve(sub, "gate"), "judge": curve(sub, "confidence")}
    gate.meta = {"fitted_on": f"dev cut of the held-out packages ({len(holes)} holes, seed 7), automatic requests, "
                              "memory at its defaults and off", "examples": len(train),
                 "positives": sum(int(r["useful"]) for r in train), "command": "python benchmarks/fit_gate.py",
                 "dev": report}
    args.out.write_text(json.dumps(gate.to_json(), indent=1) + "\n")
    for name, rep in report.items():
        print(f"{name}: useful {rep['useful']:.1%}")
        for a, b in zip(rep["gate"], rep["judge"]):
            print(f"  t={a['threshold']:.2f}  gate cov {a['coverage']:.1%} prec {(a['precision'] or 0):.1%}   "
                  f"judge cov {b['coverage']:.1%} prec {(b['precision'] or 0):.1%}")
    print("weights", dict(zip(__import__("dg_lsp.gate").gate.FEATURES, [round(w, 3) for w in gate.weights])), "bias", gate.bias)


if __name__ == "__main__":
    main()
