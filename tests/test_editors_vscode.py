"""VS Code extension (editors/vscode): npm ci, build, Node tests against the real server, .vsix.

VS Code itself cannot run in CI (its test harnesses download it), so the extension's settings
mapping runs under Node's test runner and the real dg-lsp server (tiny checkpoint) is driven from
Node with vscode-languageserver-protocol, the library VS Code's client is built on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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
