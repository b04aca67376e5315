"""Training throughput, side by side in one process: transformers' modules vs the lean trainer.

    python benchmarks/train_speed.py [--size mini] [--batch 16] [--canvases 2] [--steps 8]
                                     [--threads 2] [--ar-weight 0] [--noise uniform]
                                     [--canvas-weight 1] [--ar-positions 48]
                                     [--out docs/bench/train-speed.json]

Every variant runs the same batches (fill-in-the-middle examples from the corpus's train split,
or the standard library when there is no corpus) through ``model.train.step_losses``: forward,
self-conditioning on every other step, backward; no optimizer step (the same for all). Reported:
steady-state milliseconds per step and tokens per second (prompt + canvas tokens through the
model, the trainer's own count), after two warm-up steps (the compiled variant also pays its
compilation there, reported separately). Variants: transformers in float32 and under bf16
autocast; the lean forward in float32, in bf16, and compiled in bf16.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def records(limit_mb: float) -> list[dict]:
    from model.corpus import iter_corpus

    recs, total = [], 0
    corpus = ROOT / "data" / "corpus"
    if any(corpus.glob("train-*.jsonl")):
        for r in iter_corpus(corpus, "train"):
            recs.append({"text": r["text"], "lang": r["lang"]})
            total += len(r["text"])
            if total > limit_mb * 1e6:
                break
        return recs
    import sysconfig

    for p in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:200]:
        recs.append({"text": p.read_text(encoding="utf-8", errors="replace"), "lang": "python"})
    return recs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="mini")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--canvases", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ar-weight", type=float, default=0.0)
    ap.add_argument("--noise", default="uniform")
    ap.add_argument("--canvas-weight", type=float, default=1.0, help="0: next-token loss only, the decoder not run")
    ap.add_argument("--ar-positions", type=int, default=48)
    ap.add_argument("--variants", default="hf-fp32,hf-bf16,lean-fp32,lean-bf16,lean-bf16-compiled")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "train-speed.json")
    a = ap.parse_args(argv)
    import torch
    from transformers import DiffusionGemmaForBlockDiffusion

    from dg_lsp.engine.fastpath import cpu_has_bf16
    from dg_lsp.training.config import make_config
    from dg_lsp.training.examples import ExampleSampler, Tok, collate
    from model.train import TrainConfig, make_forward, step_losses

    torch.set_num_threads(a.threads)
    tok = Tok(ROOT / "model")
    sampler = ExampleSampler(records(16), tok, 32)
    batches = [collate(sampler.batch(0, s, a.batch), tok.pad_id) for s in range(a.steps + 2)]
    ids = {"vocab": len(tok), "eos": tok.eos_id, "pad": tok.pad_id, "mask": tok.get_vocab()["<mask>"]}
    cfg = TrainConfig(canvases=a.canvases, ar_weight=a.ar_weight, noise=a.noise, canvas_weight=a.canvas_weight,
                      ar_positions=a.ar_positions)
    res: dict = {"command": "python benchmarks/train_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "cpu_bf16": cpu_has_bf16(), "threads": a.threads, "size": a.size, "batch": a.batch,
                 "canvases": a.canvases, "ar_weight": a.ar_weight, "noise": a.noise, "canvas_weight": a.canvas_weight,
                 "ar_positions": a.ar_positions, "variants": {}}
    for variant in a.variants.split(","):
        engine, dtype, *rest = variant.split("-")
        torch.manual_seed(0)
        model = DiffusionGemmaForBlockDiffusion(make_config(len(tok), a.size)).train()
        fwd = make_forward(model, engine, compile=bool(rest))
        times, toks, warm = [], 0, 0.0
        for i, b in enumerate(batches):
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
                _, _, n = step_losses(fwd, b, cfg, ids, i, use_sc=i % 2 == 0)
            model.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t
            if i < 2:
                warm += dt
            else:
                times.append(dt)
                toks += n
        r = {"ms_per_step": 1000 * statistics.mean(times), "tok_s": toks / sum(times), "warmup_s": warm}
        res["variants"][variant] = r
        print(f"{variant:22s} {r['ms_per_step']:7.0f} ms/step {r['tok_s']:8.0f} tok/s  (warm-up {warm:.1f} s)", flush=True)
    v = res["variants"]
    hf_best = max((x["tok_s"] for k, x in v.items() if k.startswith("hf")), default=None)
    lean_best = max((x["tok_s"] for k, x in v.items() if k.startswith("lean")), default=None)
    if hf_best and lean_best:
        res["lean_over_best_hf"] = lean_best / hf_best
        print(f"lean (best) / transformers (best): {lean_best / hf_best:.2f}x")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
