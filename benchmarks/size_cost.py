"""What each candidate model size costs to serve, measured through the fast path before training it.

    python benchmarks/size_cost.py [--sizes mini,small,base] [--out docs/bench/size-cost.json]

For each size: a random-weight checkpoint (``model.make_random``, the embedded tokenizer's
vocabulary size), loaded by the server's engine; a prompt cut from ``argparse.py`` at two
lengths (~200 and ~400 tokens); reported medians of 5 runs after 2 warm-ups, 2 threads:
encoding the prompt from an empty cache, one greedy draft token (what a draft answer costs per
token) and one decoder step over a 32-token canvas (what Rewrite selection / Fill holes cost per
step). Random weights never stop a draft early, so every draft runs its 16 tokens.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="mini,small,base")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "size-cost.json")
    a = ap.parse_args(argv)
    import torch

    from dg_lsp.engine.core import Engine
    from model.make_random import build
    from dg_lsp.training.config import SIZES

    torch.set_num_threads(a.threads)
    import argparse as argparse_mod

    src = Path(argparse_mod.__file__).read_text()
    cut = src.index("def parse_known_args")
    res = {"command": "python benchmarks/size_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "threads": a.threads, "sizes": {}}
    for size in a.sizes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            build(Path(tmp), size, corpus_mb=1.0)
            eng = Engine.load(tmp, threads=a.threads)
            from safetensors import safe_open

            n_params = 0
            for f in Path(tmp).glob("*.safetensors"):
                with safe_open(f, "pt") as st:
                    n_params += sum(math.prod(st.get_slice(k).get_shape()) for k in st.keys() if "vision" not in k)
            row = {"shape": SIZES[size].__dict__, "text_params_m": round(n_params / 1e6, 2)}
            for chars in (700, 1400):
                enc, tok, step = [], [], []
                for r in range(7):
                    eng.cache.reset()
                    t0 = time.perf_counter()
                    prompt, kv, _, _ = eng._encode(src[cut - chars:cut], src[cut:cut + chars // 2], "python", "", None)
                    t1 = time.perf_counter()
                    with torch.inference_mode():
                        ids, _ = eng.fast.draft(kv, prompt.ids[-1], 16, banned=eng.banned, eos_ids=())
                        t2 = time.perf_counter()
                        canvas = torch.full((1, eng.canvas_length), eng.eos_id)
                        eng._step_fn(kv, len(eng.cache.ids))(canvas, None)
                        t3 = time.perf_counter()
                    if r >= 2:
                        enc.append(t1 - t0)
                        tok.append((t2 - t1) / max(1, len(ids)))
                        step.append(t3 - t2)
                key = f"prompt_{len(prompt.ids)}"
                row[key] = {"encode_ms": round(1e3 * statistics.median(enc), 2),
                            "draft_ms_per_token": round(1e3 * statistics.median(tok), 2),
                            "decoder_step_ms": round(1e3 * statistics.median(step), 2)}
                print(size, key, row[key], flush=True)
            res["sizes"][size] = row
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
