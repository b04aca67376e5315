"""Text synchronisation: pygls keeps the text (incremental sync); we keep the syntax tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from dg_lsp.features.common import schedule_prefetch
from dg_lsp.features.memory import schedule_warm

if TYPE_CHECKING:
    from dg_lsp.server import DgLanguageServer


def register(server: "DgLanguageServer") -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: "DgLanguageServer", params: types.DidOpenTextDocumentParams) -> None:
        ls.bump_revision(params.text_document.uri)
        ls.sync_document(params.text_document.uri)
        schedule_warm(ls, params.text_document.uri)  # the document's tokens, for its memory

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: "DgLanguageServer", params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        # a completion computed for the old text is stale now
        ls.bump_revision(uri)
        ls.worker.cancel_key(uri, "document changed")
        ls.sync_document(uri)
        schedule_prefetch(ls, uri, params.content_changes)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: "DgLanguageServer", params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.worker.cancel_key(uri, "document closed")
        ls.syntax.pop(uri, None)
        ls.completions.forget(uri)
        ls.bump_revision(uri)
