"""Helix end to end: editors/helix/languages.toml with the real server, Helix 25.07 in tmux.

Opens a Python file, asks for completion (C-x), accepts the dg-lsp item, runs the
rewrite-selection code action (space a) on a selection, writes the file, and checks that the file
changed only at the cursor and inside the selection.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import DATA, ROOT, TINY, server_command

EDITORS = ROOT / ".cache" / "editors"
SAMPLE = (DATA / "editors" / "sample.py").read_text()
CLOSERS = set(")]}\"'` \t")


def hx() -> str:
    exe = EDITORS / "bin" / "hx"
    if not exe.exists():
        res = subprocess.run(["bash", str(ROOT / "tools" / "get-editors.sh"), str(EDITORS)], capture_output=True, text=True)
        if res.returncode != 0 or not exe.exists():
            pytest.skip(f"cannot fetch Helix with tools/get-editors.sh: {res.stderr[-800:]}")
    return str(exe)


def tmux_bin() -> str:
    exe = shutil.which("tmux")
    if exe is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "tmux"], capture_output=True)
        exe = shutil.which("tmux")
    if exe is None:
        pytest.skip("tmux is not installed and apt-get could not install it")
    return exe


def helix_config(tmp: Path) -> Path:
    """The shipped languages.toml with the test's server command line."""
    cfg = tmp / "config"
    (cfg / "helix").mkdir(parents=True)
    cmd = server_command(TINY)
    text = (ROOT / "editors" / "helix" / "languages.toml").read_text()
    text, n1 = re.subn(r'(?m)^command = "dg-lsp".*$', f"command = {json_str(cmd[0])}", text)
    text, n2 = re.subn(r'(?m)^args = \["--stdio"\].*$', "args = [" + ", ".join(json_str(a) for a in cmd[1:]) + "]", text)
    assert n1 == 1 and n2 == 1, "languages.toml layout changed"
    (cfg / "helix" / "languages.toml").write_text(text)
    (cfg / "helix" / "config.toml").write_text("[editor]\nidle-timeout = 250\n")
    return cfg


def json_str(s: str) -> str:
    import json

    return json.dumps(s)


class Tmux:
    def __init__(self, exe: str, tmp: Path):
        self.exe, self.sock = exe, str(tmp / "tmux.sock")

    def __call__(self, *args: str) -> str:
        return subprocess.run([self.exe, "-S", self.sock, *args], capture_output=True, text=True, check=True).stdout

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "hx", *keys)
        time.sleep(0.3)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "hx")

    def wait(self, what: str, cond, timeout: float = 180) -> str:
        end = time.monotonic() + timeout
        while True:
            s = self.screen()
            if cond(s):
                return s
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{s}")
            time.sleep(0.3)


def offset(text: str, line1: int, col: int) -> int:
    lines = text.split("\n")
    return sum(len(s) + 1 for s in lines[: line1 - 1]) + col


def test_helix_completion_and_rewrite(tmp_path):
    exe, tmux = hx(), Tmux(tmux_bin(), tmp_path)
    cfg = helix_config(tmp_path)
    path = tmp_path / "sample.py"
    path.write_text(SAMPLE)
    env = {
        "XDG_CONFIG_HOME": str(cfg),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PYTHONPATH": str(ROOT),
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TERM": "xterm-256color",
    }
    cmd = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + f" {shlex.quote(exe)} {shlex.quote(str(path))}"
    t0 = time.monotonic()
    # Helix opened in the test's folder, as a user opens it in a project: that folder is the
    # workspace (the server's workspace memory indexes it), not the repository pytest runs in
    tmux("new-session", "-d", "-s", "hx", "-x", "140", "-y", "40", "-c", str(tmp_path), f"env -i {cmd}")
    try:
        tmux.wait("Helix to open the file", lambda s: "import os" in s and "NOR" in s, 60)
        # (1) completion at the end of line 5 (`    return a + b`): C-x, Tab selects the dg-lsp
        # item, Enter accepts it
        tmux.keys(":5", "Enter")
        tmux.keys("A")
        tmux.wait("insert mode", lambda s: "INS" in s, 10)
        # the first request waits for the model to load; ask again until the menu shows
        end = time.monotonic() + 300
        while True:
            tmux.keys("C-x")
            try:
                menu = tmux.wait("the completion menu", _menu_shown, 20)
                break
            except AssertionError:
                if time.monotonic() > end:
                    raise
        tmux.keys("Tab")  # select (and preview) the item
        tmux.keys("Enter")  # accept it
        tmux.keys("Escape")
        tmux.keys(":w", "Enter")
        written = tmux_wait_file(path, lambda t: t != SAMPLE, 30)
        p = offset(SAMPLE, 5, 16)
        assert written[:p] == SAMPLE[:p], "text before the cursor changed"
        s = 0  # common suffix, not reaching back over the cursor
        while s < len(SAMPLE) - p and s < len(written) - p and SAMPLE[-1 - s] == written[-1 - s]:
            s += 1
        removed, inserted = SAMPLE[p : len(SAMPLE) - s], written[p : len(written) - s]
        assert inserted.strip(), "nothing was inserted"
        assert set(removed) <= CLOSERS, f"text after the cursor changed: {removed!r}"
        label = inserted.strip().split("\n")[0][:20]
        assert label in menu, ("the accepted text is the item shown in the menu", label, menu)
        print("completion accepted:", repr(inserted), f"at {time.monotonic() - t0:.1f}s")

        # (2) rewrite selection: `"hello " + name` on line 9 (cols 14..28), space a, Enter
        after_completion = written
        tmux.keys(":9", "Enter")
        tmux.keys("g", "h")
        tmux.keys("14l")
        tmux.keys("v")
        tmux.keys("14l")
        tmux.keys("Escape")  # leave select mode, keep the selection
        tmux.keys("Space", "a")
        tmux.wait("the code action menu", lambda s: "Rewrite selection (dg-lsp)" in s, 120)
        tmux.keys("Enter")
        # the random test model doubts nothing enough to change it: no edit, and Helix shows the
        # server's message; a model that does change it changes only the selection
        screen = tmux.wait("the rewrite's answer", lambda s: "no change suggested" in s or "[+]" in s, 180)
        tmux.keys(":w", "Enter")
        a, b = offset(after_completion, 9, 14), offset(after_completion, 9, 29)
        assert after_completion[a:b] == '"hello " + name'
        if "no change suggested" in screen:
            time.sleep(1)
            final = path.read_text()
            assert final == after_completion, "no change suggested, but the file changed"
        else:
            final = tmux_wait_file(path, lambda t: t != after_completion, 180)
            assert final.startswith(after_completion[:a]) and final.endswith(after_completion[b:]), \
                "only the selection changed"
        print("rewrite:", repr(final[a : len(final) - (len(after_completion) - b)]), f"at {time.monotonic() - t0:.1f}s")
    finally:
        try:
            tmux.keys(":q!", "Enter")
        except Exception:
            pass
        subprocess.run([tmux.exe, "-S", tmux.sock, "kill-server"], capture_output=True)


def _menu_shown(screen: str) -> bool:
    """The completion popup: a row under line 5 ending in the item kind (text / snippet)."""
    rows = screen.split("\n")
    return any(re.search(r"\S\s+(text|snippet)\s*$", r) for r in rows[5:12])


def tmux_wait_file(path: Path, cond, timeout: float) -> str:
    end = time.monotonic() + timeout
    while True:
        t = path.read_text()
        if cond(t):
            return t
        if time.monotonic() > end:
            raise AssertionError(f"the file did not change:\n{t}")
        time.sleep(0.3)
