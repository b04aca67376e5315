"""Reuse a completion while the user types it, or comes back to where it was made.

llama.vim's idea: a completion computed at one cursor stays valid while the user types the
characters it proposes (the rest of it is still the proposal) and when the user deletes
back to the place it was made. Each open document keeps its last few proposals with the
text around the cursor when they were made; a lookup checks that text is unchanged and
that what was typed since is the start of the proposal, in microseconds on the event loop,
so these keystrokes never reach the model.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

CONTEXT_CHARS = 256  # text compared on each side of the cursor
KEEP = 16  # proposals remembered per document


@dataclass(frozen=True)
class Entry:
    anchor: int  # cursor offset (code points) when the proposal was made
    before: str  # up to CONTEXT_CHARS of text before the cursor then
    after: str  # up to CONTEXT_CHARS of text after the cursor then
    text: str  # the proposal (post-processed)
    replace: int  # code points after the cursor the proposal replaces
    mode: str


@dataclass(frozen=True)
class Hit:
    text: str  # what is left of the proposal to insert at the cursor
    replace: int
    mode: str
    typed: int  # characters of the proposal the user has typed since it was made


class CompletionCache:
    def __init__(self) -> None:
        self.docs: dict[str, deque[Entry]] = {}

    def store(self, uri: str, doc: str, offset: int, text: str, replace: int, mode: str) -> None:
        if not text:
            return
        entry = Entry(
            anchor=offset,
            before=doc[max(0, offset - CONTEXT_CHARS) : offset],
            after=doc[offset : offset + CONTEXT_CHARS],
            text=text,
            replace=replace,
            mode=mode,
        )
        self.docs.setdefault(uri, deque(maxlen=KEEP)).append(entry)

    def lookup(self, uri: str, doc: str, offset: int) -> Hit | None:
        """The rest of a remembered proposal that still applies at ``offset`` in ``doc``."""
        for e in reversed(self.docs.get(uri, ())):
            typed = offset - e.anchor
            if not 0 <= typed < len(e.text):
                continue
            if doc[e.anchor : offset] != e.text[:typed]:
                continue
            if typed and e.mode == "single" and "\n" in e.text[:typed]:
                continue
            if doc[max(0, e.anchor - len(e.before)) : e.anchor] != e.before:
                continue
            if doc[offset : offset + len(e.after)] != e.after:
                continue
            return Hit(e.text[typed:], e.replace, e.mode, typed)
        return None

    def forget(self, uri: str) -> None:
        self.docs.pop(uri, None)
