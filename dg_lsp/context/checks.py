"""Cheap checks of a proposed middle: new syntax errors and bracket balance."""

from __future__ import annotations

import functools
import re

import tree_sitter

from .languages import LanguageSpec


def _count_errors(root: tree_sitter.Node) -> int:
    """Number of ERROR and MISSING nodes, visiting only subtrees that have errors."""
    if not root.has_error:
        return 0
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
        for child in node.children:
            if child.has_error or child.is_missing:
                stack.append(child)
    return count


@functools.lru_cache(maxsize=16)
def _parse(spec: LanguageSpec, text: str) -> tree_sitter.Tree:
    return spec.parser().parse(text.encode("utf-8"))


@functools.lru_cache(maxsize=16)
def syntax_error_count(spec: LanguageSpec, text: str) -> int:
    """Number of ERROR + MISSING nodes in the parse of ``text``."""
    return _count_errors(_parse(spec, text).root_node)


def new_syntax_errors(spec: LanguageSpec, prefix: str, middle: str, suffix: str) -> int:
    """How many more ERROR/MISSING nodes ``prefix+middle+suffix`` has than ``prefix+suffix``."""
    with_middle = syntax_error_count(spec, prefix + middle + suffix)
    without = syntax_error_count(spec, prefix + suffix)
    return max(0, with_middle - without)


def _skip_ranges(spec: LanguageSpec, tree: tree_sitter.Tree) -> list[tuple[int, int]]:
    """Byte ranges of strings and comments, with interpolations (code) cut back out."""
    query = spec.query("literals")
    if query is None:
        return []
    caps = tree_sitter.QueryCursor(query).captures(tree.root_node)
    literal: list[tuple[int, int]] = []
    code: list[tuple[int, int]] = []
    for name, nodes in caps.items():
        kind = name.split(".", 1)[0]
        target = code if kind == "interpolation" else literal if kind in ("string", "comment") else None
        if target is not None:
            target.extend((n.start_byte, n.end_byte) for n in nodes)
    # Each byte is classified by the innermost range containing it.
    events = sorted([(s, -e, True) for s, e in literal] + [(s, -e, False) for s, e in code])
    out: list[tuple[int, int]] = []
    stack: list[tuple[int, bool]] = []  # (end, is_literal)
    pos = 0

    def emit(upto: int) -> None:
        nonlocal pos
        if upto > pos and stack and stack[-1][1]:
            out.append((pos, upto))
        pos = max(pos, upto)

    for start, neg_end, is_lit in events:
        end = -neg_end
        while stack and stack[-1][0] <= start:
            emit(stack[-1][0])
            stack.pop()
        emit(start)
        stack.append((end, is_lit))
    while stack:
        emit(stack[-1][0])
        stack.pop()
    return out


def bracket_delta(spec: LanguageSpec, text: str) -> dict[str, int]:
    """Per opening bracket: opens minus closes, outside strings and comments."""
    return dict(_bracket_delta(spec, text))


@functools.lru_cache(maxsize=16)
def _bracket_delta(spec: LanguageSpec, text: str) -> tuple[tuple[str, int], ...]:
    data = text.encode("utf-8")
    pairs = spec.brackets
    delta = {open_: 0 for open_, _ in pairs}
    if not pairs:
        return ()
    closer_of = {close: open_ for open_, close in pairs}
    pattern = re.compile(b"|".join(re.escape(t.encode()) for pair in pairs for t in pair))
    skips = _skip_ranges(spec, _parse(spec, text))
    k = 0
    for m in pattern.finditer(data):
        pos = m.start()
        while k < len(skips) and skips[k][1] <= pos:
            k += 1
        if k < len(skips) and skips[k][0] <= pos:
            continue
        tok = m.group().decode()
        if tok in delta:
            delta[tok] += 1
        else:
            delta[closer_of[tok]] -= 1
    return tuple(delta.items())


def brackets_balanced(spec: LanguageSpec, prefix: str, middle: str, suffix: str) -> bool:
    """Whether ``middle`` keeps the bracket balance of ``prefix+suffix``."""
    return _bracket_delta(spec, prefix + middle + suffix) == _bracket_delta(spec, prefix + suffix)
