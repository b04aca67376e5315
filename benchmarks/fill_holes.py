"""Fill holes on held-out code: are the holes filled with what the author wrote, and does it parse?

    python benchmarks/fill_holes.py [--cut dev|test] [--per-lang 40] [--paths engine,server]
                                    [--methods canvas,infill,draft-each,draft,draft+revise]
                                    [--out docs/bench/fill-holes-CUT.json]

Cases (``benchmarks/canvas_cases.py``): a function of a held-out file with 1-3 of its
single-line statements replaced by the hole marker the server finds (``pass`` in Python, ``// TODO``
in JavaScript / TypeScript), ``--per-lang`` functions per language. Methods (``engine`` path, with the
prefix, pieces and suffix the server's "Fill holes" code action passes, ``code_actions._compute``):

* ``canvas``: ``Engine.fill_holes(method="canvas")``: one canvas, every hole ``holeTokens`` (16)
  ``<mask>`` positions between the frozen text (the server's behaviour before issue 26);
* ``infill``: each hole on its own, left to right, as the server answers a completion there
  (``Engine.infill`` with the server's cut at the hole, ``dg_lsp.context.cut_context``; the
  embedded model answers with its causal draft, cut where it is unsure), the other holes' markers
  in place;
* ``draft-each``: the same through ``Engine.fill_holes``' own cut (``holes.draft_hole``: the
  text around the hole with the other markers in place, ``cut_context``), each hole on its own;
* ``draft``: the same, left to right, each hole seeing the holes before it filled with their answers
  (``Engine.fill_holes(method="draft")``);
* ``draft+revise``: those answers, each then revised against both sides (``dg_lsp.engine.revise``);
* ``full-each`` / ``full``: as ``draft-each`` / ``draft`` with the causal draft to EOS, not cut;
* ``infill+memory``: ``infill`` with the document's token memory mixed in;
* ``served`` / ``served+memory``: ``dg_lsp.fill.fill_holes`` as the code action runs it (the
  completion at each hole, kept only where the function parses; a hole it leaves keeps its
  marker), without / with the document's token memory; ``served+memory@CUT`` sets the memory's
  draft cut, ``...>CONF`` a minimum confidence (dev exploration, docs/canvas.md);

and ``server``: ``dg-lsp --stdio`` (pytest-lsp's client): ``textDocument/codeAction`` at the first
hole, the "Fill holes" action resolved, its edits read (whatever the server chooses).

Scores: per hole **exact** and **useful** (``model.heldout.exact`` / ``useful``), blank; per function
all holes exact; whole-file syntax after filling (tree-sitter, zero ERROR/MISSING nodes, the
author's files all parse) and the mean number of new error nodes. Writes JSON to ``--out`` and
Markdown next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from canvas_cases import FillCase, fill_cases, sources  # noqa: E402
from model.eval import write_report  # noqa: E402
from rewrite import Server  # noqa: E402

METHODS = ("canvas", "infill", "infill+memory", "draft-each", "draft", "draft+revise", "full-each", "full", "served",
           "served+memory")


def marker_spans(case: FillCase) -> list[tuple[int, int]]:
    """The holes' markers in ``case.doc_text``."""
    out, shift = [], 0
    for a, b in case.holes:
        out.append((a + shift, a + shift + len(case.marker)))
        shift += len(case.marker) - (b - a)
    return out


def region_in_doc(case: FillCase) -> tuple[int, int]:
    r0, r1 = case.region
    return r0, r1 + sum(len(case.marker) - (b - a) for a, b in case.holes)


def action_inputs(engine, case: FillCase) -> tuple[str, list[str], str]:
    """(prefix, pieces, suffix) as the code action passes them to ``Engine.fill_holes``."""
    from dg_lsp.features.code_actions import window
    from dg_lsp.service import prompt_budget
    from dg_lsp.settings import DEFAULTS

    doc = case.doc_text
    r0, r1 = region_in_doc(case)
    spans = marker_spans(case)
    lo, hi = window(doc, r0, r1, 4 * prompt_budget(DEFAULTS, engine))
    pieces = [doc[r0: spans[0][0]]] + [doc[spans[i][1]: spans[i + 1][0]] for i in range(len(spans) - 1)]
    pieces.append(doc[spans[-1][1]: r1])
    return doc[lo:r0], pieces, doc[r1:hi]


def infill_each(engine, case: FillCase, memory: bool = False) -> list[str]:
    """Each hole answered as a completion there (the server's cut), the other markers in place;
    ``memory``: with the document's token memory mixed in."""
    from dg_lsp.context import SyntaxDocument, cut_context, registry
    from dg_lsp.memory.scopes import build_memory
    from dg_lsp.service import prompt_budget
    from dg_lsp.settings import DEFAULTS

    doc = case.doc_text
    out = []
    for a, b in marker_spans(case):
        text = doc[:a] + doc[b:]  # the hole's line left holding its indentation
        sd = SyntaxDocument(registry().get(case.lang), text)
        c = cut_context(sd, a, engine.count_tokens, prompt_budget(DEFAULTS, engine), invoked=True)
        engine.cache.reset()
        mem = build_memory(engine.tokens.encode, text, a) if memory else None
        out.append(engine.infill(c.prefix, c.suffix, language=case.lang, memory=mem).text)
    return out


def served(engine, case: FillCase, memory: bool, min_confidence: float = 0.0, cut: float | None = None) -> list[str]:
    """``dg_lsp.fill.fill_holes`` as the code action runs it; a hole it leaves keeps its marker. ``memory``: the document's token memory (the server also has the open documents'
    and the workspace's)."""
    from dg_lsp.context import registry
    from dg_lsp.fill import fill_holes
    from dg_lsp.memory.fusion import MixParams
    from dg_lsp.memory.scopes import build_memory
    from dg_lsp.settings import DEFAULTS

    doc = case.doc_text
    r0, r1 = region_in_doc(case)

    def memory_at(text: str, offset: int, try_cut: float | None):
        c = try_cut if try_cut is not None else cut
        return build_memory(engine.tokens.encode, text, offset,
                            params=MixParams() if c is None else replace(MixParams(), draft_cut=c))

    fills = fill_holes(engine, registry().get(case.lang), doc, marker_spans(case), DEFAULTS, region=(r0, r1),
                       memory_at=memory_at if memory else None, min_confidence=min_confidence)
    return [f.text or case.marker for f in fills]


def run_engine(engine, cases: Sequence[FillCase], method: str,
               progress: Callable[[int, int], None] | None = None) -> list[dict]:
    from dg_lsp.engine.holes import fill_by_draft

    rows = []
    for i, c in enumerate(cases):
        engine.cache.reset()
        t0 = time.perf_counter()
        if method.startswith("served"):  # served[+memory][@CUT][>MINCONF]
            name, _, conf = method.partition(">")
            name, _, cut = name.partition("@")
            fills = served(engine, c, memory=name == "served+memory", min_confidence=float(conf or 0),
                           cut=float(cut) if cut else None)
        elif method in ("infill", "infill+memory"):
            fills = infill_each(engine, c, memory=method == "infill+memory")
        else:
            prefix, pieces, suffix = action_inputs(engine, c)
            markers = [c.marker] * len(c.holes)
            if method in ("draft-each", "full-each"):
                fills = fill_by_draft(engine, prefix, pieces, suffix, markers=markers, language=c.lang, sequential=False,
                                      full=method == "full-each")
            elif method == "full":
                fills = fill_by_draft(engine, prefix, pieces, suffix, markers=markers, language=c.lang, full=True)
            else:
                fills = engine.fill_holes(prefix, pieces, suffix, language=c.lang, markers=markers, method=method)
        rows.append({"fills": fills, "ms": (time.perf_counter() - t0) * 1000})
        if progress:
            progress(i + 1, len(cases))
    return rows


async def run_server(model: str | Path, cases: Sequence[FillCase], *, threads: int = 1, root: Path | None = None,
                     progress: Callable[[int, int], None] | None = None) -> list[dict]:
    from heldout_server import offset_of

    from dg_lsp.features.code_actions import FILL_KIND

    rows = []
    async with Server(model, threads=threads, root=root) as srv:
        for i, c in enumerate(cases):
            doc = c.doc_text
            spans = marker_spans(c)
            act, ms = await srv.action_in(doc, c.lang, f"{c.source}_{c.path}".replace("/", "_"), spans[0][0], spans[0][0],
                                          FILL_KIND)
            fills = [""] * len(spans)
            if act is not None and act.edit is not None and act.edit.document_changes:
                (change,) = act.edit.document_changes
                got = {(offset_of(doc, e.range.start), offset_of(doc, e.range.end)): e.new_text for e in change.edits}
                fills = [got.get(s, c.marker) for s in spans]
            rows.append({"fills": fills, "ms": ms, "offered": act is not None})
            if progress:
                progress(i + 1, len(cases))
    return rows


def score(cases: Sequence[FillCase], rows: Sequence[dict]) -> dict:
    from model.eval import error_count
    from model.heldout import exact, useful

    holes: dict[str, list] = {}
    funcs: dict[str, list] = {}
    for c, r in zip(cases, rows):
        doc = c.doc_text
        filled = doc
        for (a, b), f in sorted(zip(marker_spans(c), r["fills"]), reverse=True):
            filled = filled[:a] + f + filled[b:]
        errors = error_count(filled, c.lang)
        # a hole left holding its marker is blank (nothing was filled in)
        per = [{"exact": exact(f, m), "useful": useful(f, m), "blank": not f.strip() or f == c.marker}
               for f, m in zip(r["fills"], c.middles)]
        r["holes"] = per
        r["errors"] = errors
        for key in (c.lang, "all"):
            holes.setdefault(key, []).extend(per)
            funcs.setdefault(key, []).append({"all_exact": all(p["exact"] for p in per), "syntax": errors == 0,
                                              "new_errors": errors, "filled": not all(p["blank"] for p in per)})
    out = {}
    for key in holes:
        h, f = holes[key], funcs[key]
        out[key] = {"holes": len(h), "functions": len(f),
                    "exact": sum(x["exact"] for x in h) / len(h), "useful": sum(x["useful"] for x in h) / len(h),
                    "blank": sum(x["blank"] for x in h) / len(h),
                    "all_exact": sum(x["all_exact"] for x in f) / len(f),
                    "syntax": sum(x["syntax"] for x in f) / len(f),
                    # whole-file syntax of the functions where something was filled in
                    "syntax_filled": (sum(x["syntax"] for x in f if x["filled"]) / n_filled
                                      if (n_filled := sum(x["filled"] for x in f)) else None),
                    "functions_filled": n_filled / len(f),
                    # useful among the holes filled (the precision of what is shown)
                    "useful_filled": (sum(x["useful"] for x in h if not x["blank"]) / n_shown
                                      if (n_shown := sum(not x["blank"] for x in h)) else None),
                    "new_errors": statistics.mean(x["new_errors"] for x in f)}
    ms = sorted(r["ms"] for r in rows)
    out["latency_ms"] = {"p50": statistics.median(ms), "p90": ms[int(0.9 * (len(ms) - 1))], "max": ms[-1]}
    return out


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def markdown(res: dict) -> str:
    runs = res["runs"]
    lines = [f"Command: `{res['command']}`  ",
             f"Model `{res['model']}`, cut **{res['cut']}**: {res['functions']} functions, {res['holes']} holes "
             f"({res['per_lang']} functions per language, 1-3 holes each); {res['threads']} thread. Exact / useful per "
             f"hole (``model.heldout``); syntax: the whole file parses after filling (every author's file does).", "",
             "| run | language | holes | exact | useful | blank | useful of filled | functions all exact | whole-file syntax | "
             "syntax where filled (functions filled) | new error nodes (mean) | ms p50 / p90 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n, r in runs.items():
        sc = r["scores"]
        for key in ("python", "javascript", "typescript", "all"):
            if key not in sc:
                continue
            g = sc[key]
            lat = f"{sc['latency_ms']['p50']:.0f} / {sc['latency_ms']['p90']:.0f}" if key == "all" else ""
            label = f"**{n}**" if key == "all" else n
            lines.append(f"| {label} | {key} | {g['holes']} | {_pct(g['exact'])} | {_pct(g['useful'])} | "
                         f"{_pct(g['blank'])} | {_pct(g['useful_filled'])} | {_pct(g['all_exact'])} | {_pct(g['syntax'])} | "
                         f"{_pct(g['syntax_filled'])} ({_pct(g['functions_filled'])}) | {g['new_errors']:.2f} | {lat} |")
    lines += ["", "Samples:", ""]
    for s in res["samples"]:
        lines.append(f"- {s['lang']}: author `{s['middles']!r}`; " + "; ".join(f"{k} `{v!r}`" for k, v in s["fills"].items()))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "model"))
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    ap.add_argument("--cut", choices=("dev", "test"), default="dev")
    ap.add_argument("--per-lang", type=int, default=40)
    ap.add_argument("--paths", default="engine,server")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--server-root", type=Path, default=None)
    ap.add_argument("--server-label", default="server")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    cases = fill_cases(a.corpus, a.cut, per_lang=a.per_lang, srcs=sources(a.corpus, a.cut))
    t0 = time.time()

    def progress(i: int, n: int) -> None:
        if i % 50 == 0 or i == n:
            print(f"{i}/{n}, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)

    runs: dict = {}
    if "engine" in a.paths.split(","):
        from dg_lsp.engine import Engine

        engine = Engine.load(a.model, threads=a.threads)
        for m in a.methods.split(","):
            with torch.inference_mode():
                runs[f"engine {m}"] = {"rows": run_engine(engine, cases, m, progress)}
    if "server" in a.paths.split(","):
        rows = asyncio.run(run_server(a.model, cases, threads=a.threads, root=a.server_root, progress=progress))
        runs[a.server_label] = {"rows": rows}
    for r in runs.values():
        r["scores"] = score(cases, r["rows"])
    samples = [{"lang": c.lang, "middles": c.middles, "fills": {n: r["rows"][i]["fills"] for n, r in runs.items()}}
               for i, c in enumerate(cases) if i % 12 == 0]
    res = {"command": "python benchmarks/fill_holes.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "model": a.model, "cut": a.cut, "per_lang": a.per_lang, "threads": a.threads,
           "functions": len(cases), "holes": sum(len(c.holes) for c in cases), "seconds": round(time.time() - t0, 1),
           "samples": samples,
           "runs": {n: {"scores": r["scores"], "rows": [{**c.brief(), **row} for c, row in zip(cases, r["rows"])]}
                    for n, r in runs.items()}}
    out = a.out or ROOT / "docs" / "bench" / f"fill-holes-{a.cut}.json"
    write_report(out, res, markdown(res))


if __name__ == "__main__":
    main()
