"""The context window stays put while typing, so the prompt cache keeps every token."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from dg_lsp.context import SyntaxDocument, cut_context, registry
from dg_lsp.context.sticky import stabilize

SOURCE = Path(sysconfig.get_paths()["stdlib"], "argparse.py").read_text(encoding="utf-8")
BUDGET = 400


def count(text: str) -> int:
    return len(text.split())  # a stand-in tokenizer: words


def typing_cuts(line_no: int, sticky: bool):
    """Retype line ``line_no`` character by character; the cut after each keystroke."""
    spec = registry().for_language_id("python")
    lines = SOURCE.split("\n")
    target = lines[line_no]
    lines[line_no] = ""
    base = "\n".join(lines)
    start = sum(len(ln) + 1 for ln in lines[:line_no])
    doc = SyntaxDocument(spec, base)
    previous = None
    for col in range(len(target)):
        text = base[:start] + target[: col + 1] + base[start:]
        doc.update(text)
        offset = start + col + 1
        cut = cut_context(doc, offset, count, BUDGET)
        if sticky:
            cut = stabilize(text, offset, cut, previous, count, BUDGET)
        previous = cut
        yield text, offset, cut


def test_typing_keeps_the_window_and_the_budget():
    moved_fresh = moved_sticky = 0
    for line_no in (400, 900, 1500, 2100):
        fresh = list(typing_cuts(line_no, sticky=False))
        kept = list(typing_cuts(line_no, sticky=True))
        for (_, _, a), (_, _, b) in zip(fresh, fresh[1:]):
            moved_fresh += (a.suffix != b.suffix) + (a.prefix_start != b.prefix_start)
        for (text, offset, a), (_, _, b) in zip(kept, kept[1:]):
            moved_sticky += (a.suffix != b.suffix) + (a.prefix_start != b.prefix_start)
        for text, offset, cut in kept:
            assert cut.prefix == text[cut.prefix_start : offset] and cut.suffix == text[offset : cut.suffix_end]
            assert count(cut.prefix) + count(cut.suffix) <= BUDGET
    assert moved_fresh > 0  # without it the window does move while typing (the test can fail)
    assert moved_sticky < moved_fresh / 2


def test_a_cursor_elsewhere_gets_a_fresh_window():
    spec = registry().for_language_id("python")
    doc = SyntaxDocument(spec, SOURCE)
    here = SOURCE.index("def parse_known_args")
    there = SOURCE.index("def format_help")
    first = cut_context(doc, here, count, BUDGET)
    fresh = cut_context(doc, there, count, BUDGET)
    assert stabilize(SOURCE, there, fresh, first, count, BUDGET) == fresh
