"""Drives a real VS Code (code-server, VS Code 1.100.3) headless in Chromium with Playwright.

    python driver.py CONFIG.json

CONFIG: {"url", "file" (the workspace file to edit, on disk), "settings" (the user settings.json
path), "positions" ([[line 1-based, column 1-based], ...] to try), "selection" ([line, c0, c1]),
"result" (where the JSON result goes), "timeout_ms"}. Scenario, in one browser session:

1. the workbench loads, the file opens (Quick Open), the extension's status bar item appears;
2. at a position, "Trigger Inline Suggestion" asks for one (invoked): ghost text appears; Alt+] shows
   the next candidate, until the first comes round again; Tab accepts the one shown; Ctrl+S;
3. "dg-lsp: Rewrite selection" from the command palette on a selection; Ctrl+S (or, when the
   model changes nothing, its "no change suggested" notification);
4. a bad setting typed into settings.json shows the server's message as a notification.

Every step records what it saw; a failed step records ``error`` and the rest is skipped.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

GHOST = ".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text-decoration-preview, .monaco-editor .ghost-text"


def main(config_path: str) -> None:
    cfg = json.loads(Path(config_path).read_text())
    res: dict = {"steps": [], "log": []}
    timeout = cfg.get("timeout_ms", 120_000)
    out = Path(cfg["result"])

    def step(name: str) -> None:
        res["steps"].append(name)
        out.write_text(json.dumps(res, indent=1))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=cfg.get("chromium", "/usr/bin/chromium"), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(timeout)
        page.on("console", lambda m: res["log"].append(f"console {m.type}: {m.text}"[:300]) if m.type == "error" else None)
        try:
            page.goto(cfg["url"])
            page.wait_for_selector(".monaco-workbench", timeout=timeout)
            step("workbench")
            editor_text = lambda: page.evaluate(  # noqa: E731 - the visible lines, for the log
                "() => Array.from(document.querySelectorAll('.monaco-editor .view-line')).map(e => e.innerText).join('\\n')")
            name = Path(cfg["file"]).name
            for _ in range(3):  # Quick Open can race the workbench's own start-up focus
                page.keyboard.press("Control+P")
                try:
                    page.wait_for_selector(".quick-input-widget input", state="visible", timeout=10_000)
                    break
                except Exception:
                    time.sleep(1)
            page.keyboard.type(name)
            page.wait_for_selector(f".quick-input-list .monaco-list-row[aria-label*='{name}']", timeout=30_000)
            page.keyboard.press("Enter")
            page.wait_for_selector(f".tab[aria-label*='{name}']", timeout=30_000)
            page.wait_for_selector(".monaco-editor .view-lines", timeout=30_000)
            step("file open")
            page.wait_for_selector(".statusbar-item:has-text('dg-lsp')", timeout=timeout)
            res["status_bar"] = page.inner_text(".statusbar-item:has-text('dg-lsp')")
            step("extension active")
            # the server is up (status item), then the model: wait for the ready state
            # (code-server may hand the extension its user settings only after activation: a first
            # launch can fail before dgLsp.server.path applies, and the change restarts the server)
            deadline = time.time() + timeout / 1000
            ready = False
            while time.time() < deadline and not ready:
                label = page.get_attribute(".statusbar-item:has-text('dg-lsp')", "aria-label") or ""
                ready = "ready" in label or "sparkle" in page.inner_html(".statusbar-item:has-text('dg-lsp')")
                time.sleep(0.5)
            res["status_bar_ready"] = page.get_attribute(".statusbar-item:has-text('dg-lsp')", "aria-label")
            if not ready:
                raise RuntimeError(f"the model was not ready in {timeout / 1000:.0f} s: {res['status_bar_ready']!r}")
            step("model ready")

            def goto(line: int, col: int) -> None:
                page.keyboard.press("Control+G")
                page.wait_for_selector(".quick-input-widget input", state="visible")
                page.keyboard.type(f"{line}:{col}")
                page.keyboard.press("Enter")
                time.sleep(0.3)

            def command(title: str) -> None:
                """Run a command from the command palette (F1), as a user does."""
                page.keyboard.press("F1")
                page.wait_for_selector(".quick-input-widget input", state="visible")
                page.keyboard.type(title)
                page.wait_for_selector(f".quick-input-list .monaco-list-row:has-text('{title}')", timeout=30_000)
                page.keyboard.press("Enter")
                time.sleep(0.3)

            def ghost() -> str:
                els = page.query_selector_all(GHOST)
                return "".join(e.inner_text() for e in els).replace("\xa0", " ").strip()  # rendered spaces

            for line, col in cfg["positions"]:
                goto(line, col)
                command("Trigger Inline Suggestion")  # editor.action.inlineSuggest.trigger: an invoked request
                wait = cfg.get("ghost_wait_s", 30)
                t_end = time.time() + wait
                t_retrigger = time.time() + wait / 6
                first = ""
                typed = False
                while time.time() < t_end and not first:
                    time.sleep(0.2)
                    first = ghost()
                    if first:
                        break
                    if not typed and time.time() > t_end - wait / 2:
                        page.keyboard.type(" ")  # as a user types: an automatic request
                        typed = True
                        res["typed"] = " "
                        t_retrigger = time.time() + wait / 6
                    elif time.time() > t_retrigger:  # an empty answer (e.g. a server restarted meanwhile)
                        command("Trigger Inline Suggestion")  # is not asked again until something changes
                        res["retriggered"] = res.get("retriggered", 0) + 1
                        t_retrigger = time.time() + wait / 6
                if not first:
                    res["log"].append(f"no ghost text at {line}:{col}")
                    page.screenshot(path=str(out.with_name(f"no-ghost-{line}-{col}.png")))
                    page.keyboard.press("Escape")
                    continue
                res["cursor"] = [line, col]
                shown = [first]
                for _ in range(4):  # Alt+]: the next candidate, until the first is back
                    cur = shown[-1]
                    page.keyboard.press("Alt+BracketRight")
                    t2 = time.time() + 10
                    nxt = cur
                    while time.time() < t2 and nxt == cur:
                        time.sleep(0.2)
                        nxt = ghost() or cur
                    if nxt == cur:
                        break
                    shown.append(nxt)
                    if nxt == first:
                        break
                res["shown"] = shown
                step("ghost text")
                accepted = ghost()
                res["accepted_ghost"] = accepted
                page.keyboard.press("Tab")
                time.sleep(0.5)
                page.keyboard.press("Control+S")
                t3 = time.time() + 20
                before = cfg["original"]
                while time.time() < t3 and Path(cfg["file"]).read_text() == before:
                    time.sleep(0.2)
                res["after_accept"] = Path(cfg["file"]).read_text()
                step("accepted")
                break
            if "accepted" not in res["steps"]:
                raise RuntimeError("no ghost text at any position")

            # rewrite a selection: select [c0, c1) of a line (columns 1-based) with the keyboard
            line, c0, c1 = cfg["selection"]
            goto(line, c0)
            for _ in range(c1 - c0):
                page.keyboard.press("Shift+ArrowRight")
            saved = Path(cfg["file"]).read_text()
            res["before_rewrite"] = saved
            command("dg-lsp: Rewrite selection")
            # an edit of the selection, or none and the server's "no change suggested" message
            # (a model that doubts nothing enough to change it; the random test model never does)
            no_change = ".notifications-toasts .notification-toast:has-text('no change suggested')"
            t4 = time.time() + timeout / 1000
            while time.time() < t4:
                time.sleep(0.5)
                page.keyboard.press("Control+S")
                if Path(cfg["file"]).read_text() != saved:
                    break
                if page.query_selector(no_change) is not None:
                    res["rewrite_message"] = page.inner_text(no_change)
                    break
            res["after_rewrite"] = Path(cfg["file"]).read_text()
            step("rewritten")

            # a bad setting: the server names it in window/showMessage, shown as a notification
            # (in the settings.json editor, as a user does: VS Code in a browser does not watch the file)
            settings = json.loads(Path(cfg["settings"]).read_text())
            settings["dgLsp.maxTokens"] = "many"
            command("Preferences: Open User Settings (JSON)")
            page.wait_for_selector(".tab[aria-label*='settings.json']", timeout=30_000)
            time.sleep(0.5)
            page.keyboard.press("Control+A")
            page.keyboard.insert_text(json.dumps(settings, indent=1))  # no auto-closing of quotes and braces
            page.keyboard.press("Control+S")
            page.wait_for_selector(".notifications-toasts .notification-toast:has-text('maxTokens')", timeout=timeout)
            res["notification"] = page.inner_text(".notifications-toasts .notification-toast:has-text('maxTokens')")
            step("bad setting message")
            res["editor"] = editor_text()
        except Exception as exc:  # the result says where it stopped
            res["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            try:
                page.screenshot(path=str(out.with_suffix(".png")))
            except Exception:
                pass
        finally:
            out.write_text(json.dumps(res, indent=1))
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1])
