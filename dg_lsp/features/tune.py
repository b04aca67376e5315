"""``dg-lsp.tune`` / ``dg-lsp.tuneCancel``: tune the model on the workspace from the editor.

The tune runs as its own process (``dg-lsp tune ROOT --json``, one torch thread, at a lower CPU
priority), so completions keep being served by the loaded model while it trains; its progress
lines become ``$/progress``. When it has written the tuned weights and the ``tuned`` setting is
"auto", the server reloads and serves them. Cancelling kills the process before it saves: the
weights that served before go on serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from lsprotocol import types

if TYPE_CHECKING:
    from dg_lsp.server import DgLanguageServer

log = logging.getLogger(__name__)

TUNE_COMMAND = "dg-lsp.tune"
CANCEL_COMMAND = "dg-lsp.tuneCancel"


class TuneJob:
    def __init__(self, root: str, minutes: float):
        self.root, self.minutes = root, minutes
        self.proc: asyncio.subprocess.Process | None = None
        self.progress = 0.0
        self.state = "starting"  # running, done, failed, cancelled
        self.result: dict[str, Any] | None = None
        self.error = ""
        self.started = time.time()
        self.task: asyncio.Task | None = None

    def summary(self) -> dict[str, Any]:
        return {"workspace": self.root, "state": self.state, "progress": self.progress, "minutes": self.minutes,
                "result": self.result, "error": self.error, "seconds": round(time.time() - self.started, 1)}


def _lower_priority() -> None:  # in the child, before exec
    try:
        os.nice(10)
    except OSError:
        pass


async def _run(ls: "DgLanguageServer", job: TuneJob) -> None:
    s = ls.settings
    cmd = [sys.executable, "-m", "dg_lsp", "tune", job.root, "--json", "--minutes", str(job.minutes), "--threads", "1"]
    model = s.model or ls.model_override
    if model:
        cmd += ["--model", model]
    token = str(uuid.uuid4())
    progress = bool(ls.client_capabilities.window and ls.client_capabilities.window.work_done_progress)
    if progress:
        try:
            await asyncio.wait_for(ls.work_done_progress.create_async(token), timeout=5)
            ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(
                title="dg-lsp tune", message=f"tuning on {job.root}", percentage=0, cancellable=False))
        except Exception as exc:  # a client may refuse the token; the tune goes on
            log.info("work done progress unavailable: %s", exc)
            progress = False
    last_line = ""
    try:
        job.proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=_lower_priority)
        job.state = "running"
        assert job.proc.stdout is not None
        async for raw in job.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            last_line = rec.get("message", last_line)
            if "progress" in rec:
                job.progress = float(rec["progress"])
                if progress:
                    ls.work_done_progress.report(token, types.WorkDoneProgressReport(
                        message=f"step {rec.get('step')}, loss {rec.get('loss')}", percentage=int(100 * job.progress)))
            if "done" in rec:
                job.result = rec
        err = (await job.proc.stderr.read()).decode("utf-8", "replace") if job.proc.stderr else ""
        rc = await job.proc.wait()
        if job.state == "cancelled":
            pass
        elif rc == 0 and job.result is not None:
            job.state, job.progress = "done", 1.0
        else:
            job.state, job.error = "failed", (err.strip().splitlines() or [f"exit status {rc}"])[-1]
    except Exception as exc:  # never more than a failed tune: the served model is untouched
        job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        if progress:
            end = {"done": "tuned weights ready", "cancelled": "cancelled", "failed": f"failed: {job.error}"}
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=end.get(job.state, job.state)))
    log.info("tune of %s: %s %s", job.root, job.state, job.result or job.error)
    if job.state == "failed":
        ls.window_show_message(types.ShowMessageParams(
            type=types.MessageType.Error, message=f"dg-lsp tune failed: {job.error}. The model in use is unchanged."))
    elif job.state == "done" and ls.settings.tuned == "auto":
        await ls.reload_model()  # now finds the tuned weights for this workspace


def register(server: "DgLanguageServer") -> None:
    @server.command(TUNE_COMMAND)
    async def tune(ls, *args) -> dict[str, Any]:
        """Start tuning on the workspace: ``[{"minutes": N}]`` (default: the tuneMinutes setting)."""
        from pygls.exceptions import JsonRpcInvalidParams

        root = ls.workspace.root_path if ls.workspace is not None else None
        if not root or not os.path.isdir(root):
            raise JsonRpcInvalidParams("dg-lsp.tune needs a workspace folder (rootUri / workspaceFolders)")
        minutes = ls.settings.tune_minutes
        if args and isinstance(args[0], dict) and "minutes" in args[0]:
            try:
                minutes = float(args[0]["minutes"])
            except (TypeError, ValueError):
                raise JsonRpcInvalidParams("minutes must be a number") from None
            if not 0 < minutes <= 600:
                raise JsonRpcInvalidParams("minutes must be in (0, 600]")
        if ls.tuning is not None and ls.tuning.state in ("starting", "running"):
            return {"started": False, "tune": ls.tuning.summary()}
        job = TuneJob(root, minutes)
        ls.tuning = job
        job.task = asyncio.ensure_future(_run(ls, job))
        return {"started": True, "tune": job.summary()}

    @server.command(CANCEL_COMMAND)
    async def cancel(ls, *args) -> dict[str, Any]:
        job = ls.tuning
        if job is None or job.state not in ("starting", "running") or job.proc is None:
            return {"cancelled": False, "tune": job.summary() if job else None}
        job.state = "cancelled"
        job.proc.kill()  # before it saves: the weights that served go on serving
        return {"cancelled": True, "tune": job.summary()}
