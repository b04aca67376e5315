"""A raw JSON-RPC client for the real server over stdio, strict about what reaches stdout.

A reader thread parses every byte the server writes: each message must be a
``Content-Length`` framed JSON object with ``"jsonrpc": "2.0"`` and be a well-formed
response, request or notification. Anything else is recorded in ``violations`` (a
traceback or a stray ``print`` on stdout would land there). Server-to-client requests
(progress tokens) are answered with ``null``; notifications are kept in ``notes``.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from conftest import ROOT, TINY, server_command

INIT = {"processId": None, "rootUri": None, "capabilities": {
    "textDocument": {"codeAction": {"resolveSupport": {"properties": ["edit"]}, "dataSupport": True},
                     "inlineCompletion": {}},
    "general": {"positionEncodings": ["utf-16"]},
}}


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def check_message(msg: Any) -> str | None:
    """Why ``msg`` is not a valid JSON-RPC 2.0 message from a server (None: it is)."""
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
        return f"not a JSON-RPC 2.0 object: {msg!r:.200}"
    if "method" in msg:
        return None if isinstance(msg["method"], str) else f"bad method: {msg!r:.200}"
    if "id" not in msg or ("result" in msg) == ("error" in msg):
        return f"response needs an id and exactly one of result/error: {msg!r:.200}"
    if "error" in msg:
        err = msg["error"]
        if not (isinstance(err, dict) and isinstance(err.get("code"), int) and isinstance(err.get("message"), str)):
            return f"bad error object: {msg!r:.200}"
    return None


class RawServer:
    def __init__(self, model: Path | None = TINY, *extra: str, env: dict | None = None,
                 preexec_fn: Callable[[], None] | None = None):
        self.stderr = tempfile.NamedTemporaryFile(prefix="dg-lsp-stderr-", suffix=".log", delete=False)
        full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        self.proc = subprocess.Popen(
            server_command(model, *extra), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, env=full_env, cwd=ROOT, preexec_fn=preexec_fn,
        )
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.responses: dict[Any, dict] = {}
        self.notes: list[dict] = []
        self.null_id: list[dict] = []  # errors answered with "id": null (parse errors, invalid requests)
        self.violations: list[str] = []
        self.frames = 0
        self.order: list = []  # ids of responses in the order they arrived
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()

    # ------------------------------------------------------------------ reading
    def _read(self) -> None:
        out = self.proc.stdout
        try:
            while True:
                headers: dict[bytes, bytes] = {}
                while True:
                    line = out.readline()
                    if not line:
                        return
                    if line == b"\r\n":
                        break
                    name, sep, value = line.partition(b": ")
                    if not sep or not line.endswith(b"\r\n"):
                        self.violations.append(f"not a header line: {line[:200]!r}")
                        continue
                    headers[name.lower()] = value.strip()
                if b"content-length" not in headers:
                    self.violations.append(f"frame without Content-Length: {headers!r}")
                    continue
                body = out.read(int(headers[b"content-length"]))
                try:
                    msg = json.loads(body)
                except ValueError:
                    self.violations.append(f"body is not JSON: {body[:200]!r}")
                    continue
                problem = check_message(msg)
                with self.cond:
                    self.frames += 1
                    if problem:
                        self.violations.append(problem)
                    elif "method" in msg and "id" in msg:
                        self.send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
                    elif "method" in msg:
                        self.notes.append(msg)
                    elif msg["id"] is None:
                        self.null_id.append(msg)
                    else:
                        self.responses[_key(msg["id"])] = msg
                        self.order.append(msg["id"])
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate() or self.closed, timeout) and predicate()

    def response(self, msg_id: Any, timeout: float = 60.0) -> dict:
        k = _key(msg_id)
        if not self.wait(lambda: k in self.responses, timeout):
            raise AssertionError(f"no response to {msg_id!r} within {timeout:.0f} s (alive: {self.alive})")
        return self.responses.pop(k)

    # ------------------------------------------------------------------ writing
    def send_bytes(self, data: bytes) -> None:
        with self.lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def send(self, msg: Any) -> None:
        self.send_bytes(frame(json.dumps(msg).encode()))

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request_async(self, method: str, params: Any, msg_id: Any = None) -> Any:
        msg_id = next(self.ids) if msg_id is None else msg_id
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id

    def request(self, method: str, params: Any, timeout: float = 60.0) -> dict:
        return self.response(self.request_async(method, params), timeout)

    # ------------------------------------------------------------------ LSP steps
    def initialize(self, options: Any = None) -> dict:
        res = self.request("initialize", {**INIT, "initializationOptions": options}, timeout=120)
        self.notify("initialized", {})
        return res

    def open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language, "version": version, "text": text}})

    def change(self, uri: str, version: int, text: str) -> None:
        self.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]})

    def command(self, name: str, *args: Any, timeout: float = 120.0) -> dict:
        return self.request("workspace/executeCommand", {"command": name, "arguments": list(args)}, timeout)

    def log_text(self) -> str:
        return Path(self.stderr.name).read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 30.0) -> int | None:
        try:
            if self.alive:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit", None)
                self.proc.wait(timeout)
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()
        os.unlink(self.stderr.name)
        return self.proc.returncode


def _key(msg_id: Any) -> str:
    return json.dumps(msg_id)


def inline_params(uri: str, line: int, character: int, trigger: int = 1) -> dict:
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
            "context": {"triggerKind": trigger}}


def completion_params(uri: str, line: int, character: int) -> dict:
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}
