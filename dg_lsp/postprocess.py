"""After decoding: where a completion stops, suffix overlap, and the syntax check.

Pure functions over (language, prefix, middle, suffix) so that golden tests can drive
them without a model. ``finish`` returns the text to insert and how many characters
after the cursor it replaces (closing characters the middle already contains).

Where a completion stops: a single-line completion at the end of its line; a multi-line one
at the end of the block being filled (the first line indented less than the block body,
:func:`stop_block`). A middle that adds syntax errors or unbalances brackets is cut to its
longest valid prefix (whole lines, then token / word boundaries of the last line) or dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dg_lsp.context import LanguageSpec, brackets_balanced, new_syntax_errors

_CLOSERS = set(")]}>\"'`;,:")
MAX_CANDIDATES = 48  # shorter middles tried (longest first) before giving up


@dataclass
class Finished:
    text: str
    replace: int = 0  # characters after the cursor that the text replaces
    truncated: bool = False
    reason: str = ""


def stop_single_line(middle: str) -> str:
    """Single-line completions end at the end of the line."""
    return middle.split("\n", 1)[0].rstrip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def stop_block(prefix: str, middle: str) -> str:
    """Multi-line: end the middle where the block being filled ends.

    The body's indentation is that of the middle's first non-blank line (with the text
    before the cursor on its line); the first later line indented less belongs to an
    enclosing block (``}``, ``end``, a dedented statement) and ends the middle.
    """
    lead = prefix.rsplit("\n", 1)[-1]
    lines = middle.split("\n")
    body: int | None = _indent(lead + lines[0]) if (lead + lines[0]).strip() else None
    for i in range(1, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        if body is None:
            body = _indent(line)
        elif _indent(line) < body:
            return "\n".join(lines[:i])
    return middle


def trim_multiline(middle: str) -> str:
    """Drop trailing blank lines and trailing spaces of a block."""
    lines = middle.rstrip().split("\n")
    return "\n".join(line.rstrip() for line in lines)


def trim_suffix_repeat(middle: str, suffix: str) -> str:
    """Drop the tail of ``middle`` that repeats the start of ``suffix``, and any lines
    from the first one that repeats the next non-blank line after the cursor."""
    for k in range(min(len(middle), len(suffix)), 0, -1):
        piece = suffix[:k]
        if piece.strip() and middle.endswith(piece):
            middle = middle[:-k]
            break
    next_line = next((ln.strip() for ln in suffix.split("\n")[1:] if ln.strip()), "")
    if len(next_line) >= 4:
        lines = middle.split("\n")
        for i, ln in enumerate(lines):
            if i > 0 and ln.strip() == next_line:
                middle = "\n".join(lines[:i])
                break
    return middle


def closers_after_cursor(suffix: str) -> str:
    """The rest of the cursor's line when it is only closing characters (else "")."""
    rest = suffix.split("\n", 1)[0]
    stripped = rest.rstrip()
    if stripped and all(c in _CLOSERS or c.isspace() for c in stripped):
        return stripped
    return ""


def replaced_closers(middle: str, suffix: str) -> int:
    """How many characters after the cursor ``middle`` retypes: when the rest of the line is only
    closing characters, the longest start of them that ``middle`` ends with (plus the spaces
    before them); 0 otherwise."""
    closers = closers_after_cursor(suffix)
    if not closers:
        return 0
    rest = suffix.split("\n", 1)[0]
    lead = len(rest) - len(rest.lstrip())
    body = middle.rstrip()
    for k in range(len(closers), 0, -1):
        if body.endswith(closers[:k]):
            return lead + k
    return 0


def is_valid(spec: LanguageSpec, prefix: str, middle: str, suffix: str) -> bool:
    """No new ERROR/MISSING nodes and the bracket balance of prefix + suffix is kept."""
    return new_syntax_errors(spec, prefix, middle, suffix) == 0 and brackets_balanced(spec, prefix, middle, suffix)


def _candidates(middle: str, boundaries: list[int] | None = None) -> list[str]:
    """Shorter versions of ``middle``, longest first: its prefixes at token ``boundaries``
    (offsets into ``middle``), at line ends and at word boundaries (spaces, ``,;([{``)."""
    ends = {m.start() for m in re.finditer(r"[\s,;(\[{]", middle)}
    ends |= {m.start() for m in re.finditer("\n", middle)}
    ends |= {b for b in boundaries or [] if 0 < b < len(middle)}
    out = [middle[:e].rstrip() for e in sorted(ends, reverse=True)]
    return [c for c in dict.fromkeys(out) if c.strip() and c != middle]


def shape(prefix: str, middle: str, suffix: str, mode: str) -> tuple[str, int]:
    """Where the middle stops and what it replaces, before any syntax check: (text, replace)."""
    text = stop_single_line(middle) if mode == "single" else trim_multiline(stop_block(prefix, middle))
    replace = replaced_closers(text, suffix) if mode == "single" else 0
    if replace:
        return text.rstrip(), replace
    text = trim_suffix_repeat(text, suffix)
    return (text.rstrip() if mode == "single" else trim_multiline(text)), 0


def finish(
    spec: LanguageSpec | None,
    prefix: str,
    middle: str,
    suffix: str,
    mode: str,
    boundaries: list[int] | None = None,
    partial: bool = False,
) -> Finished:
    """Turn a raw middle into what the editor inserts; ``boundaries``: token ends in ``middle``.

    ``partial``: the middle is a start (the model stopped where it was unsure, and the user types
    on), so it may leave a statement, a string or brackets open: it must only not close a bracket
    it has no opener for (a valid whole middle is kept as it is, like any other)."""
    if mode == "none":
        return Finished("", reason="no completion here")
    text, replace = shape(prefix, middle, suffix, mode)
    if not text.strip():
        return Finished("", reason="empty middle")
    if spec is None:
        return Finished(text, replace)
    keep = _valid_replace(spec, prefix, text, suffix, replace)
    if keep is not None:
        return Finished(text, keep)
    if partial and brackets_balanced(spec, prefix, text, suffix, open_ok=True):
        return Finished(text, 0, reason="a start: the model stopped where it was unsure")
    cands = _candidates(text, boundaries)[:MAX_CANDIDATES]

    def check(i: int) -> int | None:
        # a shorter middle no longer ends with the closers it replaced: keep them
        cand = cands[i]
        if partial and brackets_balanced(spec, prefix, cand, suffix, open_ok=True):
            return 0
        return _valid_replace(spec, prefix, cand, suffix, replaced_closers(cand, suffix) if mode == "single" else 0)

    found = longest_valid(len(cands), check)
    if found is not None:
        i, keep = found
        return Finished(cands[i], keep, truncated=True, reason="truncated to the longest valid prefix")
    return Finished("", reason="every prefix of the middle breaks the syntax")


# candidates checked one by one around the one a bisection finds (validity is not monotonic in
# the length of a prefix: an opener is invalid until its closer comes, so neighbours are checked)
SCAN = 4


def longest_valid(n: int, check) -> tuple[int, int] | None:
    """Index (into candidates sorted longest first) and result of a valid candidate, or None.

    Checking all ``n`` candidates costs a parse each (tens of milliseconds for a long junk
    middle). Instead: bisect as if validity were monotonic in length, then check the ``SCAN``
    longer candidates before the one found (the longest valid wins) and, when the bisection
    found none, the ``SCAN`` shortest. About 2 log2(n) + SCAN checks instead of n.
    """
    memo: dict[int, int | None] = {}

    def ok(i: int) -> int | None:
        if i not in memo:
            memo[i] = check(i)
        return memo[i]

    lo, hi, best = 0, n - 1, None  # search for the smallest index (longest) that is valid
    while lo <= hi:
        mid = (lo + hi) // 2
        if ok(mid) is not None:
            best, hi = mid, mid - 1
        else:
            lo = mid + 1
    if best is None:
        tail = range(n - 1, max(-1, n - 1 - SCAN), -1)  # the shortest ones, longest of them first
        best = next((i for i in reversed(list(tail)) if ok(i) is not None), None)
        if best is None:
            return None
    for i in range(max(0, best - SCAN), best):  # longer neighbours, longest first
        if ok(i) is not None:
            return i, memo[i]  # type: ignore[return-value]
    return best, memo[best]  # type: ignore[return-value]


def _valid_replace(spec: LanguageSpec, prefix: str, middle: str, suffix: str, replace: int) -> int | None:
    """``replace`` (or else 0) when ``middle`` is valid replacing that many characters; else None."""
    for n in dict.fromkeys((replace, 0)):
        if is_valid(spec, prefix, middle, suffix[n:]):
            return n
    return None
