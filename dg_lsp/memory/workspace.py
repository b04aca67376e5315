"""The workspace scope of the token memory: the workspace's source files, tokenized and indexed
(``TokenIndex``) in a background thread, published as immutable snapshots.

* **Which files**: those ``dg_lsp.tune.walk_sources`` yields under each workspace folder (the
  grammars' languages, .gitignore honoured, ``SKIP_DIRS`` and hidden directories not entered,
  symlinks out of the folder never read), read by ``read_source`` (binary, minified, generated
  and huge files skipped, non-UTF-8 bytes replaced). A file reached twice (nested folders, a
  symlink to a file of the workspace) is indexed once. Indexing stops at ``max_files`` files
  or ``max_tokens`` tokens (``stats()["truncated"]``).
* **Builds** run in one daemon thread: ``start()`` asks for the first, ``refresh()`` for later
  ones. Requests are debounced: a build starts ``debounce_s`` after the last request (at most
  ``5 * debounce_s`` after the first one still waiting), so a storm of calls costs one build.
  Each build walks the folders again; a file whose (path, mtime_ns, size) is unchanged reuses
  its tokens (and a skipped file its reason), so a refresh reads and tokenizes only what
  changed; paths named to ``refresh`` are read again even if their stat did not change (an
  edit within the file system's timestamp granularity). When nothing indexed changed, the
  snapshot is kept and no index is built.
* **Snapshots**: ``snapshot()`` is the latest ``WorkspaceSnapshot`` (None before the first
  build), published by a single attribute assignment; its arrays are read-only. A build that
  fails sets the state "error" and keeps the previous snapshot.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import unquote, urlparse

import numpy as np

from dg_lsp.memory.index import TokenIndex

log = logging.getLogger(__name__)

# A debounced build waits for this many debounce periods at most after the first request.
MAX_WAIT_DEBOUNCES = 5.0
# Paths remembered for a forced re-read between builds; beyond it, stats decide.
MAX_FORCED = 10_000
# A text is tokenized in pieces of about this many characters, cut before a line that starts
# in column 0: a tokenizer call holds the GIL throughout (~2 MB/s), so a 500 KB file in one call
# would stall the server's thread for a quarter of a second; a piece, for a few milliseconds.
ENCODE_CHUNK = 16_384
# The longest the build waits for the server's model work before reading the next file (seconds)
BUSY_WAIT_S = 0.5


def _norm(path: str) -> str:
    """An absolute, symlink-free path for a path or ``file://`` URI."""
    if "://" in path:
        path = unquote(urlparse(path).path)
    return os.path.realpath(os.path.abspath(path))


def encode_chunked(encode: Callable[[str], list[int]], text: str, chunk: int = ENCODE_CHUNK) -> list[int]:
    """``encode(text)`` in pieces of about ``chunk`` characters, each cut after a newline that
    precedes a line starting in column 0 (else after any newline, else anywhere): the tokens
    differ from one call's only where a piece ends."""
    if len(text) <= chunk:
        return list(encode(text))
    out: list[int] = []
    at = 0
    n = len(text)
    while at < n:
        end = at + chunk
        if end >= n:
            end = n
        else:
            cut = end
            while True:  # the last newline before ``end`` followed by a non-blank
                cut = text.rfind("\n", at + chunk // 4, cut)
                if cut < 0 or not text[cut + 1 : cut + 2].isspace():
                    break
            if cut < 0:
                cut = text.rfind("\n", at + chunk // 4, end)
            end = cut + 1 if cut >= 0 else end
        out.extend(encode(text[at:end]))
        at = end
    return out


@dataclass(frozen=True)
class WorkspaceSnapshot:
    """One published state of the workspace index: ``index`` holds one sequence per file, the
    file ``paths[i]`` (absolute, symlinks resolved) being sequence ``i``."""

    index: TokenIndex
    paths: list[str]
    generation: int = 0
    built_at: float = 0.0  # time.time() when published
    _seq: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self._seq:
            self._seq.update({p: i for i, p in enumerate(self.paths)})

    def sequence(self, path: str) -> int | None:
        """The sequence of ``path`` (a path or ``file://`` URI), or None if it is not indexed."""
        i = self._seq.get(path)
        if i is None:
            i = self._seq.get(_norm(path))
        return i

    def exclude_spans(self, paths: Iterable[str]) -> np.ndarray | None:
        """The (m, 2) int64 [a, b) spans of ``index.tokens`` holding those files (paths or
        ``file://`` URIs; those not indexed are ignored), for ``TokenIndex.match(exclude=...)``;
        None when none is indexed."""
        spans = []
        for p in paths:
            i = self.sequence(p)
            if i is not None:
                a = int(self.index.starts[i])
                spans.append((a, a + int(self.index.lengths[i])))
        if not spans:
            return None
        return np.asarray(sorted(set(spans)), dtype=np.int64).reshape(-1, 2)


@dataclass
class _Cached:
    mtime_ns: int
    size: int
    tokens: np.ndarray | None  # None: skipped for ``why``
    why: str = ""


class WorkspaceMemory:
    """The workspace's source files as a token index, built and refreshed in the background
    (see the module doc). Nothing here raises to the caller but the constructor's arguments."""

    def __init__(self, folders: list[str], encode: Callable[[str], list[int]], *, max_tokens: int = 4_000_000,
                 max_files: int = 20_000, debounce_s: float = 1.0, busy: Callable[[], bool] | None = None):
        self.folders: list[str] = []
        for f in folders:
            f = _norm(f)
            if f not in self.folders:
                self.folders.append(f)
        self.encode = encode
        # True while the server has model work in flight: the build then waits between files (up to
        # BUSY_WAIT_S at a time), so that typing does not share the CPU with indexing
        self.busy = busy
        self.max_tokens = int(max_tokens)
        self.max_files = int(max_files)
        self.debounce_s = max(0.0, float(debounce_s))
        self._snapshot: WorkspaceSnapshot | None = None
        self._cache: dict[str, _Cached] = {}
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # requests (under ``_cv``)
        self._want = False
        self._forced: set[str] = set()
        self._first_req: float | None = None
        self._last_req = 0.0
        self._immediate = False
        self._busy = False  # a build is running
        self._keys: list[tuple[str, int, int]] | None = None  # (path, mtime_ns, size) of the snapshot's files
        # what stats() reports
        self._state = "idle"
        self._error = ""
        self._skipped: dict[str, int] = {}
        self._truncated = ""
        self._last_build_s: float | None = None
        self._last_scan_s: float | None = None
        self._builds = 0
        self._scans = 0
        self._reads = 0
        self._requests = 0

    def _yield_to_requests(self) -> None:
        """Wait while ``busy()`` says the server is computing (at most ``BUSY_WAIT_S`` per file)."""
        if self.busy is None:
            return
        end = time.monotonic() + BUSY_WAIT_S
        try:
            while self.busy() and not self._stop.is_set() and time.monotonic() < end:
                time.sleep(0.002)
        except Exception:  # noqa: BLE001 - a failing probe never stops indexing
            self.busy = None

    # ------------------------------------------------------------ control
    def start(self) -> None:
        """Start the background thread and ask for the first build (returns at once)."""
        with self._cv:
            if self._thread is not None or self._stop.is_set():
                return
            self._want = True
            self._immediate = True
            self._first_req = self._last_req = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="dg-lsp-workspace-memory", daemon=True)
            self._thread.start()

    def refresh(self, paths: list[str] | None = None) -> None:
        """Ask for a rebuild (debounced, in the background): of everything (``None``) or after a
        change to ``paths`` (files saved, created, deleted; paths or ``file://`` URIs), which are
        read again. Paths outside the folders, and files of no grammar's language (but for
        .gitignore files and paths without an extension, which may be directories), are no
        reason to rebuild. Never raises."""
        try:
            relevant = None if paths is None else [p for p in (_norm(str(x)) for x in paths) if self._relevant(p)]
            with self._cv:
                if self._stop.is_set():
                    return
                self._requests += 1
                if relevant is not None:
                    if not relevant:
                        return
                    if len(self._forced) < MAX_FORCED:
                        self._forced.update(relevant)
                now = time.monotonic()
                self._want = True
                self._last_req = now
                if self._first_req is None:
                    self._first_req = now
                self._cv.notify_all()
        except Exception:  # noqa: BLE001 - a refresh must never fail its caller
            log.exception("workspace memory: refresh(%r) failed", paths)

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (between files; a suffix array being sorted finishes first)."""
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        self._state = "stopped"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no build is asked for or running (True), or ``timeout`` seconds (False)."""
        with self._cv:
            return self._cv.wait_for(lambda: self._stop.is_set() or (not self._want and not self._busy), timeout)

    def snapshot(self) -> WorkspaceSnapshot | None:
        """The latest published snapshot (None before the first build)."""
        return self._snapshot

    def stats(self) -> dict:
        snap = self._snapshot
        return {
            "state": self._state,
            "error": self._error,
            "folders": list(self.folders),
            "files": len(snap.paths) if snap else 0,
            "tokens": snap.index.n_tokens if snap else 0,
            "skipped": dict(self._skipped),
            "truncated": bool(self._truncated),
            "truncated_by": self._truncated,
            "max_files": self.max_files,
            "max_tokens": self.max_tokens,
            "last_build_s": self._last_build_s,
            "last_scan_s": self._last_scan_s,
            "index_bytes": snap.index.nbytes if snap else 0,
            "generation": snap.generation if snap else 0,
            "builds": self._builds,  # indexes built and published
            "scans": self._scans,  # walks of the folders (a scan that found no change builds nothing)
            "files_read": self._reads,  # files read (and tokenized) since start, over all scans
            "refresh_calls": self._requests,
        }

    # ------------------------------------------------------------ thread
    def _relevant(self, p: str) -> bool:
        if not any(p == f or p.startswith(f.rstrip(os.sep) + os.sep) for f in self.folders):
            return False
        from dg_lsp.context import registry

        name = os.path.basename(p)
        return name == ".gitignore" or "." not in name.lstrip(".") or registry().for_path(name) is not None

    def _run(self) -> None:
        try:  # this thread only: a lower CPU priority than the server's requests (Linux)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        try:
            while not self._stop.is_set():
                with self._cv:
                    while not self._want and not self._stop.is_set():
                        self._cv.wait()
                    while not self._stop.is_set() and not self._immediate:
                        now = time.monotonic()
                        assert self._first_req is not None
                        due = min(self._last_req + self.debounce_s,
                                  self._first_req + MAX_WAIT_DEBOUNCES * self.debounce_s)
                        if now >= due:
                            break
                        self._cv.wait(due - now)
                    if self._stop.is_set():
                        break
                    forced, self._forced = self._forced, set()
                    self._want, self._immediate, self._first_req = False, False, None
                    self._busy = True
                try:
                    self._build(forced)
                finally:
                    with self._cv:
                        self._busy = False
                        self._cv.notify_all()
        except BaseException:  # noqa: BLE001 - the thread must end quietly
            log.exception("workspace memory: thread failed")
            self._state, self._error = "error", "thread failed"
        finally:
            if self._stop.is_set():
                self._state = "stopped"

    def _build(self, forced: set[str]) -> None:
        t0 = time.perf_counter()
        self._state = "building"
        try:
            scanned = self._scan(forced)
            if scanned is None:  # stopped
                return
            paths, keys, seqs, skipped, truncated, cache = scanned
            self._scans += 1
            self._skipped, self._truncated = skipped, truncated
            self._cache = cache
            t1 = time.perf_counter()
            self._last_scan_s = t1 - t0
            prev = self._snapshot
            if prev is not None and keys == self._keys and not (forced & set(paths)):
                self._state, self._error = "ready", ""
                return  # nothing indexed changed
            index = TokenIndex(seqs)
            del seqs
            for a in (index.tokens, index.starts, index.lengths, index.sa, index.rev):
                if a is not None:
                    a.flags.writeable = False
            if self._stop.is_set():
                return
            gen = (prev.generation if prev else 0) + 1
            self._keys = keys
            self._snapshot = WorkspaceSnapshot(index, paths, gen, time.time())  # the publication
            self._builds += 1
            self._last_build_s = time.perf_counter() - t0
            self._state, self._error = "ready", ""
        except Exception as e:  # noqa: BLE001 - the previous snapshot stays
            log.exception("workspace memory: build failed")
            self._state, self._error = "error", f"{type(e).__name__}: {e}"

    def _scan(self, forced: set[str]):
        """Walk the folders: (paths, stat keys, token arrays, skipped, truncated, new cache), or
        None when stopped."""
        from dg_lsp.tune import read_source, walk_sources

        paths: list[str] = []
        keys: list[tuple[str, int, int]] = []
        seqs: list[np.ndarray] = []
        skipped: dict[str, int] = {}
        seen: set[str] = set()
        old, cache = self._cache, {}
        total = 0
        truncated = ""
        stopping = self._stop.is_set

        def skip(why: str) -> None:
            skipped[why] = skipped.get(why, 0) + 1

        for folder in self.folders:
            if truncated:
                break
            if not os.path.isdir(folder):
                skip("folder missing")
                continue
            for c in walk_sources(folder, should_stop=stopping):
                if stopping():
                    return None
                real = str(c.real if c.real is not None else c.path)
                if real in seen:  # met already (a symlink to it, a folder inside another): judged then
                    continue
                seen.add(real)
                if c.why:
                    skip(c.why)
                    continue
                st = c.stat
                hit = old.get(real) if real not in forced else None
                if hit is not None and st is not None and (hit.mtime_ns, hit.size) == (st.st_mtime_ns, st.st_size):
                    entry = hit
                else:
                    self._yield_to_requests()
                    data, why, st2 = read_source(c)
                    self._reads += 1
                    st = st2 or st
                    if st is None:
                        skip(why or "unreadable")
                        continue
                    if data is None:
                        entry = _Cached(st.st_mtime_ns, st.st_size, None, why)
                    else:
                        ids = encode_chunked(self.encode, data.decode("utf-8", "replace"))
                        entry = _Cached(st.st_mtime_ns, st.st_size, np.asarray(ids, dtype=np.int32).reshape(-1))
                cache[real] = entry
                if entry.tokens is None:
                    skip(entry.why)
                    continue
                n = len(entry.tokens)
                if len(seqs) >= self.max_files:
                    truncated = "max_files"
                elif total + n > self.max_tokens:
                    truncated = "max_tokens"
                if truncated:
                    break
                total += n
                paths.append(real)
                keys.append((real, entry.mtime_ns, entry.size))
                seqs.append(entry.tokens)
        return paths, keys, seqs, skipped, truncated, cache
