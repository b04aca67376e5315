"""What the memory costs per request and per drafted token, side by side on the same prompts.

    python benchmarks/memory_cost.py [--model model] [--corpus data/corpus] [--holes 120] [--repeats 3]
                                     [--out docs/bench/memory-cost.json]

For dev holes of the held-out packages (``benchmarks/memory.py --cut dev``), with the memory at its
defaults (the document split at the cursor, three files of the same folder as open documents, the
package as the workspace index, built once per package as the server's background index is):

* **per request**: building the request's memory (``build_memory``: tokenizing the document
  through the engine's line cache, cold and warm, the open-documents index) and starting its cursor
  (the first longest-suffix searches);
* **per drafted token**: the causal draft of the same prompt (encoded once, in the prompt cache)
  with and without the memory, ``--repeats`` times each, alternating; the difference of the best
  times per token drafted. By default all 16 tokens are drafted (past where the answer is cut, the
  draft is mostly tokens that end every match, so each costs a new search); ``--serving`` drafts
  as the server does, to the answer's cut.

Prints medians and p90s and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * (len(s) - 1)))] if s else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "model"))
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    ap.add_argument("--holes", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--serving", action="store_true",
                    help="draft as the server does (stop at the answer's cut) instead of all 16 tokens")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "memory-cost.json")
    args = ap.parse_args()

    from benchmarks.memory import PackageIndex, cut
    from dg_lsp.context import cut_context, SyntaxDocument, registry
    from dg_lsp.engine import Engine
    from dg_lsp.memory.scopes import build_memory
    from dg_lsp.service import prompt_budget
    from dg_lsp.settings import DEFAULTS
    from model import heldout

    engine = Engine.load(args.model, device="cpu", threads=1)
    holes = cut(args.corpus, "dev")
    holes = holes[:: max(1, len(holes) // args.holes)][: args.holes]
    records = heldout.load_records(args.corpus)
    by_source = defaultdict(list)
    for r in records:
        by_source[r["source"]].append((r["path"], r["text"]))
    packages = {}
    build_cold, build_warm, start_ms, per_token, tokens = [], [], [], [], []
    for h in holes:
        if h.source not in packages:
            packages[h.source] = PackageIndex(engine.tokens.encode, by_source[h.source])
        ws = packages[h.source]
        folder = h.path.rsplit("/", 1)[0] if "/" in h.path else ""
        others = [(p, 1, t) for p, t in by_source[h.source]
                  if p != h.path and (p.rsplit("/", 1)[0] if "/" in p else "") == folder][:3]
        doc = h.doc_text
        times = []
        for _ in range(2):  # cold (new lines), then warm (the line cache, as while typing)
            t0 = time.perf_counter()
            mem = build_memory(engine.tokens.encode, doc, h.offset, open_docs=others, workspace=ws,
                               open_paths=[h.path] + [p for p, _, _ in others])
            times.append((time.perf_counter() - t0) * 1000)
        build_cold.append(times[0])
        build_warm.append(times[1])
        spec = registry().get(h.lang)
        c = cut_context(SyntaxDocument(spec, doc), h.offset, engine.count_tokens, prompt_budget(DEFAULTS, engine))
        prompt = engine.prompt(c.prefix, c.suffix, spec.name)
        kv, _ = engine.cache.prepare(prompt.ids, engine.device)
        best = {True: float("inf"), False: float("inf")}
        n_tok = {True: 0, False: 0}
        for _ in range(args.repeats):
            for with_mem in (False, True):
                t0 = time.perf_counter()
                cursor = engine.memory_cursor(mem, c.prefix) if with_mem else None
                t1 = time.perf_counter()
                # as the server drafts (its floor and its stop at the cut), or all 16 tokens
                floor = engine._draft_floor(engine.settings, cursor) if args.serving else 0.0
                stop = engine._draft_stop(engine.settings, cursor) if args.serving else None
                ids, _ = engine.fast.draft(kv, prompt.ids[-1], 16, banned=engine.banned, eos_ids=engine.eos_ids,
                                           min_prob=floor, memory=cursor, stop=stop)
                t2 = time.perf_counter()
                if with_mem:
                    start_ms.append((t1 - t0) * 1000)
                best[with_mem] = min(best[with_mem], (t2 - t1) * 1000)
                n_tok[with_mem] = len(ids)
        if n_tok[True] and n_tok[False]:
            per_token.append(best[True] / n_tok[True] - best[False] / n_tok[False])
            tokens.append(n_tok[True])
    res = {
        "command": "python " + " ".join(sys.argv),
        "holes": len(holes),
        "build_ms_cold": {"p50": statistics.median(build_cold), "p90": pct(build_cold, 0.9)},
        "build_ms_warm": {"p50": statistics.median(build_warm), "p90": pct(build_warm, 0.9)},
        "cursor_start_ms": {"p50": statistics.median(start_ms), "p90": pct(start_ms, 0.9)},
        "added_ms_per_drafted_token": {"p50": statistics.median(per_token), "p90": pct(per_token, 0.9),
                                       "mean": statistics.fmean(per_token)},
        "drafted_tokens_mean": statistics.fmean(tokens),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
