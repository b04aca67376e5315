"""Shared steps of the completion features: snapshot, offset, run on the worker."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
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
        from dg_lsp.features.memory import memory_for, record

        ticket.check()
        ctx, _ = cross_file_for(ls, snap, offset, engine)
        memory = memory_for(ls, snap, offset, engine)
        prop = propose(engine, snap.spec, snap.syntax, offset, settings, invoked=invoked, should_stop=outdated,
                       candidates=k, recent=ls.recent, place=place, cross_file=ctx, memory=memory)
        record(ls, memory, prop.result)
        return prop

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
        ctx, _ = cross_file_for(ls, snap, offset, engine)
        return prefetch(engine, snap.syntax, offset, settings, should_stop=lambda: ticket.cancelled, cross_file=ctx)

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


# ---------------------------------------------------------------- cross-file context
NEIGHBOURS = 24  # files of the cursor's folder looked at
NEIGHBOUR_MAX_BYTES = 256_000  # bigger files (data, bundles) are skipped
MINIFIED_LINE = 1000  # a file with a line this long is skipped (minified, generated)
LINE_BUCKET = 8  # the snippets are kept while the cursor stays within this many lines


def _neighbours(ls: "DgLanguageServer", path: Path, extensions: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, text) of files of the same language next to ``path`` (same folder), read once per mtime."""
    cache: dict = ls.__dict__.setdefault("_neighbour_files", {})
    out = []
    try:
        entries = sorted(p for p in path.parent.iterdir() if p.suffix.lower() in extensions and p != path)[:NEIGHBOURS]
    except OSError:
        return out
    for p in entries:
        try:
            st = p.stat()
            if not p.is_file() or st.st_size > NEIGHBOUR_MAX_BYTES:
                continue
            key = (str(p), st.st_mtime_ns)
            text = cache.get(key)
            if text is None:
                data = p.read_bytes()
                if b"\0" in data[:4096]:
                    continue  # binary
                text = data.decode("utf-8", "replace")
                if any(len(line) > MINIFIED_LINE for line in text.split("\n", 200)[:200]):
                    continue
                if len(cache) > 4 * NEIGHBOURS:
                    cache.clear()
                cache[key] = text
            out.append((p.name, text))
        except OSError:
            continue
    return out


def cross_file_sources(ls: "DgLanguageServer", snap: "Snapshot") -> list[tuple[str, str]]:
    """Other open documents of the same language, then files next to this one not open."""
    from urllib.parse import unquote, urlparse

    out, seen = [], set()
    for uri, doc in list(ls.workspace.text_documents.items()):
        if uri == snap.uri or doc.language_id not in snap.spec.language_ids:
            continue
        name = uri.rsplit("/", 1)[-1]
        out.append((name, doc.source))
        seen.add(name)
    parsed = urlparse(snap.uri)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        out += [(n, t) for n, t in _neighbours(ls, path, snap.spec.extensions) if n not in seen]
    return out


def cross_file_for(ls: "DgLanguageServer", snap: "Snapshot", offset: int, engine) -> tuple[str, list]:
    """Cross-file snippets for a request at ``offset`` (``crossFile`` setting): recomputed when
    the cursor leaves its ``LINE_BUCKET`` lines or another document changes, so that typing
    keeps the head of the prompt, and the prompt cache, as it was."""
    from dg_lsp.service import cross_file_budget, cross_file_context

    budget = cross_file_budget(ls.settings, engine)
    if budget <= 0:
        return "", []
    others = tuple(sorted((u, d.version) for u, d in list(ls.workspace.text_documents.items()) if u != snap.uri))
    key = (snap.syntax.line_of(offset) // LINE_BUCKET, budget, others)
    cache: dict = ls.__dict__.setdefault("_cross_file", {})
    hit = cache.get(snap.uri)
    if hit is not None and hit[0] == key:
        return hit[1], hit[2]
    text, snippets = cross_file_context(snap.syntax, offset, cross_file_sources(ls, snap), engine, budget, ls.settings)
    cache[snap.uri] = (key, text, snippets)
    return text, snippets
