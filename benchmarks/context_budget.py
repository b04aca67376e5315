"""How well the model predicts a cut middle from prompts cut at several budgets.

    python -m benchmarks.context_budget [--model DIR] [--holes 300] [--budgets 96,192,384,1024]
                                        [--out docs/bench/context-budget.json]

Holes are ``benchmarks.syntax``'s Python holes (the held-out split of the training corpus:
build it with ``python -m model.corpus --no-npm --manifest /tmp/manifest.json``). For each hole
and budget, the server's cut (``cut_context`` at the cursor, that many prefix + suffix tokens)
goes through the engine's prompt, the encoder, and one decoder step on a canvas of uniformly
random tokens (the engine's starting canvas; the model was trained with uniform noise), the same
canvas for every budget;
reported: the mean cross-entropy (nats) of the true middle (first 31 tokens and EOS) and the
share of its positions whose most likely token is the true one. One step, no sampling: it
measures what the prompt gives the model, which is what the budget changes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--holes", type=int, default=300)
    ap.add_argument("--budgets", default="96,192,384,1024")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "context-budget.json")
    a = ap.parse_args(argv)
    import torch

    from benchmarks.syntax import cut_holes
    from dg_lsp.context import SyntaxDocument, cut_context, registry
    from dg_lsp.engine import Engine

    engine = Engine.load(a.model, device="cpu")
    fm = engine.fast
    if fm is None:
        raise SystemExit("this measurement runs on the fast path (a checkpoint it covers)")
    gen = torch.Generator().manual_seed(0)
    budgets = [int(b) for b in a.budgets.split(",")]
    spec = registry().get("python")
    holes = cut_holes(["python"], a.holes)
    ce: dict[int, list[float]] = {b: [] for b in budgets}
    top1: dict[int, list[float]] = {b: [] for b in budgets}
    tokens: dict[int, list[int]] = {b: [] for b in budgets}
    for h in holes:
        doc = SyntaxDocument(spec, h.text)
        truth = torch.tensor(engine.tokenizer.encode(h.middle)[: engine.canvas_length - 1] + [engine.eos_id])
        n = len(truth)
        canvas = torch.randint(0, engine.vocab_size, (1, engine.canvas_length), generator=gen)
        for b in budgets:
            c = cut_context(doc, h.offset, engine.count_tokens, b, invoked=True)
            ids = engine.prompt(c.prefix, c.suffix).ids
            cache = fm.new_cache()
            with torch.inference_mode():
                fm.encode(ids, cache)
                logits = fm.step_fn(cache, canvas.shape[1])(canvas, None)[0, :n]
            ce[b].append(-logits.log_softmax(-1)[torch.arange(n), truth].mean().item())
            top1[b].append((logits.argmax(-1) == truth).float().mean().item())
            tokens[b].append(len(ids))
    res = {
        "command": "python -m benchmarks.context_budget " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": engine.describe()["path"],
        "holes": len(holes),
        "budgets": {
            b: {"mean_prompt_tokens": statistics.mean(tokens[b]), "mean_cross_entropy": statistics.mean(ce[b]),
                "top1": statistics.mean(top1[b])}
            for b in budgets
        },
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"{len(holes)} Python holes; {res['model']}")
    print("| budget | mean prompt tokens | cross-entropy of the true middle (nats) | top-1 |")
    print("| --- | --- | --- | --- |")
    for b, v in res["budgets"].items():
        print(f"| {b} | {v['mean_prompt_tokens']:.0f} | {v['mean_cross_entropy']:.3f} | {v['top1']:.1%} |")


if __name__ == "__main__":
    main()
