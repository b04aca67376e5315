"""The token memory in the server (``memory`` settings; docs/memory.md).

The workspace index (``dg_lsp.memory.workspace.WorkspaceMemory``) starts when a model has loaded
(it needs the model's tokenizer) and is refreshed on ``textDocument/didSave`` and
``workspace/didChangeWatchedFiles``; it builds in a thread of its own and a completion never
waits for it (until its first build, requests read the open documents only). Each request's
``Memory`` (``memory_for``) is built on the worker: the document split at the cursor, the other
open documents, the workspace snapshot with the open documents' files hidden.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from lsprotocol import types

if TYPE_CHECKING:
    from dg_lsp.engine import Engine
    from dg_lsp.server import DgLanguageServer, Snapshot

log = logging.getLogger(__name__)


def path_of(uri: str) -> str | None:
    """The file path of a ``file:`` URI, else None."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return str(Path(unquote(parsed.path)))


def workspace_folders(ls: "DgLanguageServer") -> list[str]:
    """The folders the editor opened (workspace folders, else the root), as paths."""
    ws = ls.workspace
    if ws is None:
        return []
    out = []
    for folder in list(getattr(ws, "folders", {}).values()):
        p = path_of(folder.uri)
        if p and p not in out:
            out.append(p)
    if not out and ws.root_path:
        out.append(str(ws.root_path))
    return out


class MemoryState:
    """The server's memories: the workspace index, the open-documents cache, the last answer's evidence."""

    def __init__(self) -> None:
        from dg_lsp.memory.scopes import OpenDocuments

        self.workspace: Any = None  # WorkspaceMemory
        self.key: tuple | None = None  # (engine id, folders, token cap) the workspace index was started for
        self.open = OpenDocuments()
        self.last: dict = {}  # scopes and evidence of the last answer

    def stop(self) -> None:
        if self.workspace is not None:
            self.workspace.stop(timeout=1.0)
            self.workspace = None
            self.key = None


def state(ls: "DgLanguageServer") -> MemoryState:
    st = ls.__dict__.get("_memory_state")
    if st is None:
        st = ls.__dict__["_memory_state"] = MemoryState()
    return st


def ensure_workspace(ls: "DgLanguageServer", engine: "Engine | None") -> None:
    """Start (or restart for a new tokenizer, folders or cap) the workspace index, or stop it when
    the settings turn it off. Returns at once: indexing runs in the index's own thread."""
    st = state(ls)
    s = ls.settings
    folders = workspace_folders(ls)
    want = engine is not None and s.memory != "off" and s.memory_workspace and bool(folders)
    key = (id(engine), tuple(folders), s.memory_workspace_tokens) if want else None
    if key == st.key:
        return
    st.stop()
    if not want:
        return
    from dg_lsp.memory.workspace import WorkspaceMemory

    st.workspace = WorkspaceMemory(folders, background_encoder(engine.tokenizer), max_tokens=s.memory_workspace_tokens,
                                   busy=lambda: ls.worker.inflight > 0)  # indexing waits while a request computes
    st.key = key
    st.workspace.start()
    log.info("workspace memory: indexing %s", ", ".join(folders))


def background_encoder(tokenizer: Any) -> Any:
    """``encode(text)`` for the workspace index's thread: a line token cache of its own (not the
    worker's: another thread), which gives the ids the engine's gives. Line by line, the thread
    lets go of Python's global lock between lines: on 60 standard-library files the main thread
    waited at most 9 ms, against 92 ms for one ``encode_batch`` of the same lines (which was also
    twice as slow on two cores)."""
    from dg_lsp.engine import tokencache

    return tokencache.for_tokenizer(tokenizer).encode


def memory_for(ls: "DgLanguageServer", snap: "Snapshot", offset: int, engine: "Engine", text: str | None = None,
               cut: float | None = None) -> Any:
    """The ``Memory`` of a request at ``offset`` of ``snap`` (None with ``memory`` off); ``text``:
    the document as the request sees it, when that is not ``snap.text`` (holes filled so far);
    ``cut``: the draft's cut while it is mixed in, when not ``MixParams``' default.
    Runs on the worker; reads only the server's buffers and the workspace snapshot."""
    from dataclasses import replace

    from dg_lsp.memory.fusion import MixParams
    from dg_lsp.memory.scopes import build_memory

    s = ls.settings
    if s.memory == "off":
        return None
    st = state(ls)
    others = []
    if s.memory_open_documents:
        for uri, doc in list(ls.workspace.text_documents.items()):
            if uri != snap.uri and doc.language_id in snap.spec.language_ids:
                others.append((uri, doc.version, doc.source))
    ws = st.workspace.snapshot() if (st.workspace is not None and s.memory_workspace) else None
    open_paths = [p for p in (path_of(u) for u in list(ls.workspace.text_documents)) if p]
    return build_memory(engine.tokens.encode, snap.text if text is None else text, offset, document=s.memory_document,
                        open_docs=others, open_cache=st.open, workspace=ws, open_paths=open_paths,
                        params=None if cut is None else replace(MixParams(), draft_cut=cut))


def warm(ls: "DgLanguageServer", snap: "Snapshot", engine: "Engine") -> None:
    """Tokenize the document through the engine's line cache ahead of its first request (after
    didOpen, on the worker): requests then only tokenize the lines that changed (a 3,800-line
    file: about 60 ms cold, 3 ms warm; docs/memory.md). Edits need no warming: the request
    itself tokenizes the one line that changed."""
    if ls.settings.memory != "off" and ls.settings.memory_document:
        engine.tokens.encode(snap.text)


_WARMS: set = set()  # running warm-up tasks (a reference keeps them alive)


def schedule_warm(ls: "DgLanguageServer", uri: str) -> None:
    """After didOpen, ``warm`` the document on the worker (a job of its own: it supersedes no
    request). Nothing to do without a model or with the document memory off."""
    import asyncio

    engine = ls.engine
    if engine is None or ls.settings.memory == "off" or not ls.settings.memory_document:
        return
    try:
        snap = ls.snapshot(uri)
    except Exception:  # a document the server cannot serve: nothing to warm
        return
    if snap is None:
        return
    ticket = ls.worker.ticket(None)

    async def go() -> None:
        try:
            await ls.worker.run(ticket, warm, ls, snap, engine)
        except Exception:  # never more than a log line: the request tokenizes what it needs
            log.debug("memory warm-up of %s failed", uri, exc_info=True)

    task = asyncio.ensure_future(go())
    _WARMS.add(task)
    task.add_done_callback(_WARMS.discard)


def record(ls: "DgLanguageServer", memory: Any, result: Any) -> None:
    """Keep what the memory held and supplied for the last answer (``dg-lsp.status``)."""
    st = state(ls)
    st.last = {"scopes": memory.describe() if memory is not None else {},
               "answer": dict(getattr(result, "memory", {}) or {}) if result is not None else {}}


def describe(ls: "DgLanguageServer") -> dict:
    """The memory's part of ``dg-lsp.status``."""
    st = state(ls)
    s = ls.settings
    return {
        "enabled": s.memory != "off",
        "scopes": {"document": s.memory_document, "openDocuments": s.memory_open_documents,
                   "workspace": s.memory_workspace},
        "workspace": st.workspace.stats() if st.workspace is not None else None,
        "lastAnswer": st.last,
    }


def register(server: "DgLanguageServer") -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: "DgLanguageServer", params: types.DidSaveTextDocumentParams) -> None:
        ws = state(ls).workspace
        p = path_of(params.text_document.uri)
        if ws is not None and p:
            ws.refresh([p])

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: "DgLanguageServer", params: types.DidChangeWatchedFilesParams) -> None:
        ws = state(ls).workspace
        if ws is None:
            return
        paths = [p for p in (path_of(c.uri) for c in params.changes or []) if p]
        if paths:
            ws.refresh(paths)
