"""Shared steps of the completion features: snapshot, offset, run on the worker."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from lsprotocol import types

from dg_lsp.engine import Cancelled
from dg_lsp.service import Proposal, prefetch, propose
from dg_lsp.settings import size_limit_tokens

if TYPE_CHECKING:
    from dg_lsp.server import DgLanguageServer, Snapshot

log = logging.getLogger(__name__)


async def proposal_at(
    ls: "DgLanguageServer", uri: str, position: types.Position, *, invoked: bool
) -> tuple["Snapshot", Proposal] | None:
    """A post-processed completion at ``position``, or None (empty result).

    Raises InvalidParams for unknown documents and positions outside them. A request
    superseded by a newer one for the same document, or outdated by an edit, gets None.
    """
    snap = ls.snapshot(uri)
    if snap is None:
        return None
    offset = ls.offset_of(snap, position)
    line_chars = line_length(snap.text, offset)
    if line_chars > max_line_chars(ls):
        log.info("no completion: the cursor line has %d characters (limit %d)", line_chars, max_line_chars(ls))
        return None
    hit = ls.completions.lookup(uri, snap.text, offset)
    if hit is not None:  # the user is typing a proposal we made: its rest, without the model
        ls.stats.cache_hits += 1
        return snap, Proposal(hit.text, offset, hit.replace, hit.mode, reason="completion cache")
    engine = await ls.get_engine()
    if engine is None:
        log.info("no model loaded (%s): empty result", ls.load_error)
        return None
    ticket = ls.worker.ticket(uri)
    settings = ls.settings
    doc = ls.workspace.text_documents.get(uri)

    def outdated() -> bool:
        return ticket.cancelled or doc is None or doc.version != snap.version or ls.revision(uri) != snap.revision

    place = (uri, position.line)
    k = settings.alternatives if invoked else settings.automatic_alternatives

    def run() -> Proposal:
        ticket.check()
        return propose(engine, snap.spec, snap.syntax, offset, settings, invoked=invoked, should_stop=outdated,
                       candidates=k, recent=ls.recent, place=place)

    try:
        prop = await ls.worker.run(ticket, run)
    except Cancelled as exc:
        ls.stats.dropped += 1
        log.info("completion for %s dropped: %s", uri, exc)
        return None
    except Exception:  # an engine failure is a log line and an empty result, never a dead request
        log.exception("completion for %s:%d:%d failed", uri, position.line, position.character)
        return None
    if outdated():
        ls.stats.dropped += 1
        log.info("completion for %s dropped: document changed while computing", uri)
        return None
    if prop.result is not None:
        r = prop.result
        ls.stats.record(prop.timings, r.steps, len(r.token_ids) + int(r.hit_eos), r.cached_tokens, r.prompt_tokens)
    if not prop.text:
        log.debug("no completion: %s", prop.reason)
        return None
    ls.recent.add(place, prop.text)  # what the model answered, shown or not
    if not invoked:
        if prop.confidence < settings.min_confidence:
            ls.stats.withheld += 1
            log.info("suggestion withheld: confidence %.3f < minConfidence %.3f%s", prop.confidence,
                     settings.min_confidence, f" ({prop.judged})" if prop.judged else "")
            return None
        prop.alternatives = [p for p in prop.alternatives if p.confidence >= settings.min_confidence]
    ls.completions.store(uri, snap.text, offset, prop.text, prop.replace, prop.mode)
    log.info("completion %s:%d:%d in %.0f ms (%s)", uri, position.line, position.character, prop.timings.get("total", 0), prop.mode)
    return snap, prop


_PREFETCHES: set[asyncio.Task] = set()  # running prefetch tasks (a reference keeps them alive)


def schedule_prefetch(ls: "DgLanguageServer", uri: str, changes: list) -> None:
    """After an edit, encode the context at the cursor while the worker is idle (``prefetch``
    setting). A request for the document supersedes it; what it encoded stays cached."""
    engine = ls.engine
    busy = ls.worker.inflight > len(_PREFETCHES)  # a request (not an older prefetch) is running
    if not ls.settings.prefetch or engine is None or busy or not changes:
        return
    last = changes[-1]
    if not isinstance(last, types.TextDocumentContentChangePartial):
        return  # a whole-document change says nothing of the cursor
    try:
        snap = ls.snapshot(uri)
        if snap is None:
            return
        offset = ls.offset_of(snap, last.range.start) + len(last.text)
    except Exception:  # a change the document cannot place: no prefetch, nothing else to do
        return
    if offset > len(snap.text) or line_length(snap.text, offset) > max_line_chars(ls):
        return
    ticket = ls.worker.ticket(uri)
    settings = ls.settings

    def run() -> int:
        return prefetch(engine, snap.syntax, offset, settings, should_stop=lambda: ticket.cancelled)

    async def go() -> None:
        try:
            n = await ls.worker.run(ticket, run)
            ls.stats.prefetches += 1
            ls.stats.prefetched_tokens += n
            log.debug("prefetched %d prompt tokens for %s", n, uri)
        except (Cancelled, asyncio.CancelledError):
            pass
        except Exception:  # never more than a log line: the request itself will encode
            log.exception("prefetch for %s failed", uri)

    task = asyncio.ensure_future(go())
    _PREFETCHES.add(task)
    task.add_done_callback(_PREFETCHES.discard)


def line_length(text: str, offset: int) -> int:
    start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    ends = [i for i in (text.find("\n", offset), text.find("\r", offset)) if i >= 0]
    return (min(ends) if ends else len(text)) - start


def max_line_chars(ls: "DgLanguageServer") -> int:
    """The cursor line always goes into the prompt whole: past this many characters (minified
    code, data on one line) it would not fit the prompt budget, so there is no completion."""
    return max(4096, 8 * size_limit_tokens(ls.settings))


def edit_range(ls: "DgLanguageServer", snap: "Snapshot", prop: Proposal) -> types.Range:
    start = ls.position_at(snap, prop.offset)
    end = ls.position_at(snap, prop.offset + prop.replace) if prop.replace else start
    return types.Range(start=start, end=end)
