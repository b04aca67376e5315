"""After decoding: where a completion stops, suffix overlap, and the syntax check.

Pure functions over (language, prefix, middle, suffix) so that golden tests can drive
them without a model. ``finish`` returns the text to insert and how many characters
after the cursor it replaces (closing characters the middle already contains).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dg_lsp.context import LanguageSpec, brackets_balanced, new_syntax_errors

_CLOSERS = set(")]}>\"'`;,:")


@dataclass
class Finished:
    text: str
    replace: int = 0  # characters after the cursor that the text replaces
    truncated: bool = False
    reason: str = ""


def stop_single_line(middle: str) -> str:
    """Single-line completions end at the end of the line."""
    return middle.split("\n", 1)[0].rstrip()


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


def is_valid(spec: LanguageSpec, prefix: str, middle: str, suffix: str) -> bool:
    """No new ERROR/MISSING nodes and the bracket balance of prefix + suffix is kept."""
    return new_syntax_errors(spec, prefix, middle, suffix) == 0 and brackets_balanced(spec, prefix, middle, suffix)


def _candidates(middle: str) -> list[str]:
    """Shorter versions of ``middle``: whole lines first, then word boundaries of the last line."""
    out: list[str] = []
    lines = middle.split("\n")
    for n in range(len(lines) - 1, 0, -1):
        out.append("\n".join(lines[:n]).rstrip())
    first = lines[0]
    for m in reversed(list(re.finditer(r"[\s,;(\[{]", first))):
        out.append(first[: m.start()].rstrip())
    return [c for c in dict.fromkeys(out) if c.strip()]


def finish(spec: LanguageSpec | None, prefix: str, middle: str, suffix: str, mode: str) -> Finished:
    """Turn a raw middle into what the editor inserts."""
    if mode == "none":
        return Finished("", reason="no completion here")
    text = stop_single_line(middle) if mode == "single" else trim_multiline(middle)
    replace = 0
    closers = closers_after_cursor(suffix)
    if closers and mode == "single" and text.rstrip().endswith(closers):
        replace = len(suffix.split("\n", 1)[0].rstrip())
        text = text.rstrip()
    else:
        text = trim_suffix_repeat(text, suffix)
        text = text.rstrip() if mode == "single" else trim_multiline(text)
    if not text.strip():
        return Finished("", reason="empty middle")
    if spec is None:
        return Finished(text, replace)
    if is_valid(spec, prefix, text, suffix[replace:]):
        return Finished(text, replace)
    for cand in _candidates(text):
        # a shorter middle no longer ends with the closers it replaced: keep them
        keep = replace if closers and cand.endswith(closers) else 0
        if is_valid(spec, prefix, cand, suffix[keep:]):
            return Finished(cand, keep, truncated=True, reason="truncated to the longest valid prefix")
    return Finished("", reason="every prefix of the middle breaks the syntax")
