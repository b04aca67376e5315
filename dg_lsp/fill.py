"""Fill holes the way completions answer: each hole, left to right, gets what an invoked
completion there would show, and only if the function still parses with it.

The "Fill holes" code action of a checkpoint whose causal draft answers completions
(``dg_lsp.engine.holes.fill_method`` is ``"draft"``, the embedded model) runs ``fill_holes``:

* the hole's marker is taken out (its line keeps its indentation) and ``dg_lsp.service.propose``
  answers an invoked completion at that spot: the server's cut of the text, the causal draft cut
  where the model stops being sure, the memory of the file mixed in (``memory_at``), the syntax
  post-processing of completions (a single line stops at its end, a block at its dedent, a middle
  that adds syntax errors is cut to its longest valid prefix);
* the answer replaces the marker only if the function (``region``) then overlaps no more
  ERROR/MISSING nodes of the document's parse than with the marker, the answer does not parse
  only by running into the next line (``spills_over``: ``result =`` above ``...``), and its
  confidence is at least ``min_confidence``. An answer that does not parse (a sure start, ``return self.``) is
  tried once more drafted to the end of its line (the memory's cut at 0, ``WHOLE_LINE_CUT``);
  if that does not parse either, the marker stays (the hole is left for the user, not filled
  with code that breaks the function);
* a hole followed by another statement of its block (``sibling_follows``) is answered with one
  line (``multiline`` off); a hole that ends its block may get a block;
* later holes see the earlier ones filled, and keep their markers until their turn.

Measured against the draft alone and the canvas by ``benchmarks/fill_holes.py`` (docs/canvas.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import msgspec

from dg_lsp.context import LanguageSpec, SyntaxDocument, errors_within, spills_over
from dg_lsp.engine import Cancelled, Engine
from dg_lsp.settings import Settings

# (text, offset, draft cut or None for the default) -> a dg_lsp.memory.Memory or None
MemoryAt = Callable[[str, int, "float | None"], Any]
WHOLE_LINE_CUT = 0.0  # the second try of a hole whose answer does not parse: draft to the line's end


@dataclass
class Fill:
    text: str  # what replaces the marker ("": the hole is left as it is)
    answer: str  # the completion's answer before the checks
    confidence: float
    reason: str = ""  # why an answer was not used ("" when it was, or there was none)


def sibling_follows(text: str, start: int, end: int) -> bool:
    """Whether the first non-blank line after the hole ``[start, end)`` is indented as the hole's
    line: another statement of its block follows, so the hole stands for a line, not a body."""
    line_start = text.rfind("\n", 0, start) + 1
    lead = text[line_start:start]
    indent = len(lead) - len(lead.lstrip(" \t"))
    for line in text[end:].split("\n")[1:]:
        if line.strip():
            return len(line) - len(line.lstrip(" \t")) == indent
    return False


def fill_holes(engine: Engine, spec: LanguageSpec, text: str, holes: Sequence[tuple[int, int]], settings: Settings, *,
               region: tuple[int, int] | None = None, memory_at: MemoryAt | None = None, min_confidence: float = 0.0,
               should_stop: Callable[[], bool] | None = None) -> list[Fill]:
    """One ``Fill`` per hole of ``text`` (``holes``: the markers' offsets, in order), left to
    right (module docstring). ``text`` is the whole document (its parse judges a fill; the
    completion cuts its own context); ``region``: the function holding the holes (default: all)."""
    from dg_lsp.service import propose

    out: list[Fill] = []
    shift = 0
    r0, r1 = region if region is not None else (0, len(text))
    for a0, b0 in holes:
        if should_stop is not None and should_stop():
            raise Cancelled("cancelled while filling holes")
        a, b = a0 + shift, b0 + shift
        open_text = text[:a] + text[b:]
        doc = SyntaxDocument(spec, open_text)
        base = errors_within(spec, text, r0, r1 + shift)
        # a hole among the statements of its block is one line; a body's only statement may be many
        hole_settings = msgspec.structs.replace(settings, multiline=False) if sibling_follows(text, a, b) else settings
        fill = Fill("", "", 0.0)
        for cut in (None, WHOLE_LINE_CUT):
            memory = memory_at(open_text, a, cut) if memory_at is not None else None
            if cut is not None and memory is None:
                break  # the cut is the memory's: without one the second try would repeat the first
            p = propose(engine, spec, doc, a, hole_settings, invoked=True, should_stop=should_stop, memory=memory)
            fill = Fill("", p.text, p.confidence)
            if not p.text.strip():
                fill.reason = p.reason or "no answer"
                break
            if p.replace:
                fill.reason = "retypes text after the hole"
                break
            if p.confidence < min_confidence:
                fill.reason = "unsure"
                break
            filled = text[:a] + p.text + text[b:]
            if errors_within(spec, filled, r0, r1 + shift + len(p.text) - (b - a)) <= base and \
                    not spills_over(spec, filled, a, a + len(p.text)):
                fill.text = p.text
                text = filled
                shift += len(p.text) - (b - a)
                break
            fill.reason = "does not parse"
        out.append(fill)
    return out
