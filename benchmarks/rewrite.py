"""Rewrite selection on held-out code: does it restore a corrupted line, and leave a clean one alone?

    python benchmarks/rewrite.py [--cut dev|test] [--per-kind 20] [--clean 60] [--paths engine,server]
                                 [--methods doubt,renoise] [--latency 20] [--out docs/bench/rewrite-CUT.json]

Cases (``benchmarks/canvas_cases.py``): a line or two inside a function of a held-out file with
one corruption (misspelled or wrong name, dropped, extra or swapped token, wrong operator or
literal), ``--per-kind`` per kind and language, and ``--clean`` clean selections per language.
The selection is rewritten with the document as the editor has it (the corrupted line in place):

* ``engine``: ``Engine.rewrite`` with the prefix and suffix the server's code action passes (a
  window of 4 x the prompt budget in characters each side, ``code_actions.window``); methods
  ``doubt`` (``dg_lsp.engine.revise``), ``doubt+memory`` (the same with the document's token
  memory mixed into its likelihoods, as the server does by default) and ``renoise`` (before issue 26: a canvas from the
  selection with half of it re-noised, ``strength=0.5``, seed 0, as the code action passed);
* ``server``: ``dg-lsp --stdio`` driven by pytest-lsp's client (as ``benchmarks/heldout_server.py``):
  ``textDocument/codeAction`` on the selection, the "Rewrite selection" action resolved
  (``codeAction/resolve``), its edit applied; no edit is the selection unchanged.
  ``--baseline-root DIR`` also runs the server of another checkout as ``server before`` (the
  baseline: ``git archive`` of the commit before issue 26 unpacked in DIR); ``--server-root DIR``
  runs only that one.

Scores per kind: **restore** (the rewrite equals the author's text), **changed, not restored**,
unchanged; on clean selections **harm** (the selection changed). ``--latency N``: N selections of
three lines (clean), timed through the engine and the server (request to response). Writes JSON to
``--out`` and Markdown next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from canvas_cases import CORRUPTIONS, CUT_SEEDS, RewriteCase, rewrite_benchmark_cases, sources  # noqa: E402
from heldout_server import _safe, offset_of, position_of, server_command  # noqa: E402
from model.eval import write_report  # noqa: E402


def window_of(engine, doc: str, start: int, end: int) -> tuple[str, str]:
    """The prefix and suffix the code action passes the engine (``code_actions._compute``)."""
    from dg_lsp.features.code_actions import window
    from dg_lsp.service import prompt_budget
    from dg_lsp.settings import DEFAULTS

    lo, hi = window(doc, start, end, 4 * prompt_budget(DEFAULTS, engine))
    return doc[lo:start], doc[end:hi]


def memory_of(engine, doc: str, start: int, end: int):
    """The token memory the code action gives a rewrite: the document without the selection
    (``code_actions._compute``; the server's open documents and workspace are not modelled)."""
    from dg_lsp.memory.scopes import build_memory

    return build_memory(engine.tokens.encode, doc[:start] + doc[end:], start)


def run_engine(engine, cases: Sequence[RewriteCase], method: str,
               progress: Callable[[int, int], None] | None = None) -> list[dict]:
    rows = []
    for i, c in enumerate(cases):
        doc = c.doc_text
        s, e = c.start, c.start + len(c.shown)
        prefix, suffix = window_of(engine, doc, s, e)
        engine.cache.reset()
        t0 = time.perf_counter()
        if method in ("doubt", "doubt+memory"):
            memory = memory_of(engine, doc, s, e) if method == "doubt+memory" else None
            res = engine.rewrite(prefix, c.shown, suffix, language=c.lang, memory=memory)
        else:
            res = engine.rewrite(prefix, c.shown, suffix, strength=0.5, seed=0, language=c.lang)
        rows.append({"answer": res.text, "ms": (time.perf_counter() - t0) * 1000})
        if progress:
            progress(i + 1, len(cases))
    return rows


def _capabilities():
    from lsprotocol import types

    return types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(code_action=types.CodeActionClientCapabilities(
            resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"]), data_support=True)),
        general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
    )


class Server:
    """One ``dg-lsp --stdio`` process driven by pytest-lsp's client."""

    def __init__(self, model: str | Path, *, threads: int = 1, root: Path | None = None, timeout: float = 300.0):
        self.model, self.threads, self.root, self.timeout = model, threads, root, timeout
        self.n = 0

    async def __aenter__(self) -> "Server":
        from lsprotocol import types
        from pytest_lsp import make_test_lsp_client

        self.client = make_test_lsp_client()
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        cmd = server_command(self.model)
        cwd = str(ROOT)
        if self.root is not None:  # another checkout's server, run from its own tree
            cmd = [sys.executable, "-m", "dg_lsp"] + cmd[cmd.index("--stdio"):]
            cwd = str(self.root)
            env["PYTHONPATH"] = str(self.root)
        await self.client.start_io(*cmd, env=env, cwd=cwd)
        await asyncio.wait_for(self.client.initialize_session(types.InitializeParams(
            capabilities=_capabilities(), initialization_options={"threads": self.threads})), self.timeout)
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_session(), 30)
        except Exception:
            pass
        server = getattr(self.client, "_server", None)
        if server is not None and server.returncode is None:
            server.kill()
            await server.wait()
        try:
            await asyncio.wait_for(self.client.stop(), 10)
        except Exception:
            pass

    def open(self, text: str, lang: str, name: str) -> str:
        from lsprotocol import types

        self.n += 1
        uri = f"file:///bench/{self.n:05d}/{_safe(name)}"
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=lang, version=1, text=text)))
        return uri

    def close(self, uri: str) -> None:
        from lsprotocol import types

        self.client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    async def action_in(self, text: str, lang: str, name: str, start: int, end: int, kind: str):
        """``action`` in ``text`` opened as a new document ``name`` (closed after)."""
        uri = self.open(text, lang, name)
        try:
            return await self.action(uri, text, start, end, kind)
        finally:
            self.close(uri)

    async def action(self, uri: str, text: str, start: int, end: int, kind: str):
        """(the resolved code action of ``kind`` at [start, end), or None; ms for both requests)."""
        from lsprotocol import types

        t0 = time.perf_counter()
        found = await asyncio.wait_for(self.client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=position_of(text, start), end=position_of(text, end)),
            context=types.CodeActionContext(diagnostics=[]))), self.timeout)
        acts = [a for a in (found or []) if isinstance(a, types.CodeAction) and a.kind == kind]
        if not acts:
            return None, (time.perf_counter() - t0) * 1000
        act = acts[0]
        if act.edit is None:
            act = await asyncio.wait_for(self.client.code_action_resolve_async(act), self.timeout)
        return act, (time.perf_counter() - t0) * 1000


def apply_action(text: str, action) -> str:
    """``text`` with the action's edit applied (the document unchanged without one)."""
    if action is None or action.edit is None or not action.edit.document_changes:
        return text
    (change,) = action.edit.document_changes
    edits = sorted(((offset_of(text, e.range.start), offset_of(text, e.range.end), e.new_text) for e in change.edits),
                   reverse=True)
    for a, b, t in edits:
        text = text[:a] + t + text[b:]
    return text


async def run_server(model: str | Path, cases: Sequence[RewriteCase], *, threads: int = 1, root: Path | None = None,
                     progress: Callable[[int, int], None] | None = None) -> list[dict]:
    from dg_lsp.features.code_actions import REWRITE_KIND

    rows = []
    async with Server(model, threads=threads, root=root) as srv:
        for i, c in enumerate(cases):
            doc = c.doc_text
            s, e = c.start, c.start + len(c.shown)
            act, ms = await srv.action_in(doc, c.lang, f"{c.source}_{c.path}".replace("/", "_"), s, e, REWRITE_KIND)
            new = apply_action(doc, act)
            tail = len(doc) - e
            answer = new[s: len(new) - tail] if new[:s] == doc[:s] and new[len(new) - tail:] == doc[e:] else None
            rows.append({"answer": answer if answer is not None else "<edit outside the selection>", "ms": ms,
                         "offered": act is not None, "edit": act is not None and act.edit is not None})
            if progress:
                progress(i + 1, len(cases))
    return rows


def score(cases: Sequence[RewriteCase], rows: Sequence[dict]) -> dict:
    out: dict = {}
    for key in list(CORRUPTIONS) + ["clean", "corrupted"]:
        idx = [i for i, c in enumerate(cases) if (c.kind == key or (key == "corrupted" and c.kind != "clean"))]
        if not idx:
            continue
        n = len(idx)
        restored = sum(rows[i]["answer"] == cases[i].original for i in idx)
        unchanged = sum(rows[i]["answer"] == cases[i].shown for i in idx)
        g = {"n": n, "unchanged": unchanged / n}
        if key == "clean":
            g["harm"] = 1 - unchanged / n
        else:
            g["restore"] = restored / n
            g["changed_not_restored"] = (n - restored - unchanged) / n
        by_lang = {}
        for lang in ("python", "javascript", "typescript"):
            li = [i for i in idx if cases[i].lang == lang]
            if li:
                ok = (lambda i: rows[i]["answer"] != cases[i].shown) if key == "clean" else \
                    (lambda i: rows[i]["answer"] == cases[i].original)
                by_lang[lang] = sum(ok(i) for i in li) / len(li)
        g["by_lang"] = by_lang
        out[key] = g
    ms = sorted(r["ms"] for r in rows)
    out["latency_ms"] = {"p50": statistics.median(ms), "p90": ms[int(0.9 * (len(ms) - 1))], "max": ms[-1]}
    return out


def three_line_cases(corpus: Path, cut: str, n: int, srcs=None) -> list[RewriteCase]:
    """``n`` clean selections of three consecutive code lines inside a function (latency)."""
    srcs = srcs if srcs is not None else sources(corpus, cut)
    rng = random.Random(f"{CUT_SEEDS[cut]}/{cut}/three-lines")
    out = []
    order = [(s, i) for s in srcs for i in range(len(s.f.lines) - 2)]
    rng.shuffle(order)
    for s, i in order:
        if len(out) >= n:
            break
        f = s.f
        if not all(f.code_line(i + k) and s.in_function(i + k) == s.in_function(i) for k in range(3)):
            continue
        if s.in_function(i) is None or any(len(f.lines[i + k]) > 100 for k in range(3)):
            continue
        a, _ = f.content(i)
        _, e = f.content(i + 2)
        out.append(RewriteCase(cut, s.lang, s.rec["source"], s.rec["path"], s.text, a, e, s.text[a:e], s.text[a:e],
                               "clean", "three lines"))
    return out


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def markdown(res: dict) -> str:
    runs = res["runs"]
    names = list(runs)
    lines = [f"Command: `{res['command']}`  ",
             f"Model `{res['model']}`, cut **{res['cut']}**: {res['cases']['corrupted']} corrupted selections "
             f"({res['per_kind']} per kind and language), {res['cases']['clean']} clean ({res['clean']} per language); "
             f"{res['threads']} thread. Restore: the rewrite equals the author's text; harm: a clean selection changed.",
             "", "| kind | n | " + " | ".join(f"{n}: restore / changed, not restored" for n in names) + " |",
             "| --- | --- | " + " | ".join("---" for _ in names) + " |"]
    for key in list(CORRUPTIONS) + ["corrupted"]:
        g0 = runs[names[0]]["scores"].get(key)
        if g0 is None:
            continue
        cells = [f"{_pct(runs[n]['scores'][key]['restore'])} / {_pct(runs[n]['scores'][key]['changed_not_restored'])}"
                 for n in names]
        label = "**all corrupted**" if key == "corrupted" else key
        lines.append(f"| {label} | {g0['n']} | " + " | ".join(cells) + " |")
    lines.append(f"| **clean: harm** | {runs[names[0]]['scores']['clean']['n']} | "
                 + " | ".join(_pct(runs[n]["scores"]["clean"]["harm"]) for n in names) + " |")
    lines.append("| latency p50 / p90 (ms) | | " + " | ".join(
        f"{runs[n]['scores']['latency_ms']['p50']:.0f} / {runs[n]['scores']['latency_ms']['p90']:.0f}" for n in names) + " |")
    lines += ["", "By language (restore of corrupted / harm on clean):", "",
              "| run | python | javascript | typescript |", "| --- | --- | --- | --- |"]
    for n in names:
        sc = runs[n]["scores"]
        lines.append(f"| {n} | " + " | ".join(
            f"{_pct(sc['corrupted']['by_lang'].get(lang))} / {_pct(sc['clean']['by_lang'].get(lang))}"
            for lang in ("python", "javascript", "typescript")) + " |")
    if res.get("latency"):
        lines += ["", "Three-line selections (clean), request to response:", "",
                  "| path | n | p50 ms | p90 ms | max ms | changed |", "| --- | --- | --- | --- | --- | --- |"]
        for n, lat in res["latency"].items():
            lines.append(f"| {n} | {lat['n']} | {lat['p50']:.0f} | {lat['p90']:.0f} | {lat['max']:.0f} | {_pct(lat['changed'])} |")
    lines += ["", "Samples (first run):", ""]
    for s in res["samples"]:
        lines.append(f"- {s['kind']} ({s['lang']}): `{s['shown']!r}` -> `{s['answer']!r}` (author: `{s['original']!r}`)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "model"))
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    ap.add_argument("--cut", choices=("dev", "test"), default="dev")
    ap.add_argument("--per-kind", type=int, default=20)
    ap.add_argument("--clean", type=int, default=60)
    ap.add_argument("--paths", default="engine,server")
    ap.add_argument("--methods", default="doubt,renoise", help="engine methods")
    ap.add_argument("--server-root", type=Path, default=None)
    ap.add_argument("--server-label", default="server")
    ap.add_argument("--baseline-root", type=Path, default=None,
                    help="also run the server of this checkout (e.g. the commit before issue 26) as 'server before'")
    ap.add_argument("--latency", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    srcs = sources(a.corpus, a.cut)
    cases = rewrite_benchmark_cases(a.corpus, a.cut, a.per_kind, a.clean, srcs)
    t0 = time.time()

    def progress(i: int, n: int) -> None:
        if i % 100 == 0 or i == n:
            print(f"{i}/{n}, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)

    paths = a.paths.split(",")
    runs: dict = {}
    engine = None
    if "engine" in paths:
        from dg_lsp.engine import Engine

        engine = Engine.load(a.model, threads=a.threads)
        for m in a.methods.split(","):
            rows = run_engine(engine, cases, m, progress)
            runs[f"engine {m}"] = {"rows": rows}
    if "server" in paths:
        rows = asyncio.run(run_server(a.model, cases, threads=a.threads, root=a.server_root, progress=progress))
        runs[a.server_label] = {"rows": rows}
    if a.baseline_root is not None:
        rows = asyncio.run(run_server(a.model, cases, threads=a.threads, root=a.baseline_root, progress=progress))
        runs["server before"] = {"rows": rows}
    for r in runs.values():
        r["scores"] = score(cases, r["rows"])
    latency = {}
    if a.latency:
        three = three_line_cases(a.corpus, a.cut, a.latency, srcs)
        for m in [m for m in a.methods.split(",") if m.startswith("doubt")] if engine is not None else []:
            rows = run_engine(engine, three, m)
            ms = sorted(r["ms"] for r in rows)
            latency[f"engine {m}"] = {"n": len(ms), "p50": statistics.median(ms), "p90": ms[int(0.9 * (len(ms) - 1))],
                                      "max": ms[-1], "changed": sum(r["answer"] != c.shown for r, c in zip(rows, three)) / len(three)}
        if "server" in paths:
            rows = asyncio.run(run_server(a.model, three, threads=a.threads, root=a.server_root))
            ms = sorted(r["ms"] for r in rows)
            latency[a.server_label] = {"n": len(ms), "p50": statistics.median(ms), "p90": ms[int(0.9 * (len(ms) - 1))],
                                       "max": ms[-1], "changed": sum(r["answer"] != c.shown for r, c in zip(rows, three)) / len(three)}
    first = next(iter(runs.values()))["rows"]
    samples = [{"kind": c.kind, "lang": c.lang, "shown": c.shown, "original": c.original, "answer": first[i]["answer"]}
               for i, c in enumerate(cases) if i % 25 == 0]
    res = {"command": "python benchmarks/rewrite.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "model": a.model, "cut": a.cut, "per_kind": a.per_kind, "clean": a.clean, "threads": a.threads,
           "cases": {"corrupted": sum(c.kind != "clean" for c in cases), "clean": sum(c.kind == "clean" for c in cases)},
           "seconds": round(time.time() - t0, 1), "latency": latency, "samples": samples,
           "runs": {n: {"scores": r["scores"],
                        "rows": [{**c.brief(), **row} for c, row in zip(cases, r["rows"])]} for n, r in runs.items()}}
    out = a.out or ROOT / "docs" / "bench" / f"rewrite-{a.cut}.json"
    write_report(out, res, markdown(res))


if __name__ == "__main__":
    main()
