"""The token memory on held-out holes: ablations by scope, weights chosen on a dev cut.

    python benchmarks/memory.py [--model model] [--corpus data/corpus] [--cut test|dev]
                                [--scopes none,document,open,workspace,all] [--grid]
                                [--out docs/bench/memory-test.json]

Holes: the held-out completion test's (``model/heldout.py``; ``--cut test`` = seed 1234, 67 per
kind, the 603 holes reported everywhere) or a **dev cut** (``--cut dev``: seed 7, 50 per kind,
minus any hole at the same place as a test hole), the only cut weights are chosen on.

Each hole is completed in-process by ``dg_lsp.service.propose``, the code the server runs for an
automatic request (``invoked=False``, one candidate, the document with the middle removed), with
the memory of the chosen scopes (``dg_lsp.memory.scopes.build_memory``):

* ``document``: the hole's file as the editor has it (the middle absent);
* ``open``: up to ``--open-files`` (3) other files of the same folder of the same package, as
  open buffers;
* ``workspace``: every other file of the same package (the hole's own file hidden, as an open
  document's file is), one index per package, built as the server's workspace index is;
* ``all``: the three together.

Scores per scope set: useful, exact, blank, the most frequent answer (``model.heldout``), the
share shown at the default gate and its precision, and the memory's added time per request and
per drafted token. ``--grid`` sweeps ``MixParams`` on the cut (use it on dev only). Writes JSON to
``--out`` and Markdown next to it.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.eval import write_report  # noqa: E402

DEV_SEED, DEV_PER_KIND = 7, 50
TEST_SEED, TEST_PER_KIND = 1234, 67


class PackageIndex:
    """A workspace snapshot for one package: ``index`` and ``exclude_spans`` as the server's."""

    def __init__(self, encode, files: list[tuple[str, str]]):
        from dg_lsp.memory.index import TokenIndex

        self.paths = [p for p, _ in files]
        self.index = TokenIndex([encode(t) for _, t in files])

    def exclude_spans(self, paths):
        import numpy as np

        spans = []
        for p in paths:
            if p in self.paths:
                i = self.paths.index(p)
                a = int(self.index.starts[i])
                spans.append((a, a + int(self.index.lengths[i]) + 1))
        return np.asarray(spans, dtype=np.int64).reshape(-1, 2) if spans else None


def cut(corpus: Path, which: str):
    from model import heldout

    test = heldout.cut_heldout_holes(corpus, per_kind=TEST_PER_KIND, seed=TEST_SEED)
    if which == "test":
        return test
    taken = {(h.source, h.path, h.text.count("\n", 0, h.offset)) for h in test}
    dev = heldout.cut_heldout_holes(corpus, per_kind=DEV_PER_KIND, seed=DEV_SEED)
    return [h for h in dev if (h.source, h.path, h.text.count("\n", 0, h.offset)) not in taken]


def scope_sets(names: str) -> dict[str, tuple[str, ...]]:
    out = {}
    for n in names.split(","):
        out[n] = () if n == "none" else ("document", "open", "workspace") if n == "all" else \
            ("document", "open", "workspace", "corpus") if n == "all+corpus" else tuple(n.split("+"))
    return out


def corpus_index(engine, corpus: Path, mb: float):
    """A memory of the training corpus: its train split's first ``mb`` MB, one sequence per file."""
    from dg_lsp.memory.index import TokenIndex
    from model.corpus import iter_corpus

    seqs, total = [], 0
    for r in iter_corpus(corpus, "train"):
        seqs.append(engine.tokens.encode(r["text"]))
        total += len(r["text"])
        if total >= mb * 1e6:
            break
    return TokenIndex(seqs)


def run(engine, holes, records, scopes: tuple[str, ...], params, open_files: int = 3, corpus=None) -> list[dict]:
    from dg_lsp.confidence import RecentAnswers
    from dg_lsp.context import SyntaxDocument, registry
    from dg_lsp.memory.scopes import build_memory
    from dg_lsp.service import propose
    from dg_lsp.settings import DEFAULTS
    from model import heldout

    encode = engine.tokens.encode
    by_source: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in records:
        by_source[r["source"]].append((r["path"], r["text"]))
    packages: dict[str, PackageIndex] = {}
    recent = RecentAnswers()
    rows = []
    for h in holes:
        spec = registry().get(h.lang)
        doc_text = h.doc_text
        memory = None
        t0 = time.perf_counter()
        if scopes:
            folder = h.path.rsplit("/", 1)[0] if "/" in h.path else ""
            others = [(p, t) for p, t in by_source[h.source]
                      if p != h.path and (p.rsplit("/", 1)[0] if "/" in p else "") == folder][:open_files]
            ws = None
            if "workspace" in scopes:
                if h.source not in packages:
                    packages[h.source] = PackageIndex(encode, by_source[h.source])
                ws = packages[h.source]
            memory = build_memory(
                encode, doc_text, h.offset, document="document" in scopes,
                open_docs=[(p, 1, t) for p, t in others] if "open" in scopes else (),
                workspace=ws, open_paths=[h.path] + [p for p, _ in others], params=params)
            if "corpus" in scopes and corpus is not None:
                from dg_lsp.memory.fusion import Memory, Scope

                memory = memory or Memory([], params)
                memory.scopes.append(Scope("corpus", corpus))
        t_mem = (time.perf_counter() - t0) * 1000
        place = (h.path, doc_text.count("\n", 0, h.offset))
        engine.cache.reset()
        t1 = time.perf_counter()
        p = propose(engine, spec, SyntaxDocument(spec, doc_text), h.offset, DEFAULTS, invoked=False,
                    recent=recent, place=place, memory=memory)
        ms = (time.perf_counter() - t1) * 1000
        recent.add(place, p.text)
        res = p.result
        drafted = len(res.token_ids) if res is not None else 0
        sc = heldout.score(h, p.text, p.replace)
        rows.append({"lang": h.lang, "kind": h.kind, "answer": p.text, "middle": h.middle, **sc,
                     "features": p.features,
                     "model_confidence": p.model_confidence,
                     "confidence": p.confidence, "ms": ms, "memory_ms": t_mem + (res.timings.get("memory", 0.0) if res else 0.0),
                     "draft_ms": res.timings.get("draft", 0.0) if res else 0.0, "tokens": drafted,
                     "memory": dict(res.memory) if res is not None else {}})
    return rows


def summary(rows: list[dict], gate: float) -> dict:
    from model import heldout

    n = len(rows) or 1
    shown = [r for r in rows if r["answer"].strip() and r["confidence"] >= gate]
    share, answer = heldout.most_frequent([r["answer"] for r in rows])
    return {
        "holes": len(rows),
        "useful": sum(r["useful"] for r in rows) / n,
        "exact": sum(r["exact"] for r in rows) / n,
        "blank": sum(not r["answer"].strip() for r in rows) / n,
        "most_frequent": share, "most_frequent_answer": answer,
        "shown_at_gate": len(shown) / n,
        "precision_at_gate": (sum(r["useful"] for r in shown) / len(shown)) if shown else None,
        "ms_p50": statistics.median(r["ms"] for r in rows) if rows else 0.0,
        "memory_ms_p50": statistics.median(r["memory_ms"] for r in rows) if rows else 0.0,
    }


def by_group(rows: list[dict], gate: float) -> dict:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["lang"]].append(r)
        groups[r["kind"]].append(r)
    return {g: summary(rs, gate) for g, rs in groups.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "model"))
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    ap.add_argument("--cut", choices=("dev", "test"), default="dev")
    ap.add_argument("--source-dir", type=Path, default=None,
                    help="holes (test seed) from this folder's files, a repository outside the corpus; its files "
                         "are the workspace")
    ap.add_argument("--scopes", default="none,document,open,workspace,all")
    ap.add_argument("--grid", action="store_true", help="sweep the mixing weights (dev cut only)")
    ap.add_argument("--open-files", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--corpus-mb", type=float, default=0.0,
                    help="with a 'corpus' scope: index this many MB of the training split (weight --corpus-weight)")
    ap.add_argument("--corpus-weight", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.grid and args.cut != "dev":
        raise SystemExit("--grid chooses weights: on the dev cut only")

    from dg_lsp.engine import Engine
    from dg_lsp.memory.fusion import MixParams
    from dg_lsp.settings import DEFAULTS
    from model import heldout

    engine = Engine.load(args.model, device="cpu", threads=args.threads)
    if args.source_dir is not None:
        if args.grid:
            raise SystemExit("--grid chooses weights: on the dev cut only")
        records = heldout.records_from_dir(args.source_dir)
        langs = [g for g in heldout.LANGS if any(r["lang"] == g for r in records)]
        holes = heldout.cut_heldout_holes(records, per_kind=TEST_PER_KIND, seed=TEST_SEED, langs=langs)
    else:
        holes = cut(args.corpus, args.cut)
        records = heldout.load_records(args.corpus)
    if args.limit:
        holes = holes[:: max(1, len(holes) // args.limit)][: args.limit]
    gate = DEFAULTS.min_confidence
    t_start = time.time()
    results = {}
    if args.grid:
        for w, wd, mn, ramp in itertools.product((0.3, 0.6), (0.5, 0.7, 0.9), (1, 2), (1, 4)):
            params = MixParams(weights=(("document", wd), ("open", w), ("workspace", w)), min_length=mn, ramp=ramp)
            rows = run(engine, holes, records, ("document", "open", "workspace"), params, args.open_files)
            key = f"ws{w}_doc{wd}_min{mn}_ramp{ramp}"
            results[key] = {"params": params.__dict__, "summary": summary(rows, gate)}
            s = results[key]["summary"]
            print(f"{key:28s} useful {s['useful']:.1%} exact {s['exact']:.1%} shown {s['shown_at_gate']:.1%} "
                  f"prec {s['precision_at_gate'] or 0:.1%}", flush=True)
    else:
        cidx = corpus_index(engine, args.corpus, args.corpus_mb) if args.corpus_mb else None
        base = MixParams()
        params = MixParams(weights=base.weights + (("corpus", args.corpus_weight),))
        for name, scopes in scope_sets(args.scopes).items():
            rows = run(engine, holes, records, scopes, params, args.open_files, cidx)
            results[name] = {"summary": summary(rows, gate), "groups": by_group(rows, gate), "rows": rows}
            s = results[name]["summary"]
            per_tok = [r["memory_ms"] / r["tokens"] for r in rows if r["tokens"] and scopes]
            s["memory_ms_per_token_p50"] = statistics.median(per_tok) if per_tok else 0.0
            print(f"{name:20s} useful {s['useful']:.1%} exact {s['exact']:.1%} blank {s['blank']:.1%} "
                  f"top {s['most_frequent']:.1%} shown {s['shown_at_gate']:.1%} prec {s['precision_at_gate'] or 0:.1%} "
                  f"p50 {s['ms_p50']:.1f} ms (memory {s['memory_ms_p50']:.2f} ms)", flush=True)
    out = {"cut": args.cut, "holes": len(holes), "seconds": round(time.time() - t_start, 1), "results": results,
           "command": " ".join(["python"] + sys.argv)}
    if args.out:
        md = ["| scopes | useful | exact | blank | most frequent | shown at gate | precision | p50 ms |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, r in results.items():
            s = r["summary"]
            md.append(f"| {name} | {s['useful']:.1%} | {s['exact']:.1%} | {s['blank']:.1%} | {s['most_frequent']:.1%} | "
                      f"{s['shown_at_gate']:.1%} | {(s['precision_at_gate'] or 0):.1%} | {s['ms_p50']:.1f} |")
        write_report(args.out, out, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
