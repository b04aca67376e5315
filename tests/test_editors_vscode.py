"""VS Code extension (editors/vscode): npm ci, build, Node tests against the real server, .vsix,
and the .vsix in a real VS Code.

The extension's settings mapping runs under Node's test runner, and the real dg-lsp server (tiny
checkpoint) is driven from Node with vscode-languageserver-protocol, the library VS Code's client is
built on. VS Code's own test harnesses download VS Code and cannot run here; code-server (VS Code
1.100.3 served to a browser, built offline by ../shared/tools/get-code-server.sh) can: the last test
installs the .vsix into it and drives it headless in Chromium with Playwright
(tests/data/editors/vscode/driver.py): ghost text, Tab, Alt+] cycling, "Rewrite selection" and a
bad setting's message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile

import msgspec
import pytest

from conftest import ROOT, TINY, server_command
from dg_lsp.settings import DEFAULTS, FIELDS

EXT = ROOT / "editors" / "vscode"
NPM = shutil.which("npm")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(not (NPM and NODE), reason="npm/node not installed: the VS Code extension cannot be built")


def npm(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    t = time.monotonic()
    res = subprocess.run([NPM, *args], cwd=EXT, capture_output=True, text=True, timeout=timeout, env=env)
    print(f"npm {' '.join(args)}: rc={res.returncode} in {time.monotonic() - t:.1f}s")
    assert res.returncode == 0, f"npm {' '.join(args)} failed:\n{res.stdout[-6000:]}\n{res.stderr[-6000:]}"
    return res


@pytest.fixture(scope="module")
def built():
    # a clean install from package-lock.json, as CI does (DG_LSP_SKIP_NPM_CI=1 reuses node_modules)
    if not (os.environ.get("DG_LSP_SKIP_NPM_CI") and (EXT / "node_modules").is_dir()):
        try:
            npm("ci", "--no-audit", "--no-fund")
        except AssertionError as exc:
            if any(e in str(exc) for e in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT")):
                pytest.skip(f"npm registry unreachable, cannot install the extension's dependencies: {exc}")
            raise
    npm("run", "build")
    return EXT


def test_contributed_settings_match_server_defaults():
    """Each server setting is a dgLsp.* setting whose default is the server's default."""
    props = json.loads((EXT / "package.json").read_text())["contributes"]["configuration"]["properties"]
    ours = {k.removeprefix("dgLsp."): v for k, v in props.items() if not k.startswith(("dgLsp.server.", "dgLsp.trace."))}
    assert set(ours) == set(FIELDS), set(ours) ^ set(FIELDS)
    defaults = msgspec.to_builtins(DEFAULTS)  # camelCase keys
    for key, prop in ours.items():
        want = defaults[key]
        if key == "model":
            assert want is None and prop["default"] == "", "empty model = the server default"
        else:
            assert prop["default"] == want, (key, prop["default"], want)
        if "enum" in prop:
            assert want in prop["enum"]


def test_node_tests_against_real_server(built):
    env = dict(os.environ)
    env["DG_LSP_SERVER_COMMAND"] = json.dumps(server_command(TINY))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    t = time.monotonic()
    res = subprocess.run([NODE, "--test", "test/"], cwd=built, capture_output=True, text=True, timeout=900, env=env)
    print(res.stdout[-3000:])
    print(f"node --test: {time.monotonic() - t:.1f}s")
    assert res.returncode == 0, res.stdout[-8000:] + res.stderr[-4000:]
    assert "# fail 0" in res.stdout and "# skipped 0" in res.stdout and "# pass 17" in res.stdout


def test_vsix_packages(built):
    vsix = built / "dg-lsp.vsix"
    vsix.unlink(missing_ok=True)
    npm("run", "package")
    names = zipfile.ZipFile(vsix).namelist()
    assert "extension/dist/extension.js" in names and "extension/package.json" in names
    assert not any("node_modules" in n for n in names), "vscode-languageclient is bundled by esbuild"
    manifest = json.loads(zipfile.ZipFile(vsix).read("extension/package.json"))
    assert manifest["main"] == "./dist/extension.js"


# ---------------------------------------------------------------- a real VS Code (code-server)
CODE_SERVER = ROOT / ".cache" / "code-server"
VSCODE_DATA = ROOT / "tests" / "data" / "editors" / "vscode"
SAMPLE = (ROOT / "tests" / "data" / "editors" / "sample.py").read_text()
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def code_server() -> str:
    """code-server 4.100.3 (VS Code 1.100.3), built by tools/get-code-server.sh (offline; ~1-5 min once)."""
    exe = CODE_SERVER / "bin" / "code-server"
    if not exe.exists():
        script = ROOT.parent / "shared" / "tools" / "get-code-server.sh"
        if not script.exists():
            script = ROOT / "tools" / "get-code-server.sh"
        res = subprocess.run(["bash", str(script), str(CODE_SERVER)], capture_output=True, text=True, timeout=1800)
        if res.returncode != 0 or not exe.exists():
            pytest.skip(f"cannot build code-server with {script}: {res.stderr[-1500:]}")
    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium to drive code-server with")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")
    return str(exe)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_vscode_ghost_text_cycling_rewrite_and_bad_setting(built, tmp_path):
    """The .vsix in a real VS Code: the extension activates and starts the server, ghost text
    appears and Tab accepts it into the file, Alt+] cycles the alternatives, "Rewrite selection"
    edits only the selection, and a bad setting shows the server's message."""
    exe = code_server()
    vsix = built / "dg-lsp.vsix"
    if not vsix.exists():
        npm("run", "package")
    work, user, exts = tmp_path / "work", tmp_path / "user", tmp_path / "exts"
    work.mkdir()
    (user / "User").mkdir(parents=True)
    sample = work / "sample.py"
    sample.write_text(SAMPLE)
    wrapper = tmp_path / "dg-lsp"
    cmd = " ".join(f"'{c}'" for c in server_command(TINY, "--log-file", str(tmp_path / "dg-lsp.log")))
    wrapper.write_text(f"#!/bin/sh\nexport PYTHONPATH='{ROOT}'\nexec {cmd} \"$@\"\n")
    wrapper.chmod(0o755)
    settings = user / "User" / "settings.json"
    settings.write_text(json.dumps({
        "dgLsp.server.path": str(wrapper), "dgLsp.minConfidence": 0, "dgLsp.alternatives": 3,
        "workbench.startupEditor": "none", "security.workspace.trust.enabled": False,
        "editor.inlineSuggest.enabled": True, "telemetry.telemetryLevel": "off",
        "extensions.autoCheckUpdates": False, "extensions.autoUpdate": False, "workbench.tips.enabled": False,
        "python.languageServer": "None", "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
    }, indent=1))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    inst = subprocess.run([exe, "--extensions-dir", str(exts), "--user-data-dir", str(user), "--install-extension", str(vsix)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert inst.returncode == 0, inst.stdout[-2000:] + inst.stderr[-2000:]
    port = _free_port()
    log = open(tmp_path / "code-server.log", "w")
    srv = subprocess.Popen([exe, "--auth", "none", "--bind-addr", f"127.0.0.1:{port}", "--disable-telemetry",
                            "--disable-workspace-trust", "--disable-update-check", "--extensions-dir", str(exts),
                            "--user-data-dir", str(user), str(work)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        import urllib.request

        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except Exception:
                assert time.monotonic() < deadline and srv.poll() is None, (tmp_path / "code-server.log").read_text()[-3000:]
                time.sleep(0.5)
        # sample.py: `return a + b` (line 5), `message = "hello " + name` (line 9), `total = add(1, 2)`
        cfg = {"url": f"http://127.0.0.1:{port}/?folder={work}", "file": str(sample), "settings": str(settings),
               "original": SAMPLE, "positions": [[5, 17], [9, 31]], "selection": [9, 15, 30],
               "result": str(tmp_path / "result.json"), "timeout_ms": 180_000, "ghost_wait_s": 60, "chromium": CHROMIUM}
        (tmp_path / "config.json").write_text(json.dumps(cfg))
        t = time.monotonic()
        run = subprocess.run([sys.executable, str(VSCODE_DATA / "driver.py"), str(tmp_path / "config.json")],
                             capture_output=True, text=True, timeout=900, env=env)
        print(f"code-server scenario: {time.monotonic() - t:.1f}s")
        res = json.loads((tmp_path / "result.json").read_text())
        print(json.dumps({k: v for k, v in res.items() if not k.startswith(("after", "before", "editor"))}, indent=1))
        server_log = (tmp_path / "dg-lsp.log").read_text() if (tmp_path / "dg-lsp.log").exists() else "(no server log)"
        assert "error" not in res, (res.get("error"), res["steps"], run.stderr[-3000:],
                                    (tmp_path / "code-server.log").read_text()[-2000:], server_log[-4000:])
    finally:
        srv.terminate()
        try:
            srv.wait(20)
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
    # Tab put text in at the cursor and changed nothing before it
    line, col = res["cursor"]
    lines = SAMPLE.split("\n")
    at = sum(len(s) + 1 for s in lines[: line - 1]) + col - 1
    after = res["after_accept"]
    assert after != SAMPLE and after[:at] == SAMPLE[:at], "the accepted text went in at the cursor"
    assert res["accepted_ghost"].strip() and res["accepted_ghost"].split("\n")[0].strip() in after
    # Alt+] showed other candidates and came round to the first
    shown = res["shown"]
    assert len(shown) >= 2 and shown[1] != shown[0], shown
    # the rewrite changed only the selection, or (a model that doubts nothing enough, as the random
    # test model) nothing, and said so
    before, rewritten = res["before_rewrite"], res["after_rewrite"]
    sel_line, c0, c1 = cfg["selection"]
    a = sum(len(s) + 1 for s in before.split("\n")[: sel_line - 1]) + c0 - 1
    b = a + (c1 - c0)
    if rewritten == before:
        assert "no change suggested" in res.get("rewrite_message", ""), res.get("rewrite_message")
    else:
        assert rewritten.startswith(before[:a]) and rewritten.endswith(before[b:]), \
            (before[a:b], rewritten[a:len(rewritten) - len(before) + b])
    assert "maxTokens" in res["notification"]
