"""initialize / initialized / settings / commands / shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import msgspec
from lsprotocol import types

from dg_lsp.service import prompt_budget

if TYPE_CHECKING:
    from dg_lsp.server import DgLanguageServer

log = logging.getLogger(__name__)

RELOAD_COMMAND = "dg-lsp.reloadModel"
STATUS_COMMAND = "dg-lsp.status"
CONTEXT_COMMAND = "dg-lsp.showContext"


def register(server: "DgLanguageServer") -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: "DgLanguageServer", params: types.InitializeParams) -> None:
        from dg_lsp.server import use_lsp_documents

        use_lsp_documents(ls.workspace)
        ls.apply_settings(params.initialization_options)

    @server.feature(types.INITIALIZED)
    def initialized(ls: "DgLanguageServer", params: types.InitializedParams) -> None:
        ls.ensure_model()  # load in the background; the first request waits for it

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: "DgLanguageServer", params: types.DidChangeConfigurationParams) -> None:
        if params.settings is None:
            return
        ls.apply_settings(params.settings)
        for uri in list(ls.workspace.text_documents):
            ls.sync_document(uri)  # the languages setting may have changed
        ls.ensure_model()  # reloads only when a model-related setting changed
        from dg_lsp.features.memory import ensure_workspace

        ensure_workspace(ls, ls.engine)  # memory settings may have changed

    @server.command(RELOAD_COMMAND)
    async def reload_model(ls, *args) -> dict[str, Any]:
        await ls.reload_model()
        return status(ls)

    @server.command(STATUS_COMMAND)
    def status_command(ls, *args) -> dict[str, Any]:
        return status(ls)

    @server.command(CONTEXT_COMMAND)
    async def show_context(ls, *args) -> dict[str, Any] | None:
        """The prefix/suffix cut and mode at a position: ``[uri, {line, character}]``."""
        from pygls.exceptions import JsonRpcInvalidParams

        from dg_lsp.context import completion_mode, cut_context

        if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], dict):
            raise JsonRpcInvalidParams("dg-lsp.showContext takes [uri, {line, character}]")
        snap = ls.snapshot(args[0])
        if snap is None:
            return None
        try:
            pos = types.Position(line=int(args[1]["line"]), character=int(args[1]["character"]))
        except (KeyError, TypeError, ValueError):
            raise JsonRpcInvalidParams("position must be {line, character}") from None
        offset = ls.offset_of(snap, pos)
        engine = await ls.get_engine()
        count = engine.count_tokens if engine else (lambda t: len(t) // 3 + 1)
        cut = cut_context(snap.syntax, offset, count, prompt_budget(ls.settings, engine), invoked=True)
        snippets = []
        if engine is not None:
            from dg_lsp.features.common import cross_file_for

            _, snippets = await asyncio.to_thread(cross_file_for, ls, snap, offset, engine)
        return {
            "offset": offset,
            "prefix": cut.prefix,
            "suffix": cut.suffix,
            "mode": completion_mode(snap.syntax, offset),
            "language": snap.spec.name,
            # snippets of other files at the head of the prompt (crossFile setting), best first
            "crossFile": [{"path": s.path, "line": s.line, "score": round(s.score, 3), "text": s.text} for s in snippets],
            # what the token memory holds for a request here (tokens per scope) and supplied last time
            "memory": memory_status(ls),
        }

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: "DgLanguageServer", params: Any = None) -> None:
        ls.shutdown_worker()


def memory_status(ls: "DgLanguageServer") -> dict[str, Any]:
    from dg_lsp.features.memory import describe

    return describe(ls)


def _operations(engine: Any) -> dict[str, str]:
    from dg_lsp.engine.holes import operations

    return operations(engine)


def status(ls: "DgLanguageServer") -> dict[str, Any]:
    return {
        "loaded": ls.engine is not None,
        "error": ls.load_error,
        "model": ls.engine.describe() if ls.engine else None,
        # how each operation answers for this checkpoint (draft / canvas / doubt-scored canvas)
        "operations": _operations(ls.engine) if ls.engine else None,
        "cache": {"hits": ls.engine.cache.hits, "misses": ls.engine.cache.misses} if ls.engine else None,
        "stats": ls.stats.summary(),
        "settings": msgspec.to_builtins(ls.settings),
        # which weights serve: the base model, or weights tuned on this workspace (dg-lsp tune)
        "weights": ({"tuned": True, "path": getattr(ls.engine, "tuned_path", None),
                     "manifest": getattr(ls.engine, "tuned", None)}
                    if ls.engine is not None and getattr(ls.engine, "tuned_path", None) else
                    {"tuned": False, "error": getattr(ls.engine, "tuned_error", None)}),
        "tune": ls.tuning.summary() if ls.tuning is not None else None,
        # the token memory: its scopes, the workspace index, what the last answer took from it
        "memory": memory_status(ls),
        "worker": {"inflight": ls.worker.inflight, "tickets": len(ls.worker.latest),
                   "pending": len(ls.protocol._request_futures)},
    }
