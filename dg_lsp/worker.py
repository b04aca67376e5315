"""Model work off the event loop: one worker thread, cancellation, newest request wins.

Every job runs on a single thread (the engine and its prompt cache are not thread-safe,
and two CPU jobs would only slow each other down). A job gets a ``Ticket``; the loop side
cancels it on ``$/cancelRequest``, on a newer request for the same document, or when the
document changes; the engine checks the ticket between denoising steps.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from dg_lsp.engine.errors import Cancelled

T = TypeVar("T")


class Ticket:
    _ids = itertools.count(1)

    def __init__(self, key: str | None):
        self.id = next(self._ids)
        self.key = key
        self.event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        if self.event.is_set():
            raise Cancelled(self.reason or "cancelled")


class Worker:
    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dg-lsp-model")
        self.latest: dict[str, Ticket] = {}
        self._lock = threading.Lock()
        self.inflight = 0  # jobs submitted and not yet finished on the worker thread

    def ticket(self, key: str | None, *, supersede: bool = True) -> Ticket:
        """A ticket for a new job; with ``supersede`` an older job on ``key`` is cancelled."""
        t = Ticket(key)
        if key is not None:
            old = self.latest.get(key)
            if supersede and old is not None:
                old.cancel("superseded by a newer request")
            self.latest[key] = t
        return t

    def cancel_key(self, key: str, reason: str) -> None:
        t = self.latest.get(key)
        if t is not None:
            t.cancel(reason)

    def release(self, t: Ticket) -> None:
        if t.key is not None and self.latest.get(t.key) is t:
            del self.latest[t.key]

    async def run(self, t: Ticket, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker; cancelling the awaiting task cancels the ticket."""
        loop = asyncio.get_running_loop()

        def job() -> T:
            try:
                t.check()
                return fn(*args)
            finally:
                with self._lock:
                    self.inflight -= 1

        with self._lock:
            self.inflight += 1
        try:
            fut = loop.run_in_executor(self.pool, job)
        except BaseException:
            with self._lock:
                self.inflight -= 1
            raise
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            t.cancel("$/cancelRequest")
            raise
        finally:
            self.release(t)

    def shutdown(self) -> None:
        for t in list(self.latest.values()):
            t.cancel("shutdown")
        self.pool.shutdown(wait=False, cancel_futures=True)
