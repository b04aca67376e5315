"""Tree queries over a SyntaxDocument: literals at a point, scopes, holes, boundaries."""

from __future__ import annotations

from typing import Iterator, Literal

import tree_sitter

from .document import SyntaxDocument
from .languages import LanguageSpec

LiteralKind = Literal["string", "comment"]

# Bracket characters that close a block (for "cursor right after the closer" checks).
_CLOSERS = frozenset(")]}")


def captures(
    query: tree_sitter.Query | None, node: tree_sitter.Node, start_byte: int, end_byte: int
) -> dict[str, list[tree_sitter.Node]]:
    """Captures of ``query`` for nodes that intersect ``[start_byte, end_byte)``."""
    if query is None:
        return {}
    cursor = tree_sitter.QueryCursor(query)
    cursor.set_byte_range(max(0, start_byte), max(0, end_byte))
    return cursor.captures(node)


def iter_captures(
    caps: dict[str, list[tree_sitter.Node]], prefix: str
) -> Iterator[tuple[str, tree_sitter.Node]]:
    """(capture name, node) pairs whose name is ``prefix`` or starts with ``prefix.``."""
    for name, nodes in caps.items():
        if name == prefix or name.startswith(prefix + "."):
            for node in nodes:
                yield name, node


# -- literals ------------------------------------------------------------------------


def _inside_literal(doc: SyntaxDocument, node: tree_sitter.Node, kind: str, b: int) -> bool:
    """Whether byte ``b`` is inside literal ``node`` (of capture kind ``kind``)."""
    start, end = node.start_byte, node.end_byte
    if start < b < end:
        return True
    if b != end or b <= start:
        return False
    if kind == "comment":
        if doc.data[end - 1 : end] == b"\n":
            return False  # a line comment that owns its newline: b is on the next line
        block = doc.spec.block_comment
        body = doc.data[start:end]
        if block is not None and body.startswith(block[0].encode()) and body.endswith(block[1].encode()):
            return len(body) < len(block[0]) + len(block[1])
        return True  # a line comment: typing at its end stays in the comment
    if kind == "string":
        # An unterminated string: the parser closed it with a MISSING node.
        last = node.child(node.child_count - 1) if node.child_count else None
        return last is not None and (last.is_missing or last.end_byte == last.start_byte)
    return False


def literal_at(doc: SyntaxDocument, offset: int) -> LiteralKind | None:
    """``"string"`` / ``"comment"`` when ``offset`` is inside one, else None.

    Uses the ``literals`` query (``@string``, ``@comment``, and ``@interpolation``
    for code inside a literal); the innermost capture wins. Where the tree has an
    error around the cursor (an unterminated string being typed), a small lexer over
    the current line decides.
    """
    b = doc.byte_of(offset)
    root = doc.tree.root_node
    caps = captures(doc.spec.query("literals"), root, b - 1, b + 1)
    best: tuple[tuple[int, int], str] | None = None
    for name, nodes in caps.items():
        kind = name.split(".", 1)[0]
        if kind not in ("string", "comment", "interpolation"):
            continue
        for node in nodes:
            if kind == "interpolation":
                inside = node.start_byte < b < node.end_byte
            else:
                inside = _inside_literal(doc, node, kind, b)
            if inside:
                key = (node.start_byte, -node.end_byte)
                if best is None or key > best[0]:
                    best = (key, kind)
    if best is not None:
        return None if best[1] == "interpolation" else best[1]  # type: ignore[return-value]
    line = doc.line_of(offset)
    line_start = doc.line_start(line)
    around = root.descendant_for_byte_range(doc.byte_of(line_start), b)
    if around is not None and (around.has_error or around.is_missing):
        return lex_line(doc.spec, doc.text[line_start:offset])
    return None


def lex_line(spec: LanguageSpec, line: str) -> LiteralKind | None:
    """What a line's text ends inside of, by the registry's delimiters: a tiny lexer."""
    strings = sorted(spec.strings, key=len, reverse=True)
    block = spec.block_comment
    line_comment = spec.line_comment
    shell_comment = spec.name == "bash"
    i, n = 0, len(line)
    while i < n:
        if block is not None and line.startswith(block[0], i):
            j = line.find(block[1], i + len(block[0]))
            if j < 0:
                return "comment"
            i = j + len(block[1])
            continue
        if line_comment and line.startswith(line_comment, i):
            if not shell_comment or i == 0 or line[i - 1].isspace() or line[i - 1] in ";|&(":
                return "comment"
        for delim in strings:
            if line.startswith(delim, i):
                j = i + len(delim)
                escapes = not (shell_comment and delim == "'")
                while j < n:
                    if escapes and line[j] == "\\":
                        j += 2
                        continue
                    if line.startswith(delim, j):
                        break
                    j += 1
                if j >= n:
                    return "string"
                i = j + len(delim)
                break
        else:
            i += 1
    return None


# -- scopes and holes ------------------------------------------------------------------


def enclosing_scope(doc: SyntaxDocument, offset: int, kind: str = "function") -> tuple[int, int] | None:
    """(start, end) offsets of the innermost ``@scope.<kind>`` node containing ``offset``.

    A node contains the offset when ``start <= offset < end``; the end itself counts
    too when the node does not end with a closing bracket (indentation-based blocks),
    so a cursor at the end of a Python function is still inside it.
    """
    b = doc.byte_of(offset)
    caps = captures(doc.spec.query("scopes"), doc.tree.root_node, b - 1, b + 1)
    best: tree_sitter.Node | None = None
    for _, node in iter_captures(caps, f"scope.{kind}"):
        start, end = node.start_byte, node.end_byte
        inside = start <= b < end
        if not inside and b == end and end > start:
            inside = doc.data[end - 1 : end].decode("latin-1") not in _CLOSERS
        if inside and (best is None or (start, -end) > (best.start_byte, -best.end_byte)):
            best = node
    if best is None:
        return None
    return doc.offset_of(best.start_byte), doc.offset_of(best.end_byte)


def hole_nodes(doc: SyntaxDocument, start_byte: int, end_byte: int) -> list[tree_sitter.Node]:
    """``@hole`` nodes fully inside ``[start_byte, end_byte)``, sorted, non-overlapping."""
    caps = captures(doc.spec.query("holes"), doc.tree.root_node, start_byte, end_byte)
    nodes = [n for _, n in iter_captures(caps, "hole") if start_byte <= n.start_byte and n.end_byte <= end_byte]
    nodes.sort(key=lambda n: (n.start_byte, -n.end_byte))
    out: list[tree_sitter.Node] = []
    for node in nodes:
        if out and node.start_byte < out[-1].end_byte:
            continue  # overlaps (or is inside) the previous hole
        out.append(node)
    return out


def find_holes(doc: SyntaxDocument, start: int, end: int) -> list[tuple[int, int]]:
    """Hole markers (``@hole`` captures) fully inside ``[start, end)``, as offsets."""
    nodes = hole_nodes(doc, doc.byte_of(start), doc.byte_of(end))
    return [(doc.offset_of(n.start_byte), doc.offset_of(n.end_byte)) for n in nodes]


def container_ids(doc: SyntaxDocument, start_byte: int, end_byte: int) -> set[int]:
    """Ids of nodes whose children are statements: the root and every ``@scope.*`` capture."""
    root = doc.tree.root_node
    caps = captures(doc.spec.query("scopes"), root, start_byte, end_byte)
    ids = {root.id}
    for _, node in iter_captures(caps, "scope"):
        ids.add(node.id)
    return ids


def _stmt_parent_ok(node: tree_sitter.Node, containers: set[int]) -> bool:
    parent = node.parent
    return parent is not None and not parent.is_error and parent.id in containers


def starts_statement(doc: SyntaxDocument, line: int, containers: set[int]) -> bool:
    """Whether ``line``'s first token starts a statement/definition (a clean prefix start)."""
    text = doc.line_text(line)
    stripped = text.lstrip()
    if not stripped:
        return False
    b = doc.byte_of(doc.line_start(line) + len(text) - len(stripped))
    node = doc.tree.root_node.descendant_for_byte_range(b, b + 1)
    if node is None or node.start_byte != b:
        return False
    while True:
        if node.is_named and not node.is_error and not node.is_missing and _stmt_parent_ok(node, containers):
            return True
        parent = node.parent
        if parent is None or parent.parent is None or parent.start_byte != b:
            return False
        node = parent


def ends_statement(doc: SyntaxDocument, line: int, containers: set[int]) -> bool:
    """Whether ``line``'s last token ends a statement/definition (a clean suffix end)."""
    text = doc.line_text(line)
    stripped = text.rstrip()
    if not stripped:
        return False
    e = doc.byte_of(doc.line_start(line) + len(stripped))
    node = doc.tree.root_node.descendant_for_byte_range(e - 1, e)
    if node is None or node.end_byte != e:
        return False
    while True:
        good_kind = node.is_named or node.type in (",", ";")
        if good_kind and not node.is_error and not node.is_missing and _stmt_parent_ok(node, containers):
            return True
        parent = node.parent
        if parent is None or parent.parent is None or parent.end_byte != e:
            return False
        node = parent


def inside_token(doc: SyntaxDocument, offset: int) -> bool:
    """Whether ``offset`` falls strictly inside one token (a multi-line string or comment)."""
    b = doc.byte_of(offset)
    node = doc.tree.root_node.descendant_for_byte_range(b, b)
    if node is None:
        return False
    return node.child_count == 0 and node.start_byte < b < node.end_byte
