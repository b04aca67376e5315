"""The held-out completion test (``model/heldout.py``) through the real language server.

    python benchmarks/heldout_server.py [--model model] [--corpus data/corpus] [--per-kind 67]
                                        [--seed 1234] [--threads 1] [--out docs/bench/heldout-server.json]

The same holes as ``python -m model.eval --heldout N`` (same corpus, ``--per-kind`` and ``--seed``).
Starts ``dg-lsp --stdio --model DIR`` as a subprocess and drives it with a real LSP client
(pytest-lsp's ``LanguageClient``, as the tests do): ``initialize`` (UTF-16 positions,
inlineCompletion; ``initializationOptions`` ``{"threads": N, "alternatives": 1}``: the one answer a
user sees first, at the latency of one candidate; ``benchmarks/confidence.py`` measures three), then for each hole
``textDocument/didOpen`` of the file with the middle removed (a new URI per hole, so neither the
completion cache nor a previous request's context applies), ``textDocument/inlineCompletion`` at
the cursor with ``triggerKind`` Invoked, and ``didClose``. The first item's ``insertText`` (and what
its range says it replaces) is scored with ``model.heldout.score`` (no item: a blank answer).
Writes JSON to ``--out`` and Markdown next to it (same name, ``.md``) and prints the table.
Cross-entropy needs the model's logits and is not measured here (``model.eval`` reports it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence
import re

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.eval import write_report  # noqa: E402
from model.heldout import Hole, add_heldout_args  # noqa: E402


def server_command(model: str | Path, log_level: str = "warning") -> list[str]:
    """``dg-lsp --stdio --model DIR`` (the console script next to this interpreter, else ``-m``)."""
    exe = Path(sys.executable).with_name("dg-lsp")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "dg_lsp"]
    return cmd + ["--stdio", "--model", str(model), "--log-level", log_level]


def position_of(text: str, offset: int):
    """The LSP (UTF-16) position of a code-point offset."""
    from lsprotocol import types

    start = text.rfind("\n", 0, offset) + 1
    return types.Position(line=text.count("\n", 0, offset),
                          character=sum(2 if ord(c) > 0xFFFF else 1 for c in text[start:offset]))


def offset_of(text: str, pos) -> int:
    """The code-point offset of an LSP (UTF-16) position."""
    lines = text.split("\n")
    line = lines[pos.line] if pos.line < len(lines) else ""
    units = idx = 0
    while units < pos.character and idx < len(line):
        units += 2 if ord(line[idx]) > 0xFFFF else 1
        idx += 1
    return sum(len(ln) + 1 for ln in lines[: pos.line]) + idx


def _safe(name: str) -> str:
    """A URI path piece with nothing to escape (servers normalise escapes differently)."""
    return re.sub(r"[^\w./-]", "_", name)


def _capabilities():
    from lsprotocol import types

    return types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(inline_completion=types.InlineCompletionClientCapabilities()),
        general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
    )


async def run_holes(model: str | Path, holes: Sequence[Hole], *, threads: int = 1, timeout: float = 300.0,
                    log_level: str = "warning", progress: Callable[[int, int], None] | None = None,
                    options: dict | None = None, root: Path | None = None, automatic: bool = False) -> list[dict]:
    """One server process; per hole: the first inlineCompletion item (``answer``, ``replace``).
    ``options``: more initializationOptions; ``root``: a workspace folder where each hole's file is
    (opened at its path there, the editor's buffer without the middle; the server's workspace
    memory indexes the folder); ``automatic``: automatic requests (the confidence gate applies)."""
    from lsprotocol import types
    from pytest_lsp import make_test_lsp_client

    client = make_test_lsp_client()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    await client.start_io(*server_command(model, log_level), env=env, cwd=str(ROOT))
    rows: list[dict] = []
    try:
        folders = [types.WorkspaceFolder(uri=root.as_uri(), name=root.name)] if root is not None else None
        await asyncio.wait_for(client.initialize_session(types.InitializeParams(
            capabilities=_capabilities(), root_uri=root.as_uri() if root is not None else None,
            workspace_folders=folders,
            initialization_options={"threads": threads, "alternatives": 1, "automaticAlternatives": 1,
                                    **(options or {})})), timeout)
        if root is not None and (options or {}).get("memory", "auto") != "off":
            await _wait_indexed(client, timeout)
        for i, h in enumerate(holes):
            text = h.doc_text
            uri = (root / h.path).as_uri() if root is not None else \
                f"file:///heldout/{i:04d}/{_safe(h.source.replace('/', '_'))}/{_safe(h.path)}"
            client.text_document_did_open(types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id=h.lang, version=1, text=text)))
            pos = position_of(text, h.offset)
            t0 = time.perf_counter()
            res = await asyncio.wait_for(client.text_document_inline_completion_async(types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=pos,
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic
                                                      if automatic else types.InlineCompletionTriggerKind.Invoked))),
                timeout)
            ms = (time.perf_counter() - t0) * 1000
            items = (res.items if isinstance(res, types.InlineCompletionList) else res) or []
            answer, replace, at_cursor = "", 0, True
            if items:
                item = items[0]
                answer = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
                if item.range is not None:
                    a, b = offset_of(text, item.range.start), offset_of(text, item.range.end)
                    at_cursor, replace = a == h.offset, b - a
            client.text_document_did_close(types.DidCloseTextDocumentParams(
                text_document=types.TextDocumentIdentifier(uri=uri)))
            rows.append({"answer": answer, "replace": replace, "items": len(items), "at_cursor": at_cursor, "ms": ms})
            if progress is not None:
                progress(i + 1, len(holes))
    finally:
        try:
            await asyncio.wait_for(client.shutdown_session(), 30)
        except Exception:  # a server that does not go is killed below
            pass
        server = getattr(client, "_server", None)
        if server is not None and server.returncode is None:
            server.kill()
            await server.wait()
        try:
            await asyncio.wait_for(client.stop(), 10)
        except Exception:
            pass
    return rows


async def _wait_indexed(client, timeout: float) -> None:
    """Until the server's workspace memory has published its first index."""
    from lsprotocol import types

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))
        ws = (st.get("memory") or {}).get("workspace") if isinstance(st, dict) else None
        if ws and ws.get("state") in ("ready", "error") and ws.get("generation", 1):
            return
        await asyncio.sleep(0.2)


def write_workspaces(records: Sequence[dict], dest: Path) -> dict[str, Path]:
    """Each held-out package's files under ``dest/<source>/`` (the author's text: the server's
    buffer, the file without the middle, replaces the hole's own file). Returns source -> folder."""
    out = {}
    for r in records:
        folder = dest / _safe(r["source"].replace("/", "_"))
        p = folder / r["path"]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(r["text"], encoding="utf-8")
        out[r["source"]] = folder
    return out


def evaluate(model: str | Path, holes: Sequence[Hole], *, threads: int = 1, timeout: float = 300.0,
             progress: Callable[[int, int], None] | None = None, options: dict | None = None,
             workspace: Path | None = None, records: Sequence[dict] = (), automatic: bool = False) -> dict:
    """Run the holes through the server and score them: rows (one per hole) and the summary.
    ``workspace``: a folder to write the held-out packages to; the holes of each package then run in
    a server whose workspace is that package (one server per package)."""
    from model import heldout

    t0 = time.time()
    if workspace is None:
        rows = asyncio.run(run_holes(model, holes, threads=threads, timeout=timeout, progress=progress,
                                     options=options, automatic=automatic))
    else:
        folders = write_workspaces(records, workspace)
        rows = [None] * len(holes)
        for source, folder in folders.items():
            idx = [i for i, h in enumerate(holes) if h.source == source]
            if not idx:
                continue
            got = asyncio.run(run_holes(model, [holes[i] for i in idx], threads=threads, timeout=timeout,
                                        options=options, root=folder, automatic=automatic))
            for i, r in zip(idx, got):
                rows[i] = r
            if progress is not None:
                progress(sum(r is not None for r in rows), len(holes))
    variants = {"server": ([r["answer"] for r in rows], [r["replace"] for r in rows])}
    scored = [{**h.brief(), **r, **heldout.score(h, r["answer"], r["replace"])} for h, r in zip(holes, rows)]
    ms = sorted(r["ms"] for r in rows) or [0.0]
    return {
        "holes": heldout.describe_holes(holes),
        "summary": heldout.summarize(holes, variants),
        "latency_ms": {"p50": statistics.median(ms), "p90": ms[int(0.9 * (len(ms) - 1))], "max": ms[-1]},
        "seconds": round(time.time() - t0, 1),
        "rows": scored,
    }


def markdown(res: dict) -> str:
    from model.heldout import markdown as table

    hs = res["holes"]
    return (f"Command: `{res['command']}`  \nModel `{res['model']}`, {hs['total']} holes from {hs['files']} files "
            f"({res['per_kind']} per kind per language, seed {res['seed']}), {res['threads']} thread, "
            f"{res['seconds']:.0f} s; inlineCompletion p50 {res['latency_ms']['p50']:.0f} ms, "
            f"p90 {res['latency_ms']['p90']:.0f} ms (request to response, real server over stdio). "
            f"Answers: the first item's insertText; syntax columns over non-blank answers.\n\n"
            + table(res["summary"], ["server"]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_heldout_args(ap, ROOT, ROOT / "docs" / "bench" / "heldout-server.json")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per request (the first loads the model)")
    ap.add_argument("--memory", choices=("auto", "off"), default="auto", help="the memory setting (default: auto)")
    ap.add_argument("--workspace", type=Path, default=None,
                    help="write each held-out package here and serve its holes with it as the workspace")
    ap.add_argument("--source-dir", type=Path, default=None,
                    help="cut the holes from the source files of this folder (a repository outside the corpus) "
                         "instead of the corpus's held-out split")
    ap.add_argument("--automatic", action="store_true",
                    help="automatic requests: what the confidence gate shows (shown share, precision)")
    a = ap.parse_args(argv)
    from model.heldout import cut_heldout_holes, load_records

    from model.heldout import LANGS, records_from_dir

    source = records_from_dir(a.source_dir) if a.source_dir is not None else None
    holes = cut_heldout_holes(source if source is not None else a.corpus, per_kind=a.per_kind, seed=a.seed,
                              langs=[g for g in LANGS if source is None or any(r["lang"] == g for r in source)])
    if not holes:
        raise SystemExit(f"no holes: no heldout split in {a.corpus}? build it with python -m model.corpus")
    t0 = time.time()

    def progress(i: int, n: int) -> None:
        if i % 100 == 0 or i == n:
            print(f"{i}/{n} holes, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)

    res = {"command": "python benchmarks/heldout_server.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "model": a.model, "per_kind": a.per_kind, "seed": a.seed, "threads": a.threads,
           "memory": a.memory, "workspace": a.workspace is not None, "automatic": a.automatic,
           **evaluate(a.model, holes, threads=a.threads, timeout=a.timeout, progress=progress,
                      options={"memory": a.memory}, workspace=a.workspace,
                      records=(source if source is not None else load_records(a.corpus)) if a.workspace is not None else (),
                      automatic=a.automatic)}
    write_report(a.out, res, markdown(res))


if __name__ == "__main__":
    main()
