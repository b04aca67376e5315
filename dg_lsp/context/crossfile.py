"""Cross-file context: snippets of the project's other files that look like the code at the cursor.

Shared by the server (other open documents and files next to the cursor's file) and training
(other files of the same package, ``dg_lsp/training/examples.py``), so the model sees at serving time the
layout it was trained on. As in RepoCoder and llama.vim: every source is cut into overlapping
windows of ``CHUNK_LINES`` lines, each scored by the Jaccard similarity of its identifiers to
those of the lines around the cursor (``query``), and the best non-overlapping ones that fit
the token budget are rendered, best last (nearest the code), each under a header line naming
its file::

    <|file|> pkg/util.py
    def parse_size(text):
        ...

``render``'s text goes before everything else in the prompt (``build_prompt(context=...)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
CHUNK_LINES, CHUNK_STRIDE = 12, 6
QUERY_LINES_BEFORE, QUERY_LINES_AFTER = 10, 2
MIN_SCORE = 0.05  # below this a window shares too few names to say anything about the cursor
HEADER = "<|file|> "
MAX_SOURCE_CHARS = 200_000  # a source is read up to this many characters
# identifiers that say nothing about what a window is about
STOP = frozenset("""
self this def return if else elif for while in is not and or import from as class function const let
var new true false True False None null undefined try except catch finally with pass break continue
async await yield lambda public private static void int str float bool string number
""".split())


@dataclass(frozen=True)
class Snippet:
    path: str
    line: int  # 0-based first line of the window in its source
    text: str
    score: float


def identifiers(text: str) -> frozenset[str]:
    return frozenset(w for w in IDENT.findall(text) if w not in STOP and len(w) > 1)


def query(prefix: str, suffix: str) -> frozenset[str]:
    """The identifiers of the lines around the cursor: the last lines of the prefix, the first of the suffix."""
    before = "\n".join(prefix.split("\n")[-QUERY_LINES_BEFORE:])
    after = "\n".join(suffix.split("\n")[:QUERY_LINES_AFTER])
    return identifiers(before + "\n" + after)


def windows(text: str) -> list[tuple[int, str]]:
    """(first line, text) of overlapping windows of ``CHUNK_LINES`` lines."""
    lines = text[:MAX_SOURCE_CHARS].split("\n")
    out = []
    for start in range(0, max(1, len(lines) - CHUNK_STRIDE), CHUNK_STRIDE):
        chunk = "\n".join(lines[start : start + CHUNK_LINES]).strip("\n")
        if chunk.strip():
            out.append((start, chunk))
    return out


def rank(q: frozenset[str], sources: Iterable[tuple[str, str]], limit: int = 16) -> list[Snippet]:
    """The ``limit`` best windows of ``sources`` ((path, text) pairs) for query ``q``, best
    first; windows of the same source that overlap a better one are skipped."""
    if not q:
        return []
    scored: list[Snippet] = []
    for path, text in sources:
        for line, chunk in windows(text):
            ids = identifiers(chunk)
            if not ids:
                continue
            score = len(q & ids) / len(q | ids)
            if score >= MIN_SCORE:
                scored.append(Snippet(path, line, chunk, score))
    scored.sort(key=lambda s: (-s.score, s.path, s.line))
    out: list[Snippet] = []
    for s in scored:
        if any(o.path == s.path and abs(o.line - s.line) < CHUNK_LINES for o in out):
            continue
        out.append(s)
        if len(out) >= limit:
            break
    return out


MIN_LINES = 3  # a snippet cut to fit keeps at least this many lines


def fit(snippets: Sequence[Snippet], count_tokens: Callable[[str], int], budget: int) -> list[Snippet]:
    """The best snippets that fit ``budget`` tokens: whole while they fit, then one cut to its
    first lines (at least ``MIN_LINES``) if that fits."""
    out: list[Snippet] = []
    used = 0
    for s in snippets:
        cost = count_tokens(_one(s))
        if used + cost <= budget:
            out.append(s)
            used += cost
            continue
        lines = s.text.split("\n")
        while len(lines) > MIN_LINES:
            lines.pop()
            cut = Snippet(s.path, s.line, "\n".join(lines), s.score)
            cost = count_tokens(_one(cut))
            if used + cost <= budget:
                out.append(cut)
                used += cost
                break
        if used >= budget - MIN_LINES * 4:
            break
    return out


def _one(s: Snippet) -> str:
    return f"{HEADER}{s.path}\n{s.text}\n"


def render(snippets: Sequence[Snippet]) -> str:
    """The prompt text of ``snippets`` (given best first): best last, nearest the code."""
    return "".join(_one(s) for s in reversed(snippets))


def context_for(prefix: str, suffix: str, sources: Iterable[tuple[str, str]],
                count_tokens: Callable[[str], int], budget: int) -> tuple[str, list[Snippet]]:
    """(prompt text, snippets used) for a cursor between ``prefix`` and ``suffix``."""
    if budget <= 0:
        return "", []
    chosen = fit(rank(query(prefix, suffix), sources), count_tokens, budget)
    return render(chosen), chosen


# ----------------------------------------------------------------------------- retrieved starts
MIN_PARTIAL = 3  # characters of the cursor's line (after its indentation) that a match must share
MIN_ANCHOR = 8  # characters of the previous line that anchor a whole-line match


def retrieved_line(prefix: str, suffix: str, sources: Iterable[tuple[str, str]]) -> str | None:
    """Text a canvas can start from (``Engine.rewrite``'s start, partly re-noised), or None:
    where the cursor's line so far (after its indentation, at least ``MIN_PARTIAL`` characters)
    starts a longer line elsewhere, the rest of that line; where the cursor is at the start of a
    line, the line that follows a line equal to the previous one (at least ``MIN_ANCHOR``
    characters). ``suffix``'s own text and then each source in order are searched; the most
    frequent candidate wins, ties going to the first found."""
    head = prefix[prefix.rfind("\n") + 1:]
    partial = head.lstrip()
    rest_of_line = suffix.split("\n", 1)[0].strip()
    counts: dict[str, int] = {}
    texts = [prefix, suffix] + [t[:MAX_SOURCE_CHARS] for _, t in sources]
    if len(partial) >= MIN_PARTIAL:
        for text in texts:
            for line in text.split("\n"):
                s = line.strip()
                if len(s) > len(partial) and s.startswith(partial) and s != partial + rest_of_line:
                    tail = s[len(partial):]
                    counts[tail] = counts.get(tail, 0) + 1
    elif not partial:
        before = prefix[: len(prefix) - len(head)].rstrip("\n").split("\n")
        anchor = next((ln.strip() for ln in reversed(before) if ln.strip()), "")
        if len(anchor) < MIN_ANCHOR:
            return None
        for text in texts:
            # in the prefix, the cursor's own anchor is followed only by the blank cursor line: no evidence
            lines = text.split("\n")
            for i in range(len(lines) - 1):
                if lines[i].strip() == anchor:
                    nxt = next((ln.strip() for ln in lines[i + 1:i + 3] if ln.strip()), "")
                    if nxt:
                        counts[nxt] = counts.get(nxt, 0) + 1
    if not counts:
        return None
    return max(counts, key=counts.get)  # dicts keep insertion order: ties go to the first found
