"""A parsed document that re-parses incrementally.

Offsets in this API are Python ``str`` indices (code points); tree-sitter works in
UTF-8 bytes, so the document keeps line tables in both units and converts between
them one line at a time.
"""

from __future__ import annotations

import re
from bisect import bisect_right

import tree_sitter

from .languages import LanguageSpec

_NEWLINE = re.compile("\n")
_NEWLINE_B = re.compile(b"\n")


def common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix of ``a`` and ``b``.

    Binary search comparing slices (C speed); each step compares only the part not
    yet known to match, so the total work is linear.
    """
    lo, hi = 0, min(len(a), len(b))  # a[:lo] == b[:lo]; no match is longer than hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def common_suffix_length(a: str, b: str, limit: int) -> int:
    """Length of the longest common suffix of ``a`` and ``b``, at most ``limit``."""
    la, lb = len(a), len(b)
    lo, hi = 0, max(0, min(limit, la, lb))  # the last lo chars match
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[la - mid : la - lo] == b[lb - mid : lb - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _splice(table: list[int], start: int, old_end: int, new_end: int, inserted: list[int]) -> list[int]:
    """Line-start table after replacing ``[start, old_end)`` by text ending at ``new_end``.

    Line starts up to ``start`` stay, those whose newline was replaced go, ``inserted``
    (line starts inside the new text) come in, and the rest shift.
    """
    keep = bisect_right(table, start)
    rest = bisect_right(table, old_end, lo=keep)
    delta = new_end - old_end
    tail = table[rest:]
    if delta:
        tail = [x + delta for x in tail]
    return table[:keep] + inserted + tail


class _Lines:
    """Line start tables of one text, in code points and in UTF-8 bytes."""

    __slots__ = ("text", "data", "ascii", "_starts", "_byte_starts")

    def __init__(self, text: str, data: bytes):
        self.text = text
        self.data = data
        self.ascii = len(text) == len(data)
        self._starts: list[int] | None = None
        self._byte_starts: list[int] | None = None

    def spliced(self, text: str, data: bytes, start: int, old_end: int, new_end: int,
                start_b: int, old_end_b: int, new_end_b: int) -> "_Lines":
        """Tables for the edited text, derived from these ones where they were built."""
        new = _Lines(text, data)
        if self._starts is not None:
            inserted = [m.end() for m in _NEWLINE.finditer(text, start, new_end)]
            new._starts = _splice(self._starts, start, old_end, new_end, inserted)
            if not new.ascii:
                old_bytes = self.byte_starts
                inserted_b = [m.end() for m in _NEWLINE_B.finditer(data, start_b, new_end_b)]
                new._byte_starts = _splice(old_bytes, start_b, old_end_b, new_end_b, inserted_b)
        return new

    @property
    def starts(self) -> list[int]:
        """Code point offset of the start of each line."""
        if self._starts is None:
            self._starts = [0] + [m.end() for m in _NEWLINE.finditer(self.text)]
        return self._starts

    @property
    def byte_starts(self) -> list[int]:
        """Byte offset of the start of each line (``\\n`` is one byte in UTF-8)."""
        if self.ascii:
            return self.starts
        if self._byte_starts is None:
            self._byte_starts = [0] + [m.end() for m in _NEWLINE_B.finditer(self.data)]
        return self._byte_starts

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset) - 1

    def byte_of(self, offset: int) -> int:
        offset = max(0, min(offset, len(self.text)))
        if self.ascii:
            return offset
        line = self.line_of(offset)
        start = self.starts[line]
        return self.byte_starts[line] + len(self.text[start:offset].encode("utf-8"))

    def offset_of(self, byte: int) -> int:
        byte = max(0, min(byte, len(self.data)))
        if self.ascii:
            return byte
        line = bisect_right(self.byte_starts, byte) - 1
        bstart = self.byte_starts[line]
        return self.starts[line] + len(self.data[bstart:byte].decode("utf-8", errors="ignore"))

    def point_of(self, offset: int) -> tuple[int, int]:
        """tree-sitter point (row, byte column) of a code point offset."""
        offset = max(0, min(offset, len(self.text)))
        line = self.line_of(offset)
        return line, self.byte_of(offset) - self.byte_starts[line]


class SyntaxDocument:
    """A parsed document that re-parses incrementally."""

    def __init__(self, spec: LanguageSpec, text: str):
        self.spec = spec
        self._parser = spec.parser()
        self.last_cut: object | None = None  # the previous request's context window (context.sticky)
        self._set_text(text)
        self.tree: tree_sitter.Tree = self._parser.parse(self._lines.data)
        # the text and its tree, replaced together (one assignment) and never edited in place:
        # another thread may read a consistent pair while an edit is being applied
        self.parsed: tuple[str, tree_sitter.Tree] = (self.text, self.tree)

    def _set_text(self, text: str) -> None:
        self.text = text
        self._lines = _Lines(text, text.encode("utf-8"))

    @property
    def data(self) -> bytes:
        """The document as UTF-8 bytes (what tree-sitter parsed)."""
        return self._lines.data

    def update(self, new_text: str) -> None:
        """Replace the text, telling tree-sitter what changed so the parse is incremental."""
        old = self.text
        if new_text == old:
            return
        start = common_prefix_length(old, new_text)
        tail = common_suffix_length(old, new_text, min(len(old), len(new_text)) - start)
        old_end, new_end = len(old) - tail, len(new_text) - tail
        old_lines = self._lines
        start_byte, start_point = old_lines.byte_of(start), old_lines.point_of(start)
        old_end_byte, old_end_point = old_lines.byte_of(old_end), old_lines.point_of(old_end)
        data = new_text.encode("utf-8")
        new_end_byte = start_byte + len(new_text[start:new_end].encode("utf-8"))
        self.text = new_text
        self._lines = old_lines.spliced(
            new_text, data, start, old_end, new_end, start_byte, old_end_byte, new_end_byte
        )
        new_end_point = self._lines.point_of(new_end)
        old_tree = self.tree.copy()  # the published tree stays as it was (see ``parsed``)
        old_tree.edit(
            start_byte=start_byte,
            old_end_byte=old_end_byte,
            new_end_byte=new_end_byte,
            start_point=start_point,
            old_end_point=old_end_point,
            new_end_point=new_end_point,
        )
        self.tree = self._parser.parse(self._lines.data, old_tree)
        self.parsed = (new_text, self.tree)

    # -- positions -------------------------------------------------------------------

    def byte_of(self, offset: int) -> int:
        """UTF-8 byte offset of code point ``offset``."""
        return self._lines.byte_of(offset)

    def offset_of(self, byte: int) -> int:
        """Code point offset of UTF-8 byte ``byte`` (a byte inside a character maps to its start)."""
        return self._lines.offset_of(byte)

    def line_of(self, offset: int) -> int:
        """0-based line number of ``offset``."""
        return self._lines.line_of(max(0, min(offset, len(self.text))))

    def line_start(self, line: int) -> int:
        """Offset of the first character of ``line``."""
        return self._lines.starts[line]

    def line_end(self, line: int) -> int:
        """Offset of the end of ``line`` (before its newline)."""
        starts = self._lines.starts
        if line + 1 < len(starts):
            return starts[line + 1] - 1
        return len(self.text)

    @property
    def line_count(self) -> int:
        """Number of lines (a trailing newline starts one more, empty line)."""
        return len(self._lines.starts)

    def line_text(self, line: int) -> str:
        """The text of ``line`` without its newline."""
        return self.text[self.line_start(line) : self.line_end(line)]

    def node_at(self, offset: int) -> tree_sitter.Node:
        """The smallest node that spans ``offset``."""
        b = self.byte_of(offset)
        node = self.tree.root_node.descendant_for_byte_range(b, b)
        return node if node is not None else self.tree.root_node
