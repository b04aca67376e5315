"""Raw JSON-RPC against the real server: every request is answered, stdout is only protocol."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from conftest import TINY, server_command


class Raw:
    def __init__(self):
        self.proc = subprocess.Popen(
            server_command(TINY), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )

    def send(self, msg: dict) -> None:
        body = json.dumps(msg).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send_bytes(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read(self) -> dict:
        """Next message; every stdout byte must belong to a well-formed JSON-RPC frame."""
        header = b""
        while not header.endswith(b"\r\n\r\n"):
            ch = self.proc.stdout.read(1)
            assert ch, "server closed stdout"
            header += ch
        assert header.startswith(b"Content-Length: "), header
        n = int(header.split(b"\r\n")[0].split(b": ")[1])
        msg = json.loads(self.proc.stdout.read(n))
        assert msg["jsonrpc"] == "2.0"
        return msg

    def response(self, msg_id) -> dict:
        while True:
            msg = self.read()
            if msg.get("id") == msg_id and "method" not in msg:
                return msg
            if "method" in msg and "id" in msg:  # a server->client request (progress token): accept it
                self.send({"jsonrpc": "2.0", "id": msg["id"], "result": None})


@pytest.fixture(scope="module")
def raw():
    r = Raw()
    yield r
    if r.proc.poll() is None:
        r.proc.kill()


def req(msg_id, method, params):
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


def test_request_before_initialize(raw: Raw):
    raw.send(req(1, "textDocument/completion", {"textDocument": {"uri": "file:///a.py"}, "position": {"line": 0, "character": 0}}))
    assert raw.response(1)["error"]["code"] == -32002


def test_initialize(raw: Raw):
    raw.send(req(2, "initialize", {"processId": None, "rootUri": None, "capabilities": {}}))
    assert "capabilities" in raw.response(2)["result"]
    raw.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    raw.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": "file:///a.py", "languageId": "python", "version": 1, "text": "x = 1\n"}}})


@pytest.mark.parametrize(
    "msg_id,params",
    [
        (10, [1, 2, 3]),  # params not an object
        (11, {"textDocument": {"uri": "file:///a.py"}, "position": {"line": -1, "character": 0},
              "context": {"triggerKind": 1}}),  # negative line
        (12, {"textDocument": {"uri": "file:///a.py"}, "position": {"line": 0, "character": 0}}),  # no context
        ("str-id", {"textDocument": {"uri": "file:///a.py"}, "position": {"line": "zero", "character": 0},
                    "context": {"triggerKind": 1}}),  # wrong type
    ],
)
def test_invalid_params_are_answered(raw: Raw, msg_id, params):
    raw.send(req(msg_id, "textDocument/inlineCompletion", params))
    assert raw.response(msg_id)["error"]["code"] == -32602


def test_unknown_method_and_garbage(raw: Raw):
    raw.send_bytes(b"Content-Length: 9\r\n\r\n{not json")
    raw.send(req(20, "dg/unknownMethod", {}))
    assert raw.response(20)["error"]["code"] == -32601


def test_still_serving(raw: Raw):
    raw.send(req(30, "textDocument/inlineCompletion", {"textDocument": {"uri": "file:///a.py"},
             "position": {"line": 0, "character": 4}, "context": {"triggerKind": 1}}))
    res = raw.response(30)
    assert "result" in res and isinstance(res["result"]["items"], list)


def test_after_shutdown_and_exit(raw: Raw):
    raw.send(req(40, "shutdown", None))
    assert raw.response(40)["result"] is None
    raw.send(req(41, "textDocument/completion", {"textDocument": {"uri": "file:///a.py"}, "position": {"line": 0, "character": 0}}))
    assert raw.response(41)["error"]["code"] == -32600
    raw.send({"jsonrpc": "2.0", "method": "exit"})
    deadline = time.time() + 30
    while raw.proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert raw.proc.returncode == 0
