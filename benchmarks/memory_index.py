"""The workspace memory's cost (``dg_lsp.memory.workspace.WorkspaceMemory``, issue 25): the time
to index a workspace in the background and the memory it holds.

    python benchmarks/memory_index.py [--sizes 1,10] [--many-files 100000] [--out docs/bench/memory-index.json]

For each size (MB), a workspace of real source files: the Python standard library's ``.py``
files, copied (sorted, into a temp dir, tests included) until the size is reached. Each size
runs in its own process, so its RSS is its own: the tokenizer (the embedded model's) is loaded,
``gc`` run and VmRSS read; then ``start()`` and ``wait()`` (the first build), one file touched
and ``refresh([it])`` (a rebuild: only that file read again, the index built anew), and VmRSS
read again after ``gc`` with the memory and its snapshot alive (``rss_mb``: the increase;
``peak_mb``: VmHWM minus the VmRSS before). While building, the main thread sleeps 1 ms in a
loop and records how late it wakes (``stall_ms``: the background thread holds the GIL between
its releases; what an LSP request waits at worst).

``--many-files N``: N tiny files (100 a directory) in a temp dir, indexed with the default
``max_files`` (20,000): the walk stops at the cap; its time and RSS increase.

Targets (issue 25): 10 MB indexed in < 30 s with < 300 MB extra RSS.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def vm(field: str) -> float:
    """A /proc/self/status field in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def make_workspace(dest: Path, mb: float) -> tuple[int, int]:
    """Copy stdlib .py files (sorted, none over the indexer's size cap) into ``dest`` until
    ``mb`` MB; (files, bytes)."""
    from dg_lsp.tune import MAX_FILE_BYTES

    src = Path(sysconfig.get_paths()["stdlib"])
    files = total = 0
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "__pycache__"))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            p = Path(dirpath) / name
            try:
                size = p.stat().st_size
            except OSError:
                continue
            if size > MAX_FILE_BYTES or size == 0:
                continue
            out = dest / p.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, out)
            files += 1
            total += size
            if total >= mb * 1e6:
                return files, total
    return files, total


def watch_stalls(done: threading.Event) -> list[float]:
    """How late (ms) each 1 ms sleep of this thread wakes, until ``done``."""
    lates = []
    while not done.is_set():
        t = time.perf_counter()
        time.sleep(0.001)
        lates.append((time.perf_counter() - t - 0.001) * 1000)
    return lates


def timed_build(ws, trigger) -> tuple[float, list[float]]:
    done = threading.Event()
    t0 = time.perf_counter()
    trigger()
    waiter = threading.Thread(target=lambda: (ws.wait(600), done.set()), daemon=True)
    waiter.start()
    lates = watch_stalls(done)
    return time.perf_counter() - t0, lates


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def one(mb: float, many: int) -> dict:
    """One measurement, in this (fresh) process."""
    import tokenizers

    from dg_lsp.memory.workspace import WorkspaceMemory

    tok = tokenizers.Tokenizer.from_file(str(ROOT / "model" / "tokenizer.json"))

    def encode(t: str) -> list[int]:
        return tok.encode(t, add_special_tokens=False).ids

    encode("warm up the tokenizer\n")
    tmp = Path(tempfile.mkdtemp(prefix="dg-memidx-"))
    try:
        rec: dict = {}
        if many:
            t = time.perf_counter()
            for i in range(many):
                d = tmp / f"d{i // 100:05d}"
                if i % 100 == 0:
                    d.mkdir()
                (d / f"m{i}.py").write_text(f"value_{i} = {i}\n")
            rec.update(kind="many-files", created=many, create_s=round(time.perf_counter() - t, 2))
        else:
            n, b = make_workspace(tmp, mb)
            rec.update(kind="stdlib", target_mb=mb, copied_files=n, copied_mb=round(b / 1e6, 2))
        from dg_lsp.context import registry

        registry()
        gc.collect()
        rss0 = vm("VmRSS")
        ws = WorkspaceMemory([str(tmp)], encode, debounce_s=0.0)
        first_s, lates = timed_build(ws, ws.start)
        st = ws.stats()
        assert st["state"] == "ready", st
        rec.update(first_build_s=round(first_s, 2), files=st["files"], tokens=st["tokens"], index_mb=round(st["index_bytes"] / 1e6, 1),
                   skipped=st["skipped"], truncated=st["truncated_by"] or False,
                   stall_ms_p99=round(pct(lates, 0.99), 1), stall_ms_max=round(max(lates, default=0), 1))
        snap = ws.snapshot()
        touched = snap.paths[len(snap.paths) // 2]
        with open(touched, "a") as f:
            f.write("\n# touched by the benchmark\n")
        reads = st["files_read"]
        refresh_s, lates = timed_build(ws, lambda: ws.refresh([touched]))
        st = ws.stats()
        assert st["generation"] == 2 and st["files_read"] == reads + 1, st
        rec.update(refresh_s=round(refresh_s, 2), refresh_scan_s=round(st["last_scan_s"], 2),
                   refresh_stall_ms_max=round(max(lates, default=0), 1))
        del snap
        gc.collect()
        rec.update(rss_mb=round(vm("VmRSS") - rss0, 1), peak_mb=round(vm("VmHWM") - rss0, 1))
        ws.stop()
        return rec
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,10", help="workspace sizes in MB, comma-separated")
    ap.add_argument("--many-files", type=int, default=0, help="also index this many tiny files (max_files caps it)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench" / "memory-index.json"))
    ap.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--one-many", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one is not None or a.one_many:
        print(json.dumps(one(a.one or 0.0, a.one_many)))
        return
    runs = []
    jobs = [["--one", s] for s in a.sizes.split(",") if s.strip()]
    if a.many_files:
        jobs.append(["--one-many", str(a.many_files)])
    for job in jobs:
        res = subprocess.run([sys.executable, __file__, *job], capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            sys.exit(f"{job} failed:\n{res.stderr[-3000:]}")
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    head = ("workspace", "files", "tokens", "index MB", "first build s", "refresh s", "RSS +MB", "peak +MB", "stall max ms", "truncated")
    print(" | ".join(head))
    for r in runs:
        name = f"stdlib {r['copied_mb']} MB" if r["kind"] == "stdlib" else f"{r['created']} tiny files"
        print(" | ".join(str(x) for x in (name, r["files"], r["tokens"], r["index_mb"], r["first_build_s"], r["refresh_s"],
                                           r["rss_mb"], r["peak_mb"], r["stall_ms_max"], r["truncated"])))
    out = {"benchmark": "memory_index", "python": sys.version.split()[0], "cpus": os.cpu_count(),
           "nice": os.getpriority(os.PRIO_PROCESS, 0), "targets": {"10MB_build_s": 30, "10MB_rss_mb": 300}, "runs": runs}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
