"""The memories one request reads, built from what the server holds.

* ``document``: the whole open document as the editor has it, the text before the cursor and
  the text after it as two sequences (the middle being typed is absent; nothing from disk).
  Indexed afresh per request: tokenizing goes through the engine's line cache and a scan index
  has no build step (docs/memory.md: about 1 ms for a 2,000-line file).
* ``open``: the other open documents (their buffers), rebuilt when one of them changes.
* ``workspace``: the background index of the workspace's files (``dg_lsp.memory.workspace``),
  with the files that are open hidden (their buffers are in the scopes above).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from dg_lsp.memory.fusion import Memory, MixParams, Scope
from dg_lsp.memory.index import TokenIndex

Encode = Callable[[str], list[int]]


def document_scope(encode: Encode, text: str, offset: int) -> Scope:
    """The document split at the cursor: its text before and after ``offset``."""
    return Scope("document", TokenIndex([encode(text[:offset]), encode(text[offset:])]))


class OpenDocuments:
    """The ``open`` scope, cached until the set of other documents or a version changes."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._scope: Scope | None = None

    def scope(self, encode: Encode, docs: Sequence[tuple[str, Any, str]]) -> Scope | None:
        """``docs``: (uri, version, text) of the other open documents."""
        if not docs:
            return None
        key = tuple((u, v, len(t)) for u, v, t in docs)
        if key != self._key:
            self._scope = Scope("open", TokenIndex([encode(t) for _, _, t in docs]))
            self._key = key
        return self._scope


def build_memory(
    encode: Encode,
    text: str,
    offset: int,
    *,
    document: bool = True,
    open_docs: Sequence[tuple[str, Any, str]] = (),
    open_cache: OpenDocuments | None = None,
    workspace: Any = None,
    open_paths: Iterable[str] = (),
    params: MixParams | None = None,
) -> Memory | None:
    """The ``Memory`` of a request at ``offset`` of ``text``; None when every scope is off or empty.
    ``workspace``: a ``WorkspaceSnapshot`` (or None), whose files at ``open_paths`` are hidden."""
    scopes: list[Scope] = []
    if document:
        scopes.append(document_scope(encode, text, offset))
    if open_docs:
        s = (open_cache or OpenDocuments()).scope(encode, open_docs)
        if s is not None:
            scopes.append(s)
    if workspace is not None and workspace.index.n_tokens:
        scopes.append(Scope("workspace", workspace.index, workspace.exclude_spans(open_paths)))
    if not scopes:
        return None
    return Memory(scopes, params or MixParams())
