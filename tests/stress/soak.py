"""Soak: N completions in one server process over stdio; RSS, threads and fds before and after.

    python tests/stress/soak.py [--n 10000] [--model DIR] [--warmup 200] [--out soak.json]

Not a pytest module (pytest collects only test_*.py). The server types into a real source
file: every step sends a didChange (a character typed or deleted), then alternates
inlineCompletion and completion at the cursor; every 10th step also asks for a code action
and resolves it. After ``--warmup`` steps and at the end it samples VmRSS and VmHWM
(/proc/PID/status), threads (/proc/PID/task) and open fds (/proc/PID/fd).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from raw_rpc import RawServer, completion_params, inline_params  # noqa: E402


def sample(pid: int) -> dict:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    kb = lambda k: int(status[k].split()[0]) / 1024  # noqa: E731
    return {"rss_mb": round(kb("VmRSS"), 1), "hwm_mb": round(kb("VmHWM"), 1),
            "threads": len(os.listdir(f"/proc/{pid}/task")), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--model", default=None, help="checkpoint directory (default: the embedded model)")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--every", type=int, default=1000, help="sample every this many steps too")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    source = (Path(sysconfig.get_paths()["stdlib"]) / "bisect.py").read_text()
    lines = source.split("\n")
    uri = "file:///soak/bisect.py"
    srv = RawServer(Path(a.model) if a.model else None, "--log-level", "warning")
    t_start = time.perf_counter()
    srv.initialize({"seed": 0})
    samples, errors, answered, nonempty = [], 0, 0, 0
    # a blank line inside a function body; each step rewrites it to one of these prefixes
    # (all end where a completion makes sense) and asks at its end
    line = next(i for i, ln in enumerate(lines) if ln.startswith("    lo = ") or ln.strip() == "") + 1
    lines.insert(line, "")
    source = "\n".join(lines)
    srv.open(uri, source)
    pid, version = srv.proc.pid, 1
    prefixes = ["    x = ", "    mid = (lo + hi) // ", "    if x < a[", "    return insort(a, ", "    hi = len(",
                "    while lo < ", "    a.insert(lo, ", "    key = "]
    current = ""
    lat: list[float] = []
    for i in range(a.n):
        new = prefixes[i % len(prefixes)] + ("x" * (i // len(prefixes) % 3)) + " "
        version += 1
        srv.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [
            {"range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": len(current)}},
             "text": new}]})
        current, cursor = new, len(new)
        method = "textDocument/inlineCompletion" if i % 2 == 0 else "textDocument/completion"
        params = inline_params(uri, line, cursor) if i % 2 == 0 else completion_params(uri, line, cursor)
        t0 = time.perf_counter()
        r = srv.request(method, params, timeout=120)
        lat.append((time.perf_counter() - t0) * 1000)
        if "error" in r:
            errors += 1
        else:
            answered += 1
            res = r["result"] or {}
            nonempty += bool(res.get("items"))
        if i % 10 == 9:
            acts = srv.request("textDocument/codeAction", {"textDocument": {"uri": uri}, "context": {"diagnostics": []},
                               "range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": cursor}}})
            for act in (acts.get("result") or [])[:1]:
                srv.request("codeAction/resolve", act, timeout=120)
        if i + 1 == a.warmup or (i + 1) % a.every == 0 or i + 1 == a.n:
            s = {"step": i + 1, "elapsed_s": round(time.perf_counter() - t_start, 1), **sample(pid)}
            samples.append(s)
            print(json.dumps(s), flush=True)
    status = srv.command("dg-lsp.status")["result"]
    violations = list(srv.violations)
    rc = srv.close()
    warm = next(s for s in samples if s["step"] == min(a.warmup, a.n))
    end = samples[-1]
    lat.sort()
    result = {
        "model": a.model or "embedded", "completions": a.n, "answered": answered, "errors": errors,
        "nonempty": nonempty, "stdout_violations": len(violations), "exit_code": rc,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "latency_ms": {"p50": round(lat[len(lat) // 2], 1), "p99": round(lat[int(len(lat) * 0.99)], 1)},
        "after_warmup": warm, "end": end,
        "rss_growth_pct": round(100 * (end["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"], 2),
        "peak_rss_growth_pct": round(100 * (end["hwm_mb"] - warm["hwm_mb"]) / warm["hwm_mb"], 2),
        "thread_change": end["threads"] - warm["threads"], "fd_change": end["fds"] - warm["fds"],
        "server_stats": {k: status["stats"][k] for k in ("answered", "dropped")},
        "samples": samples,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
