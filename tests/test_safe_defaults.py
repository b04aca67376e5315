"""Safe by default: no network, offline hub, no remote code, only documents the client sent.

The server runs with a ``sitecustomize.py`` on PYTHONPATH that makes every socket connect,
``getaddrinfo`` and ``create_connection`` raise, and records each attempt (and every file
opened under the test's private directory, through an audit hook) in a log. The stdio
transport uses pipes, not sockets, so the LSP session itself is untouched.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from conftest import TINY
from raw_rpc import RawServer, completion_params, inline_params

GUARD = textwrap.dedent('''
    import os, socket, sys
    _log = os.environ["DG_LSP_GUARD_LOG"]
    _private = os.environ["DG_LSP_PRIVATE_DIR"]

    def _record(kind, what):
        with open(_log, "a") as f:
            f.write(kind + " " + repr(what) + "\\n")

    def _blocked(name):
        def deny(*args, **kwargs):
            _record("connect", (name, args[1:] if args and isinstance(args[0], socket.socket) else args))
            raise OSError("network access blocked by the dg-lsp test guard")
        return deny

    socket.socket.connect = _blocked("connect")
    socket.socket.connect_ex = _blocked("connect_ex")
    socket.getaddrinfo = _blocked("getaddrinfo")
    socket.create_connection = _blocked("create_connection")

    def _audit(event, args):
        if event == "open" and isinstance(args[0], str) and args[0].startswith(_private):
            _record("open", args[0])

    sys.addaudithook(_audit)
    _record("guard", "loaded")
''')


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    base = tmp_path_factory.mktemp("guard")
    (base / "site").mkdir()
    (base / "site" / "sitecustomize.py").write_text(GUARD)
    private = base / "private"
    private.mkdir()
    log = base / "guard.log"
    env = {"PYTHONPATH": str(base / "site"), "DG_LSP_GUARD_LOG": str(log), "DG_LSP_PRIVATE_DIR": str(private),
           "HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": ""}  # the server must go offline by itself
    s = RawServer(TINY, env=env)
    s.initialize({"maxTokens": 8})
    yield s, log, private
    s.close()


def records(log: Path, kind: str) -> list[str]:
    return [ln for ln in log.read_text().splitlines() if ln.startswith(kind + " ")]


def test_end_to_end_without_network(guarded):
    s, log, private = guarded
    assert records(log, "guard"), "the guard did not load: this test would prove nothing"
    uri = (private / "a.py").as_uri()
    (private / "a.py").write_text("ON DISK: never read\n")
    s.open(uri, "def add(a, b):\n    return \n\nx = add(1, 2)\n")
    r = s.request("textDocument/inlineCompletion", inline_params(uri, 1, 11))
    assert isinstance(r["result"]["items"], list)
    r = s.request("textDocument/completion", completion_params(uri, 1, 11))
    assert "result" in r
    acts = s.request("textDocument/codeAction", {"textDocument": {"uri": uri}, "context": {"diagnostics": []},
                     "range": {"start": {"line": 3, "character": 4}, "end": {"line": 3, "character": 13}}})["result"]
    assert acts, "a rewrite is offered for a selection"
    r = s.request("codeAction/resolve", acts[0], timeout=120)
    assert "result" in r or r["error"]["code"] == -32803
    assert s.command("dg-lsp.status")["result"]["loaded"]
    # only what the client sent: a file on disk that was never opened is not read
    on_disk = (private / "b.py")
    on_disk.write_text("secret = 1\n")
    r = s.request("textDocument/inlineCompletion", inline_params(on_disk.as_uri(), 0, 0))
    assert r["error"]["code"] == -32602
    assert records(log, "connect") == []
    assert records(log, "open") == [], "the server opened a file the client never sent"
    assert not s.violations


def test_hub_id_is_not_downloaded(guarded):
    s, log, _ = guarded
    s.notify("workspace/didChangeConfiguration", {"settings": {"dgLsp": {"model": "google/diffusiongemma-e2b"}}})
    assert s.wait(lambda: any("never downloads" in n["params"].get("message", "") for n in s.notes), 60), s.notes
    assert records(log, "connect") == []
    s.notify("workspace/didChangeConfiguration", {"settings": {"dgLsp": {"model": str(TINY)}}})
    assert s.command("dg-lsp.reloadModel")["result"]["loaded"]


def test_remote_code_is_not_run_unless_enabled(guarded, tmp_path):
    s, log, _ = guarded
    path = tmp_path / "custom"
    shutil.copytree(TINY, path)
    marker = tmp_path / "remote-code-ran"
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(model_type="evil_custom", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    n = len(s.notes)
    s.notify("workspace/didChangeConfiguration", {"settings": {"dgLsp": {"model": str(path)}}})
    assert s.wait(lambda: any("trustRemoteCode" in m["params"].get("message", "") for m in s.notes[n:]), 60), s.notes[n:]
    assert not marker.exists()
    s.notify("workspace/didChangeConfiguration", {"settings": {"dgLsp": {"model": str(TINY)}}})
    assert s.command("dg-lsp.reloadModel")["result"]["loaded"]
    assert records(log, "connect") == []
