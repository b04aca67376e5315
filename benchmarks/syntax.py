"""Syntax benchmark: holes cut from held-out real code, filled with constraints off and on.

    nice -n 10 python -m benchmarks.syntax [--model model] [--per-lang 150] [--humaneval 300]
                                           [--out docs/bench/syntax.json]

Holes (per language, deterministic): rest of a line, a whole line, a block body (1-6 lines)
and call arguments, cut with tree-sitter from source files that the embedded model never saw:

* python: the held-out (test) split of the training corpus (``data/corpus/test-*.jsonl``);
* javascript / typescript: ``editors/vscode/node_modules`` (``*.js``, ``*.ts`` but not ``*.d.ts``;
  the ``typescript`` package, which the corpus was built from, is skipped);
* c: ``/usr/share/doc/**/examples/*.c``; cpp: ``/usr/include/c++/*/ext/pb_ds/**/*.hpp``;
  lua: Neovim's runtime ``lua/`` in ``.cache/editors``; bash: ``/usr/lib/perf-core/tests/shell``
  and ``/usr/share/doc/git/contrib``; go: ``/usr/share/doc/git/contrib``.

Every hole goes through ``dg_lsp.service.propose`` (cut, mode, canvases, post-processing) on
the document without the middle, cursor at the hole, ``invoked=True``, twice: syntax-aware
off and on. Per language: syntax-valid rate of returned middles (the file with the completion
has no more ERROR/MISSING nodes than without it, counted by tree-sitter directly), bracket-balance
rate (no bracket type more unbalanced than without it, outside strings/comments), empty-answer
rate, exact match (vs the cut middle) and median latency; plus HumanEval-Infilling single-line
pass@1 (``model/eval.py``'s test runner) through the same path. Off and on alternate per hole /
task, so machine load hits both alike. One thread, meant to run under nice.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("rest_of_line", "whole_line", "block_body", "call_args")
CALL_ARGS = {"argument_list", "arguments"}
MAX_FILES = 400
MAX_FILE_CHARS = 60_000


@dataclass
class Hole:
    lang: str
    kind: str
    path: str
    text: str  # the document without the middle
    offset: int  # cursor
    middle: str  # what was cut


# ----------------------------------------------------------------------------- sources
def _glob(patterns: list[tuple[Path, str]], skip: tuple[str, ...] = ()) -> list[Path]:
    out: list[Path] = []
    for root, pattern in patterns:
        if root.is_dir():
            out += [p for p in sorted(root.rglob(pattern)) if not any(s in p.as_posix() for s in skip)]
    return out


def sources(lang: str) -> list[tuple[str, str]]:
    """(path, text) of held-out files for ``lang``."""
    if lang == "python":
        from model.corpus import iter_corpus

        return [(r["path"], r["text"]) for r in iter_corpus(ROOT / "data" / "corpus", "test", "python")]
    nm = ROOT / "editors" / "vscode" / "node_modules"
    skip_nm = ("/node_modules/typescript/", ".min.", "/dist/")
    paths = {
        "javascript": _glob([(nm, "*.js")], skip_nm),
        "typescript": [p for p in _glob([(nm, "*.ts")], skip_nm) if not p.name.endswith(".d.ts")],
        "c": _glob([(Path("/usr/share/doc"), "*.c")]),
        "cpp": _glob([(p, "*.hpp") for p in sorted(Path("/usr/include/c++").glob("*/ext/pb_ds"))]),
        "lua": _glob([(ROOT / ".cache" / "editors" / "root" / "usr" / "share" / "nvim" / "runtime" / "lua", "*.lua")]),
        "bash": _glob([(Path("/usr/lib/perf-core/tests/shell"), "*.sh"), (Path("/usr/share/doc/git/contrib"), "*.sh")]),
        "go": _glob([(Path("/usr/share/doc/git/contrib"), "*.go")]),
    }[lang]
    from model.corpus import keep_text

    rng = random.Random(0)
    rng.shuffle(paths)
    out = []
    for p in paths[:MAX_FILES]:
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if keep_text(text) and len(text) < MAX_FILE_CHARS:
            out.append((str(p), text))
    return out


# ----------------------------------------------------------------------------- holes
def _lines(text: str) -> list[str]:
    return text.split("\n")


def holes_in(lang: str, path: str, text: str, spec) -> dict[str, list[Hole]]:
    """Every candidate hole of each kind in one file."""
    from dg_lsp.context import SyntaxDocument, literal_at

    doc = SyntaxDocument(spec, text)
    if doc.tree.root_node.has_error:
        return {}
    lines = _lines(text)
    starts = [0]
    for ln in lines[:-1]:
        starts.append(starts[-1] + len(ln) + 1)
    out: dict[str, list[Hole]] = {k: [] for k in KINDS}
    comment = spec.line_comment or "\x00"
    for i, ln in enumerate(lines):
        body = ln.strip()
        if len(body) < 6 or body.startswith(comment) or body.startswith(("*", "/*")):
            continue
        indent = len(ln) - len(ln.lstrip())
        a = starts[i] + indent
        if literal_at(doc, a) is None and literal_at(doc, starts[i] + len(ln.rstrip())) is None:
            out["whole_line"].append(Hole(lang, "whole_line", path, text[:a] + text[a + len(body):], a, body))
        cuts = [m for m in range(indent + 2, len(ln.rstrip()) - 1) if not ln[m - 1].isalnum() or not ln[m].isalnum()]
        for m in cuts[len(cuts) // 2 : len(cuts) // 2 + 1]:
            off = starts[i] + m
            if literal_at(doc, off) is None:
                mid = ln[m:].rstrip()
                out["rest_of_line"].append(Hole(lang, "rest_of_line", path, text[:off] + text[off + len(mid):], off, mid))
    stack = [doc.tree.root_node]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.type in CALL_ARGS and node.start_point.row == node.end_point.row and node.child_count >= 3:
            inner_a, inner_b = node.children[0].end_byte, node.children[-1].start_byte
            if node.children[0].type == "(" and 3 <= inner_b - inner_a <= 60:
                a, b = doc.offset_of(inner_a), doc.offset_of(inner_b)
                out["call_args"].append(Hole(lang, "call_args", path, text[:a] + text[b:], a, text[a:b]))
    caps = spec.query("scopes")
    if caps is not None:
        import tree_sitter

        for name, nodes in tree_sitter.QueryCursor(caps).captures(doc.tree.root_node).items():
            if not name.startswith("scope.block"):
                continue
            for node in nodes:
                h = _block_hole(lang, path, text, lines, starts, node)
                if h is not None:
                    out["block_body"].append(h)
    return out


def _block_hole(lang: str, path: str, text: str, lines: list[str], starts: list[int], node) -> Hole | None:
    r0, r1 = node.start_point.row, node.end_point.row
    if r0 == 0:
        return None
    if lines[r0].rstrip().endswith(("{", "then", "do")) and lines[r1].strip() in ("}", "end", "fi", "done", "};"):
        first, last = r0 + 1, r1 - 1  # braces / keywords around the body
    elif lines[r0 - 1].rstrip().endswith(":") and node.start_point.column == len(lines[r0]) - len(lines[r0].lstrip()):
        first, last = r0, r1  # an indented body (Python)
    else:
        return None
    if not (0 <= last - first <= 5) or not all(lines[j].strip() for j in range(first, last + 1)):
        return None
    indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
    a = starts[first] + len(indent)
    b = starts[last] + len(lines[last])
    return Hole(lang, "block_body", path, text[:a] + text[b:], a, text[a:b])


def cut_holes(langs: list[str], per_lang: int, seed: int = 1234) -> list[Hole]:
    from dg_lsp.context import registry

    holes: list[Hole] = []
    for lang in langs:
        spec = registry().get(lang)
        pool: dict[str, list[Hole]] = {k: [] for k in KINDS}
        for path, text in sources(lang):
            for k, hs in holes_in(lang, path, text, spec).items():
                pool[k] += hs
        rng = random.Random(f"{seed}/{lang}")
        kinds = [k for k in KINDS if pool[k]]
        chosen: list[Hole] = []
        share = per_lang // max(1, len(kinds))
        for k in kinds:
            chosen += rng.sample(pool[k], min(share, len(pool[k])))
        rest = [h for k in kinds for h in pool[k] if h not in chosen]
        chosen += rng.sample(rest, min(per_lang - len(chosen), len(rest)))
        print(f"{lang}: {len(chosen)} holes from {sum(len(v) for v in pool.values())} candidates", file=sys.stderr)
        holes += chosen
    return holes


# ----------------------------------------------------------------------------- scoring
def error_count(spec, text: str) -> int:
    tree = spec.parser().parse(text.encode("utf-8"))
    n, stack = 0, [tree.root_node]
    while stack:
        node = stack.pop()
        n += node.is_error or node.is_missing
        if node.has_error:
            stack.extend(node.children)
    return n


def bracket_ok(spec, before: str, after: str) -> bool:
    from dg_lsp.context import bracket_delta

    a, b = bracket_delta(spec, before), bracket_delta(spec, after)
    return all(abs(b[k]) <= abs(a[k]) for k in a)


def run_hole(engine, spec, hole: Hole, settings, syntax_aware: bool) -> dict:
    from dg_lsp.context import SyntaxDocument
    from dg_lsp.service import propose

    doc = SyntaxDocument(spec, hole.text)
    engine.cache.reset()
    t = time.perf_counter()
    p = propose(engine, spec, doc, hole.offset, settings, invoked=True, syntax_aware=syntax_aware)
    ms = (time.perf_counter() - t) * 1000
    row = {"kind": hole.kind, "mode": p.mode, "ms": ms, "text": p.text, "empty": not p.text.strip()}
    if p.text.strip():
        new = hole.text[: hole.offset] + p.text + hole.text[hole.offset + p.replace :]
        row["syntax"] = error_count(spec, new) <= error_count(spec, hole.text)
        row["brackets"] = bracket_ok(spec, hole.text, new)
    row["exact"] = p.text.strip() == hole.middle.strip()
    return row


def summarize(rows: list[dict]) -> dict:
    ret = [r for r in rows if not r["empty"]]
    n = len(rows)
    return {
        "n": n,
        "returned": len(ret),
        "syntax_valid": sum(r["syntax"] for r in ret) / len(ret) if ret else None,
        "brackets_balanced": sum(r["brackets"] for r in ret) / len(ret) if ret else None,
        "empty": sum(r["empty"] for r in rows) / n if n else None,
        "exact": sum(r["exact"] for r in rows) / n if n else None,
        "p50_ms": statistics.median(r["ms"] for r in rows) if rows else None,
    }


def humaneval(engine, settings, limit: int) -> dict:
    """HumanEval-Infilling single-line through ``propose``, constraints off and on per task in turn."""
    from dg_lsp.context import SyntaxDocument, registry
    from dg_lsp.service import propose
    from model.eval import exact, load_tasks, run_tests, test_program

    spec = registry().get("python")
    tasks = load_tasks("single", limit)
    out = {k: {"pass": [], "exact": [], "ms": []} for k in ("off", "on")}
    for t in tasks:
        doc = SyntaxDocument(spec, t["prompt"] + t["suffix"])
        for key in ("off", "on"):
            engine.cache.reset()
            t0 = time.perf_counter()
            p = propose(engine, spec, doc, len(t["prompt"]), settings, invoked=True, syntax_aware=key == "on")
            out[key]["ms"].append((time.perf_counter() - t0) * 1000)
            suffix = t["suffix"][p.replace :]
            out[key]["pass"].append(run_tests(test_program({**t, "suffix": suffix}, p.text)))
            out[key]["exact"].append(exact(p.text, t["canonical_solution"]))
    n = len(tasks)
    return {k: {"n": n, "pass@1": sum(v["pass"]) / n, "exact": sum(v["exact"]) / n, "p50_ms": statistics.median(v["ms"])}
            for k, v in out.items()}


def markdown(res: dict) -> str:
    def pct(x):
        return "n/a" if x is None else f"{x:.1%}"

    out = [f"Command: `{res['command']}`  ", f"Model `{res['model']}`, {res['threads']} thread, {res['seconds']:.0f} s.", ""]
    out += ["| language | holes | constraints | returned | syntax-valid | brackets balanced | empty | exact | p50 ms |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for lang, r in res["languages"].items():
        for key in ("off", "on"):
            s = r[key]
            out.append(f"| {lang} | {s['n']} | {key} | {s['returned']} | {pct(s['syntax_valid'])} | "
                       f"{pct(s['brackets_balanced'])} | {pct(s['empty'])} | {pct(s['exact'])} | {s['p50_ms']:.0f} |")
    if res.get("humaneval"):
        out += ["", "| HumanEval-Infilling single-line | n | pass@1 | exact | p50 ms |", "| --- | --- | --- | --- | --- |"]
        for key in ("off", "on"):
            h = res["humaneval"][key]
            out.append(f"| constraints {key} | {h['n']} | {pct(h['pass@1'])} | {pct(h['exact'])} | {h['p50_ms']:.0f} |")
    if res.get("by_kind"):
        out += ["", "| hole kind | constraints | n | syntax-valid | empty | exact |", "| --- | --- | --- | --- | --- | --- |"]
        for kind, r in res["by_kind"].items():
            for key in ("off", "on"):
                s = r[key]
                out.append(f"| {kind} | {key} | {s['n']} | {pct(s['syntax_valid'])} | {pct(s['empty'])} | {pct(s['exact'])} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "model"))
    ap.add_argument("--langs", default="python,javascript,typescript,c,cpp,lua,bash,go")
    ap.add_argument("--per-lang", type=int, default=150)
    ap.add_argument("--humaneval", type=int, default=300, help="HumanEval single-line tasks (0: skip)")
    ap.add_argument("--context-tokens", type=int, default=192, help="the model was trained on 128 + 64 tokens")
    ap.add_argument("--dtype", default="auto", help="engine dtype (auto: float32, bf16 products on CPUs with bf16 GEMMs)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "syntax.json")
    a = ap.parse_args(argv)
    import msgspec
    import torch

    torch.set_num_threads(1)
    from dg_lsp.context import registry
    from dg_lsp.engine import Engine
    from dg_lsp.settings import DEFAULTS

    settings = msgspec.structs.replace(DEFAULTS, context_tokens=a.context_tokens)
    engine = Engine.load(a.model, device="cpu", dtype=a.dtype)
    engine.warmup()
    t0 = time.time()
    holes = cut_holes(a.langs.split(","), a.per_lang)
    res: dict = {"command": "python -m benchmarks.syntax " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "model": a.model, "threads": 1, "matmul_dtype": engine.describe()["matmul_dtype"], "holes": len(holes), "languages": {}, "by_kind": {}}
    rows: dict[str, list[dict]] = {"off": [], "on": []}
    for i, hole in enumerate(holes):
        spec = registry().get(hole.lang)
        for key in ("off", "on"):
            r = run_hole(engine, spec, hole, settings, key == "on")
            r["lang"] = hole.lang
            rows[key].append(r)
        if i % 100 == 99:
            print(f"{i + 1}/{len(holes)} holes, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    for lang in dict.fromkeys(h.lang for h in holes):
        res["languages"][lang] = {k: summarize([r for r in rows[k] if r["lang"] == lang]) for k in rows}
    res["languages"]["all"] = {k: summarize(rows[k]) for k in rows}
    for kind in KINDS:
        res["by_kind"][kind] = {k: summarize([r for r in rows[k] if r["kind"] == kind]) for k in rows}
    if a.humaneval:
        res["humaneval"] = humaneval(engine, settings, a.humaneval)
    res["seconds"] = time.time() - t0
    res["samples"] = [{"lang": h.lang, "kind": h.kind, "middle": h.middle, "off": rows["off"][i]["text"], "on": rows["on"][i]["text"]}
                      for i, h in enumerate(holes[:: max(1, len(holes) // 40)])]
    from model.eval import write_report

    write_report(a.out, res, markdown(res))


if __name__ == "__main__":
    main()
