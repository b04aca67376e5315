"""What a project's own code buys: cross-file context, a retrieved canvas start, and ``dg-lsp tune``.

    python benchmarks/tune_gain.py --repo PATH [--model model] [--per-kind 40] [--tune-mb 5]
                                   [--tune-minutes 10] [--tune-threads 1] [--langs python]
                                   [--out docs/bench/tune/NAME.json]

On a repository (or package) outside the corpus: its source files (``dg_lsp.tune.workspace_files``,
what ``dg-lsp tune`` reads) are split by a hash of their path, one in five for testing
(``TEST_SHARE``); the others, in path order up to ``--tune-mb``, are copied to a temporary
workspace that ``dg-lsp tune`` trains on, as a subprocess (its wall time and peak RSS from
``os.wait4``). Holes are cut from the test files as the held-out test cuts them
(``model.heldout.cut_heldout_holes``: rest of line, line, 2-4 lines) and scored with its scoring
(exact, useful, blank, most frequent answer) before and after tuning, each:

* ``noise``: ``Engine.infill`` from the checkpoint's starting canvas, no cross-file context;
* ``cross_file``: the same with the snippets a server would put in the prompt
  (``dg_lsp.service.cross_file_context``) from the hole's neighbours: the other files of its
  folder in the repository, at most ``NEIGHBOURS``, each at most ``NEIGHBOUR_MAX_BYTES``, as the
  server takes them (``dg_lsp.features.common``);
* ``retrieved``: where ``dg_lsp.context.crossfile.retrieved_line`` finds a line elsewhere that
  the cursor's line starts (or that follows the previous line), the canvas starts from it, half
  re-noised (``Engine.rewrite``), else as ``noise``; ``copy`` scores the retrieved text itself
  (no model), where there is one.

While the tune runs, the base engine (``--threads``, default 1, as the server has it beside a tune
with one thread) completes the first ``--latency-holes`` holes in turn, one request every
``--latency-gap`` seconds, as a user typing would; the same requests measured before the tune give
the idle p50 / p99. JSON to ``--out`` and Markdown next to it, table printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.eval import write_report  # noqa: E402
from model.heldout import Hole, cut_heldout_holes, run_engine, summarize  # noqa: E402

TEST_SHARE = 5  # one file in TEST_SHARE (by path hash) is a test file


def split_files(files: Sequence[Any], tune_mb: float) -> tuple[list[Any], list[Any]]:
    """(tune, test): test when sha1(path) % TEST_SHARE == 0; tune files in path order up to ``tune_mb``."""
    test, tune, used = [], [], 0
    for f in sorted(files, key=lambda f: f.path):
        if int(hashlib.sha1(f.path.encode()).hexdigest(), 16) % TEST_SHARE == 0:
            test.append(f)
        elif used + len(f.text.encode()) <= tune_mb * 1e6:
            tune.append(f)
            used += len(f.text.encode())
    return tune, test


def neighbours_of(files: Sequence[Any]):
    """hole -> (name, text) of the other files of its folder, as the server reads them."""
    from dg_lsp.features.common import NEIGHBOUR_MAX_BYTES, NEIGHBOURS

    by_dir: dict[str, list[Any]] = {}
    for f in sorted(files, key=lambda f: f.path):
        by_dir.setdefault(os.path.dirname(f.path), []).append(f)

    def sources(h: Hole) -> list[tuple[str, str]]:
        ext = os.path.splitext(h.path)[1]
        same = [f for f in by_dir.get(os.path.dirname(h.path), []) if f.path != h.path and f.path.endswith(ext)]
        return [(os.path.basename(f.path), f.text) for f in same[:NEIGHBOURS] if len(f.text.encode()) <= NEIGHBOUR_MAX_BYTES]

    return sources


def score_model(model: str, holes: list[Hole], sources, threads: int, label: str) -> dict:
    """The three canvases (noise, cross_file, retrieved) and ``copy`` for ``model`` on ``holes``."""
    import torch

    from dg_lsp.context.crossfile import retrieved_line
    from dg_lsp.engine import Engine

    torch.set_num_threads(threads)
    engine = Engine.load(model, device="cpu", threads=threads)
    out: dict[str, Any] = {"model": model, "cross_file_tokens": engine.cross_file_tokens}
    variants, ms = {}, {}
    t0 = time.time()
    rows = run_engine(engine, holes)
    variants["noise"] = ([r["post"] for r in rows], [r["post_replace"] for r in rows])
    ms["noise"] = [r["ms"] for r in rows]
    ce = [r["cross_entropy"] for r in rows]
    rows_x = run_engine(engine, holes, sources=sources)
    variants["cross_file"] = ([r["post"] for r in rows_x], [r["post_replace"] for r in rows_x])
    ms["cross_file"] = [r["ms"] for r in rows_x]
    out["snippets_mean"] = statistics.mean(r["snippets"] for r in rows_x) if rows_x else 0
    out["cross_entropy_cross_file"] = statistics.mean(r["cross_entropy"] for r in rows_x) if rows_x else None
    rows_r = run_engine(engine, holes, start=lambda h, p, s: retrieved_line(p, s, sources(h)))
    variants["retrieved"] = ([r["post"] for r in rows_r], [r["post_replace"] for r in rows_r])
    ms["retrieved"] = [r["ms"] for r in rows_r]
    starts = [r["start"] for r in rows_r]
    out["retrieved_share"] = sum(1 for s in starts if s) / max(1, len(starts))
    variants["copy"] = ([s or "" for s in starts], [0] * len(starts))
    out["summary"] = summarize(holes, variants, ce)
    out["ms_p50"] = {k: statistics.median(v) for k, v in ms.items() if v}
    out["seconds"] = round(time.time() - t0, 1)
    print(f"{label}: scored in {out['seconds']} s", file=sys.stderr, flush=True)
    return out


def latency(engine, holes: list[Hole], gap: float, until=None, rounds: int = 1) -> list[float]:
    """ms of ``Engine.infill`` on each hole's cut context (cold prompt cache), ``gap`` s apart;
    ``rounds`` passes, or passes until ``until()`` is true."""
    from dg_lsp.context import SyntaxDocument, cut_context, registry
    from dg_lsp.service import prompt_budget
    from dg_lsp.settings import DEFAULTS

    budget = prompt_budget(DEFAULTS, engine)
    cuts = []
    for h in holes:
        spec = registry().get(h.lang)
        c = cut_context(SyntaxDocument(spec, h.doc_text), h.offset, engine.count_tokens, budget, invoked=True)
        cuts.append((c.prefix, c.suffix, spec.name))
    out: list[float] = []
    k = 0
    while cuts:
        for prefix, suffix, lang in cuts:
            if until is not None and until():
                return out
            engine.cache.reset()
            t = time.perf_counter()
            engine.infill(prefix, suffix, language=lang)
            out.append((time.perf_counter() - t) * 1000)
            time.sleep(gap)
        k += 1
        if until is None and k >= rounds:
            return out
    return out


def pctl(xs: Sequence[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def run_tune(model: str, workspace: Path, out_dir: Path, minutes: float, threads: int, on_running=None,
             nice: int = 10) -> dict:
    """``dg-lsp tune`` as a subprocess, at ``nice`` as the server starts it (``dg_lsp.features.tune``):
    wall seconds, peak RSS (MB, from ``os.wait4``), its last JSON line."""
    cmd = [sys.executable, "-m", "dg_lsp", "tune", str(workspace), "--model", model, "--minutes", str(minutes),
           "--threads", str(threads), "--out", str(out_dir), "--json", "--max-mb", "1000"]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.nice(nice))
    lines: list[dict] = []

    def read() -> None:
        for line in proc.stdout:
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    done = {"v": False}
    watcher = None
    if on_running is not None:
        watcher = threading.Thread(target=on_running, args=(lambda: done["v"],), daemon=True)
        watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done["v"] = True
    wall = time.time() - t0
    reader.join(5)
    if watcher is not None:
        watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"dg-lsp tune failed ({proc.returncode}): {' '.join(cmd)}")
    last = next((ln for ln in reversed(lines) if "done" in ln), {})
    return {"command": " ".join(cmd[1:]), "wall_s": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "steps": last.get("steps"),
            "loss_first": last.get("loss_first"), "loss_last": last.get("loss_last"),
            "first": lines[0] if lines else None}


def markdown(res: dict) -> str:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    rows = [f"Repository `{res['repo']}`: {res['files']} files ({res['mb']:.2f} MB), tuned on {res['tune_files']} "
            f"({res['tune_mb']:.2f} MB), {res['holes']} holes from {res['test_files']} test files.", "",
            "| model | canvas | exact | useful | blank | most frequent answer | whole-file syntax |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for label in ("base", "tuned"):
        m = res.get(label)
        if not m:
            continue
        g = m["summary"]["all/all"]
        for v in ("noise", "cross_file", "retrieved", "copy"):
            s = g[v]
            top = s["most_frequent_answer"]
            rows.append(f"| {label} | {v} | {pct(s['exact'])} | {pct(s['useful'])} | {pct(s['empty'])} | "
                        f"{pct(s['most_frequent_share'])} `{top[:30]!s}` | {pct(s['whole_file_syntax'])} |")
    rows.append("")
    for label in ("base", "tuned"):
        m = res.get(label)
        if m:
            rows.append(f"- {label}: mean cross-entropy of the true middle {m['summary']['all/all']['cross_entropy']:.2f} "
                        f"(with cross-file context {m['cross_entropy_cross_file']:.2f}); {m['snippets_mean']:.1f} "
                        f"snippets per hole; a retrieved start for {pct(m['retrieved_share'])} of holes; "
                        f"p50 ms {json.dumps({k: round(v, 1) for k, v in m['ms_p50'].items()})}")
    t = res.get("tune")
    if t:
        rows.append(f"- tune: {t['wall_s']} s wall, {t['cpu_s']} CPU-s, peak RSS {t['peak_rss_mb']} MB, "
                    f"{t['steps']} steps, loss {t['loss_first']} -> {t['loss_last']}")
    lat = res.get("latency")
    if lat:
        rows.append(f"- completion latency (Engine.infill, {lat['threads']} thread): idle p50 {lat['idle_p50']:.1f} / "
                    f"p99 {lat['idle_p99']:.1f} ms (n={lat['idle_n']}); while tuning p50 {lat['tuning_p50']:.1f} / "
                    f"p99 {lat['tuning_p99']:.1f} ms (n={lat['tuning_n']}): p99 ratio {lat['p99_ratio']:.2f}x")
    rows.append(f"\n`{res['command']}`\n")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--name", default=None, help="the repository's name in the report (default: its folder)")
    ap.add_argument("--model", default=str(ROOT / "model"))
    ap.add_argument("--per-kind", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--langs", default="python")
    ap.add_argument("--tune-mb", type=float, default=5.0)
    ap.add_argument("--tune-minutes", type=float, default=10.0, help="0: score the base model only")
    ap.add_argument("--tune-threads", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="the scoring / latency engine's threads")
    ap.add_argument("--latency-holes", type=int, default=40)
    ap.add_argument("--latency-gap", type=float, default=0.2)
    ap.add_argument("--idle-rounds", type=int, default=3, help="passes over the latency holes before the tune")
    ap.add_argument("--keep", type=Path, default=None, help="keep the tuned checkpoint here")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "tune" / "tune-gain.json")
    a = ap.parse_args(argv)
    from dg_lsp.engine import Engine
    from dg_lsp.tune import workspace_files

    langs = tuple(x for x in a.langs.split(",") if x)
    files, skipped = workspace_files(a.repo, max_mb=1000)
    files = [f for f in files if f.lang in langs]
    tune_files, test_files = split_files(files, a.tune_mb)
    recs = [{"source": a.name or a.repo.name, "path": f.path, "lang": f.lang, "text": f.text} for f in test_files]
    if not test_files:
        raise SystemExit(f"no {'/'.join(langs)} files to test on in {a.repo} (skipped: {skipped}); "
                         "a folder that git ignores (a virtual environment) reads as empty: copy it out first")
    holes = cut_heldout_holes(recs, a.per_kind, a.seed, langs=langs)
    sources = neighbours_of(files)
    res: dict[str, Any] = {
        "command": "python benchmarks/tune_gain.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "repo": a.name or str(a.repo), "files": len(files), "mb": sum(len(f.text.encode()) for f in files) / 1e6,
        "tune_files": len(tune_files), "tune_mb": sum(len(f.text.encode()) for f in tune_files) / 1e6,
        "test_files": len(test_files), "holes": len(holes), "skipped": skipped,
        "holes_list": [h.brief() for h in holes],
    }
    print(f"{res['files']} files, {len(holes)} holes; tuning on {res['tune_files']} files ({res['tune_mb']:.2f} MB)",
          file=sys.stderr, flush=True)
    res["base"] = score_model(a.model, holes, sources, a.threads, "base")
    if a.tune_minutes > 0:
        with tempfile.TemporaryDirectory(prefix="dg-tune-gain-") as tmp:
            ws = Path(tmp) / "workspace"
            for f in tune_files:
                p = ws / f.path
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(f.text, encoding="utf-8")
            engine = Engine.load(a.model, device="cpu", threads=a.threads)
            lat_holes = holes[: a.latency_holes]
            latency(engine, lat_holes[:3], 0.0)  # warm-up
            idle = latency(engine, lat_holes, a.latency_gap, rounds=a.idle_rounds)
            during: list[float] = []
            out_dir = a.keep or Path(tmp) / "tuned"
            res["tune"] = run_tune(a.model, ws, out_dir, a.tune_minutes, a.tune_threads,
                                   on_running=lambda until: during.extend(latency(engine, lat_holes, a.latency_gap, until)))
            res["latency"] = {"threads": a.threads, "idle_n": len(idle), "idle_p50": statistics.median(idle),
                              "idle_p99": pctl(idle, 0.99), "tuning_n": len(during),
                              "tuning_p50": statistics.median(during) if during else None,
                              "tuning_p99": pctl(during, 0.99)}
            if during:
                res["latency"]["p99_ratio"] = res["latency"]["tuning_p99"] / res["latency"]["idle_p99"]
            print(f"tuned: {json.dumps(res['tune'])}", file=sys.stderr, flush=True)
            res["tuned"] = score_model(str(out_dir), holes, sources, a.threads, "tuned")
    write_report(a.out, res, markdown(res))


if __name__ == "__main__":
    main()
