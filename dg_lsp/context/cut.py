"""What to complete at the cursor (mode) and which text around it to show the model (cut)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from .checks import bracket_delta, brackets_balanced, new_syntax_errors
from .document import SyntaxDocument
from .syntax import (
    captures,
    container_ids,
    ends_statement,
    enclosing_scope,
    find_holes,
    inside_token,
    iter_captures,
    literal_at,
    starts_statement,
)

__all__ = [
    "Mode",
    "Cut",
    "completion_mode",
    "cut_context",
    "enclosing_scope",
    "find_holes",
    "new_syntax_errors",
    "bracket_delta",
    "brackets_balanced",
]

Mode = Literal["none", "single", "multi"]

# A blank line after a line ending in one of these opens a block: complete several lines.
_OPENER_CHARS = frozenset(":{([")
_OPENER_WORDS = ("then", "do", "else", "repeat")
# Nodes spanning more lines than this are never treated as an empty, just-opened body.
_MAX_EMPTY_BODY_LINES = 64
# How many blank lines to look back over for the line that opened the block.
_MAX_BLANK_LOOKBACK = 32
# Snapping to a syntax boundary may always drop this many lines (more in big windows).
_SNAP_MIN_DROP = 16


@dataclass
class Cut:
    """The text shown to the model: ``prefix = text[prefix_start:offset]``, ``suffix = text[offset:suffix_end]``."""

    prefix: str
    suffix: str
    mode: Mode
    prefix_start: int
    suffix_end: int


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def completion_mode(doc: SyntaxDocument, offset: int, invoked: bool = False) -> Mode:
    """``none``, ``single`` or ``multi``: how much to complete at ``offset``.

    * inside a string or comment: ``none`` (``single`` when invoked);
    * on an otherwise empty line that opens a block (after a line ending with ``:``
      / ``{`` / ``then`` ..., or inside a body that is still empty): ``multi``;
    * in the middle of an identifier: ``none`` (``single`` when invoked);
    * otherwise ``single``.
    """
    text = doc.text
    offset = max(0, min(offset, len(text)))
    if literal_at(doc, offset) is not None:
        return "single" if invoked else "none"
    if _opens_block(doc, offset):
        return "multi"
    if (
        not invoked
        and 0 < offset < len(text)
        and _is_word(text[offset - 1])
        and _is_word(text[offset])
    ):
        return "none"
    return "single"


def _opens_block(doc: SyntaxDocument, offset: int) -> bool:
    """Whether ``offset`` sits on a blank line at the start of a new or empty block."""
    line = doc.line_of(offset)
    if doc.line_text(line).strip():
        return False
    # (a) the previous non-blank line ends with a block opener.
    prev = line - 1
    while prev >= 0 and line - prev <= _MAX_BLANK_LOOKBACK and not doc.line_text(prev).strip():
        prev -= 1
    if prev >= 0 and doc.line_text(prev).strip():
        prev_text = doc.line_text(prev).rstrip()
        last_pos = doc.line_start(prev) + len(prev_text) - 1
        opener = prev_text[-1] in _OPENER_CHARS
        if not opener:
            words = prev_text.split()
            last_word = words[-1] if words else ""
            opener = last_word in _OPENER_WORDS or (
                prev_text.endswith(")") and words[0] in ("function", "local") and "function" in prev_text
            )
        if opener and literal_at(doc, last_pos) is None:
            return True
    # (b) the innermost node around this line has an empty interior.
    return _in_empty_body(doc, offset, line)


def _in_empty_body(doc: SyntaxDocument, offset: int, line: int) -> bool:
    """Whether the innermost multi-line node around ``line`` holds nothing but it.

    The node must start above and end below the cursor line, its other interior
    lines must be blank or hole markers / comments, and its last line must be just
    its closing token (``}``, ``end``, ``fi``...) or a hole marker (``pass``).
    """
    b = doc.byte_of(offset)
    root = doc.tree.root_node
    node = root.descendant_for_byte_range(b, b)
    while node is not None:
        if node.start_point.row < line < node.end_point.row:
            break
        node = node.parent
    if node is None or node.parent is None or node.is_error:
        return False
    first, last = node.start_point.row, node.end_point.row
    if last - first > _MAX_EMPTY_BODY_LINES:
        return False
    covered = _covering_ranges(doc, node.start_byte, node.end_byte)
    for row in range(first + 1, last):
        if row != line and not _line_is_filler(doc, row, covered):
            return False
    # The last line: only the node's closing token, or a hole marker.
    closing = node.child(node.child_count - 1) if node.child_count else None
    last_text = doc.line_text(last)
    indent = len(last_text) - len(last_text.lstrip())
    line_b = doc.byte_of(doc.line_start(last) + indent)
    if closing is not None and not closing.is_named and closing.start_byte == line_b:
        return True
    return _line_is_filler(doc, last, covered, upto=node.end_byte)


def _covering_ranges(doc: SyntaxDocument, start_byte: int, end_byte: int) -> list[tuple[int, int]]:
    """Byte ranges of hole markers and comments within a node."""
    root = doc.tree.root_node
    ranges = [(n.start_byte, n.end_byte) for _, n in iter_captures(captures(doc.spec.query("holes"), root, start_byte, end_byte), "hole")]
    lits = captures(doc.spec.query("literals"), root, start_byte, end_byte)
    ranges += [(n.start_byte, n.end_byte) for _, n in iter_captures(lits, "comment")]
    return ranges


def _line_is_filler(doc: SyntaxDocument, row: int, covered: list[tuple[int, int]], upto: int | None = None) -> bool:
    """A blank line, or one whose content lies inside a hole marker or comment."""
    text = doc.line_text(row)
    stripped = text.strip()
    if not stripped:
        return True
    start = doc.line_start(row) + len(text) - len(text.lstrip())
    s, e = doc.byte_of(start), doc.byte_of(start + len(stripped))
    if upto is not None:
        e = min(e, upto)
    return any(cs <= s and e <= ce for cs, ce in covered)


def cut_context(
    doc: SyntaxDocument,
    offset: int,
    count_tokens: Callable[[str], int],
    budget: int,
    invoked: bool = False,
) -> Cut:
    """Cut the prefix/suffix around ``offset`` to fit ``budget`` tokens, at syntax boundaries.

    Whole lines are added going up (prefix) and down (suffix) in turn, the prefix
    getting about 3/4 of the budget (and whatever the suffix leaves unused), until
    the next line would not fit. The text of the cursor line is always included.
    Then the prefix start moves forward to the nearest line that starts a statement
    and the suffix end back to the nearest line that ends one (or to the cursor
    line). Snapping drops at most max(16 lines, 3/4 of a side); past that, the ends
    only move off multi-line tokens (strings, block comments).
    """
    text = doc.text
    offset = max(0, min(offset, len(text)))
    mode = completion_mode(doc, offset, invoked)
    line = doc.line_of(offset)
    n_lines = doc.line_count

    def span(i: int) -> tuple[int, int]:
        """A line with its newline."""
        start = doc.line_start(i)
        end = doc.line_start(i + 1) if i + 1 < n_lines else len(text)
        return start, end

    cur_start, cur_end = span(line)
    before, after = text[cur_start:offset], text[offset:cur_end]
    pre_used = count_tokens(before) if before else 0
    suf_used = count_tokens(after) if after else 0
    pre_cap = (budget * 3) // 4
    suf_cap = budget - pre_cap
    top, bottom = line, line
    pre_cost: int | None = None
    suf_cost: int | None = None

    def cost_above() -> int:
        s, e = span(top - 1)
        return count_tokens(text[s:e])

    def cost_below() -> int:
        s, e = span(bottom + 1)
        return count_tokens(text[s:e])

    # Phase 1: alternate within each side's share.
    pre_open, suf_open = top > 0, bottom < n_lines - 1
    while pre_open or suf_open:
        take_pre = pre_open and (not suf_open or pre_used * max(suf_cap, 1) <= suf_used * max(pre_cap, 1))
        if take_pre:
            pre_cost = cost_above() if pre_cost is None else pre_cost
            if pre_used + pre_cost > pre_cap or pre_used + suf_used + pre_cost > budget:
                pre_open = False
                continue
            pre_used += pre_cost
            top, pre_cost = top - 1, None
            pre_open = top > 0
        else:
            suf_cost = cost_below() if suf_cost is None else suf_cost
            if suf_used + suf_cost > suf_cap or pre_used + suf_used + suf_cost > budget:
                suf_open = False
                continue
            suf_used += suf_cost
            bottom, suf_cost = bottom + 1, None
            suf_open = bottom < n_lines - 1
    # Phase 2: one side left room; the other may use it.
    while top > 0:
        pre_cost = cost_above() if pre_cost is None else pre_cost
        if pre_used + suf_used + pre_cost > budget:
            break
        pre_used += pre_cost
        top, pre_cost = top - 1, None
    while bottom < n_lines - 1:
        suf_cost = cost_below() if suf_cost is None else suf_cost
        if pre_used + suf_used + suf_cost > budget:
            break
        suf_used += suf_cost
        bottom, suf_cost = bottom + 1, None

    top, bottom = _snap(doc, line, top, bottom, n_lines)
    prefix_start = doc.line_start(top)
    suffix_end = span(bottom)[1]
    return Cut(
        prefix=text[prefix_start:offset],
        suffix=text[offset:suffix_end],
        mode=mode,
        prefix_start=prefix_start,
        suffix_end=suffix_end,
    )


def _snap(doc: SyntaxDocument, line: int, top: int, bottom: int, n_lines: int) -> tuple[int, int]:
    """Move ``top`` down / ``bottom`` up to lines that start / end a statement."""
    if top == line and bottom == line:
        return top, bottom
    containers = container_ids(doc, doc.byte_of(doc.line_start(top)), doc.byte_of(doc.line_end(bottom)))
    if top > 0:
        top = _snap_top(doc, line, top, containers)
    if bottom < n_lines - 1:
        bottom = _snap_bottom(doc, line, bottom, containers)
    return top, bottom


def _max_drop(window: int) -> int:
    """How many lines snapping may drop from a side of ``window`` lines."""
    return max(_SNAP_MIN_DROP, (window * 3) // 4)


def _snap_top(doc: SyntaxDocument, line: int, top: int, containers: set[int]) -> int:
    """The first line at or after ``top`` that starts a statement (else: not mid-token)."""
    limit = min(line, top + _max_drop(line - top))
    for i in range(top, limit + 1):
        if starts_statement(doc, i, containers):
            return i
    for i in range(top, line + 1):
        if not inside_token(doc, doc.line_start(i)):
            return i
    return top


def _snap_bottom(doc: SyntaxDocument, line: int, bottom: int, containers: set[int]) -> int:
    """The last line at or before ``bottom`` that ends a statement (else: the cursor line)."""
    limit = max(line, bottom - _max_drop(bottom - line))
    last = doc.line_count - 1
    for j in range(bottom, limit - 1, -1):
        if j == line:
            return j  # only the rest of the cursor line
        if ends_statement(doc, j, containers):
            return j
        if j < last and not doc.line_text(j).strip() and starts_statement(doc, j + 1, containers):
            return j  # a blank line between statements
    for j in range(bottom, line - 1, -1):
        if not inside_token(doc, doc.line_start(j + 1)):
            return j
    return bottom
