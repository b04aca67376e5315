"""textDocument/codeAction: "Rewrite selection" and "Fill holes".

Both are offered cheaply (no model work) and computed in ``codeAction/resolve`` when the
client supports resolving ``edit``; otherwise computed right away. The edit is a
WorkspaceEdit carrying the document version, so a client refuses it if the text moved on;
resolving against a changed document answers ContentModified.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcContentModified as ContentModified
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from dg_lsp.context import enclosing_scope, find_holes
from dg_lsp.engine import Cancelled
from dg_lsp.engine.holes import fill_method
from dg_lsp.features.memory import memory_for
from dg_lsp.fill import fill_holes
from dg_lsp.service import prompt_budget
from dg_lsp.settings import size_limit_tokens

if TYPE_CHECKING:
    from dg_lsp.server import DgLanguageServer, Snapshot

log = logging.getLogger(__name__)

REWRITE_KIND = "refactor.rewrite.dgLsp.rewriteSelection"
FILL_KIND = "refactor.rewrite.dgLsp.fillHoles"
REWRITE_TITLE = "Rewrite selection (dg-lsp)"
FILL_TITLE = "Fill holes (dg-lsp)"


class RequestFailed(JsonRpcException):
    CODE = -32803


# What ``_compute`` returns for a rewrite that changes nothing (the model is sure of the selection,
# or of no change to it) and for a fill that fills no hole (no answer kept the function parsing):
# no edit is offered (a no-op edit would look like a change), and the message says why.
NO_CHANGE = "no change"
NO_FILL = "no fill"
MESSAGES = {
    NO_CHANGE: "dg-lsp: no change suggested: the model doubts nothing in the selection enough to change it",
    NO_FILL: "dg-lsp: no hole filled: the model had no answer for any hole that keeps the function parsing",
}


def max_region_chars(ls: "DgLanguageServer") -> int:
    """The most characters a rewrite or fill works on (the canvas holds the whole region)."""
    return 8 * size_limit_tokens(ls.settings)


def window(text: str, start: int, end: int, chars: int) -> tuple[int, int]:
    """About ``chars`` characters of context on each side of [start, end), cut at line starts."""
    lo = max(0, start - chars)
    if lo > 0:
        nl = text.find("\n", lo, start)
        lo = nl + 1 if nl >= 0 else lo
    hi = min(len(text), end + chars)
    if hi < len(text):
        nl = text.rfind("\n", end, hi)
        hi = nl + 1 if nl >= 0 else hi
    return lo, hi


def _supports_resolve(ls: "DgLanguageServer") -> bool:
    cap = ls.client_capabilities.text_document
    ca = cap.code_action if cap else None
    props = ca.resolve_support.properties if ca and ca.resolve_support else []
    return "edit" in props


def _region_holes(snap: "Snapshot", start: int, end: int) -> tuple[tuple[int, int], list[tuple[int, int]]] | None:
    """The enclosing function of the range (or the whole range) and the holes in it."""
    scope = enclosing_scope(snap.syntax, start, "function")
    region = scope if scope is not None and scope[0] <= start and end <= scope[1] else None
    if region is None:
        region = (start, end) if end > start else None
    if region is None:
        return None
    holes = find_holes(snap.syntax, region[0], region[1])
    return (region, holes) if holes else None


def _workspace_edit(ls: "DgLanguageServer", snap: "Snapshot", edits: list[tuple[int, int, str]]) -> types.WorkspaceEdit:
    text_edits = [
        types.TextEdit(
            range=types.Range(start=ls.position_at(snap, a), end=ls.position_at(snap, b)),
            new_text=t,
        )
        for a, b, t in edits
    ]
    return types.WorkspaceEdit(
        document_changes=[
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(uri=snap.uri, version=snap.version),
                edits=text_edits,
            )
        ]
    )


async def _compute(ls: "DgLanguageServer", data: dict[str, Any]) -> types.WorkspaceEdit | str | None:
    """The edit of a code action; None when there is none to make (no model, superseded, no
    holes), ``NO_CHANGE`` for a rewrite that keeps the selection, ``NO_FILL`` for a fill that
    fills no hole."""
    uri = data.get("uri")
    if not isinstance(uri, str):
        raise JsonRpcInvalidParams("code action data has no uri")
    snap = ls.snapshot(uri)
    if snap is None:
        return None
    if data.get("version") != snap.version or data.get("rev") != snap.revision:
        raise ContentModified(f"{uri} changed since the code action was offered")
    try:
        start, end = int(data["start"]), int(data["end"])
    except (KeyError, TypeError, ValueError):
        raise JsonRpcInvalidParams("code action data has no valid start/end") from None
    if not (0 <= start <= end <= len(snap.text)):
        raise JsonRpcInvalidParams("code action range is outside the document")
    engine = await ls.get_engine()
    if engine is None:
        return None
    s = ls.settings
    ticket = ls.worker.ticket(f"{uri}#action", supersede=True)
    doc = ls.workspace.text_documents.get(uri)

    def outdated() -> bool:
        return ticket.cancelled or doc is None or doc.version != snap.version or ls.revision(uri) != snap.revision

    kind = data.get("kind")
    text = snap.text
    if end - start > max_region_chars(ls):
        raise RequestFailed(f"dg-lsp: the selection is too large ({end - start} characters, limit {max_region_chars(ls)})")
    lo, hi = window(text, start, end, 4 * prompt_budget(s, engine))
    if kind == "rewrite":

        def run() -> list[tuple[int, int, str]]:
            # only what the model doubts changes (``Engine.rewrite``: rewriteStrength and the
            # denoising settings are not used)
            memory = memory_for(ls, snap, start, engine, text=text[:start] + text[end:])  # all but the selection
            res = engine.rewrite(text[lo:start], text[start:end], text[end:hi], seed=s.seed,
                                 language=snap.spec.name, should_stop=outdated, memory=memory)
            return [(start, end, res.text)] if res.text != text[start:end] else []

    elif kind == "fill":
        found = _region_holes(snap, start, end)
        if found is None:
            return None
        (r0, r1), holes = found
        if r1 - r0 > max_region_chars(ls):
            raise RequestFailed(f"dg-lsp: the function is too large to fill ({r1 - r0} characters)")

        def run() -> list[tuple[int, int, str]]:
            if fill_method(engine) == "draft":  # each hole what a completion there shows, if it parses
                fills = fill_holes(engine, snap.spec, text, holes, s, region=(r0, r1), should_stop=outdated,
                                   memory_at=lambda t, o, cut: memory_for(ls, snap, o, engine, text=t, cut=cut))
                log.info("fill holes on %s: %d of %d filled; left: %s", uri, sum(bool(f.text) for f in fills),
                         len(fills), [f"{f.answer!r}: {f.reason}" for f in fills if not f.text])
                return [(a, b, f.text) for (a, b), f in zip(holes, fills) if f.text]
            # the canvas: the function's fixed pieces around the holes, in a window of context
            lo, hi = window(text, r0, r1, 4 * prompt_budget(s, engine))
            pieces = [text[r0 : holes[0][0]]]
            pieces += [text[holes[i][1] : holes[i + 1][0]] for i in range(len(holes) - 1)]
            pieces.append(text[holes[-1][1] : r1])
            filled = engine.fill_holes(
                text[lo:r0], pieces, text[r1:hi],
                hole_tokens=s.hole_tokens, steps=s.denoising_steps or None, seed=s.seed,
                language=snap.spec.name, should_stop=outdated, markers=[text[a:b] for a, b in holes],
            )
            return [(a, b, f) for (a, b), f in zip(holes, filled)]

    else:
        raise JsonRpcInvalidParams(f"unknown dg-lsp code action kind {kind!r}")
    try:
        edits = await ls.worker.run(ticket, run)
    except Cancelled as exc:
        log.info("code action on %s dropped: %s", uri, exc)
        return None
    except Exception as exc:  # logged with its traceback; the client gets a plain message
        log.exception("code action %s on %s failed", kind, uri)
        raise RequestFailed(f"dg-lsp: {kind} failed: {type(exc).__name__}") from None
    if outdated():
        raise ContentModified(f"{uri} changed while the edit was computed")
    if not edits:
        return NO_CHANGE if kind == "rewrite" else NO_FILL
    return _workspace_edit(ls, snap, edits)


def register(server: "DgLanguageServer") -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[REWRITE_KIND, FILL_KIND], resolve_provider=True),
    )
    async def code_action(ls: "DgLanguageServer", params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        snap = ls.snapshot(uri)
        if snap is None:
            return []
        start = ls.offset_of(snap, params.range.start)
        end = ls.offset_of(snap, params.range.end)
        if end < start:
            start, end = end, start
        only = params.context.only if params.context else None

        def wanted(kind: str) -> bool:
            return not only or any(kind == str(k) or kind.startswith(str(k) + ".") for k in only)

        offers: list[tuple[str, str, str, dict[str, Any]]] = []
        base = {"uri": uri, "version": snap.version, "rev": snap.revision}
        if end > start and end - start <= max_region_chars(ls) and wanted(REWRITE_KIND):
            offers.append((REWRITE_TITLE, "rewrite", REWRITE_KIND, {**base, "kind": "rewrite", "start": start, "end": end}))
        found = _region_holes(snap, start, end) if wanted(FILL_KIND) else None
        if found is not None and found[0][1] - found[0][0] <= max_region_chars(ls):
            _, holes = found
            title = f"{FILL_TITLE}: {len(holes)} hole{'s' if len(holes) != 1 else ''}"
            offers.append((title, "fill", FILL_KIND, {**base, "kind": "fill", "start": start, "end": end}))
        actions = []
        resolve = _supports_resolve(ls)
        for title, _, kind, data in offers:
            action = types.CodeAction(title=title, kind=kind, data=data)
            if not resolve:
                edit = await _compute(ls, data)
                if edit is None or edit in MESSAGES:
                    continue  # nothing to offer: no edit, a rewrite that changes nothing, no hole filled
                action.edit = edit
            actions.append(action)
        return actions

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def code_action_resolve(ls: "DgLanguageServer", action: types.CodeAction) -> types.CodeAction:
        if not isinstance(action.data, dict):
            raise JsonRpcInvalidParams("not a dg-lsp code action (no data)")
        edit = await _compute(ls, action.data)
        if edit is None:
            raise RequestFailed("dg-lsp: no edit (model unavailable, request superseded, or no holes)")
        if isinstance(edit, str):
            # the action resolves without an edit (nothing to apply) and the user is told why
            ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=MESSAGES[edit]))
            return action
        action.edit = edit
        return action
