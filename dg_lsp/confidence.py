"""How sure a completion is, and what makes it not worth showing unasked.

``model_confidence`` scores the denoising's own signals (``dg_lsp.engine.core.Signals``);
``judge`` lowers that score for answers that are degenerate whatever the model thought of
them: one short piece repeated (``ValueValueValue``, ``((((``), the same answer the server
gave for several other places lately (the one word for every hole of an undertrained model),
a block body that leaves its block unfinished (``#`` as the body of a loop; for the rest of
a line a correct start is worth showing, so only block bodies are held to this), and an answer
of under ``MIN_SHOWN_CHARS`` characters. The
server withholds automatic suggestions under the ``minConfidence`` setting; invoked requests
(Ctrl+Space) still get the best answer. Calibration: ``benchmarks/confidence.py``,
``docs/confidence.md``.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

# A unit of 1-12 characters repeated at least 4 times in a row, covering most of the answer
_REPEAT = re.compile(r"(.{1,12}?)\1{3,}", re.S)
REPEAT_SHARE = 0.5
# The same answer for this many other places among the last RECENT_WINDOW that the model answered
SAME_ANSWER_PLACES = 3
RECENT_WINDOW = 24
# A middle that leaves a broken hole broken keeps this share of its confidence
INCOMPLETE_FACTOR = 0.25
# A suggestion shorter than this (stripped) keeps SHORT_FACTOR of its confidence: one or two
# characters of ghost text (`"`, `(`, `#`) were useful for 2 of 182 shown on the held-out holes
# (docs/confidence.md); users of local completion tools ask for a minimum length (Tabby #2674)
MIN_SHOWN_CHARS = 4
SHORT_FACTOR = 0.1


def model_confidence(sig: Any) -> float:
    """0..1 from the denoising signals: the geometric mean probability of the final tokens
    (and EOS) under the first step, that is from the starting canvas, before the sampler's own
    choices are fed back (under the last step the model only agrees with itself: 0.99 for
    ``(((``). 0 when there are no tokens."""
    if sig is None or not sig.tokens:
        return 0.0
    return math.exp(min(0.0, sig.first))


def repetitive(text: str) -> bool:
    """One short piece repeated most of the answer long."""
    core = "".join(text.split())
    if len(core) < 4:
        return False
    covered = sum(len(m.group(0)) for m in _REPEAT.finditer(core))
    return covered >= REPEAT_SHARE * len(core)


class RecentAnswers:
    """The answers the server gave lately, by place (document, line): an answer given for
    ``SAME_ANSWER_PLACES`` other places of the last ``RECENT_WINDOW`` is not about this one."""

    def __init__(self, window: int = RECENT_WINDOW):
        self.items: deque[tuple[tuple[str, int], str]] = deque(maxlen=window)

    def others(self, place: tuple[str, int], text: str) -> int:
        """How many other places got ``text``."""
        key = text.strip()
        return len({p for p, t in self.items if t == key and p != place})

    def add(self, place: tuple[str, int], text: str) -> None:
        key = text.strip()
        if key:
            self.items.append((place, key))


@dataclass
class Verdict:
    confidence: float  # 0..1 after the penalties
    model: float  # the model's own
    reason: str = ""  # why it was lowered ("" = not)


def judge(model: float, text: str, *, broken: bool = False, same_elsewhere: int = 0) -> Verdict:
    """The confidence of a post-processed middle ``text`` the model was ``model`` sure of."""
    if not text.strip():
        return Verdict(0.0, model, "empty")
    if repetitive(text):
        return Verdict(0.0, model, "one piece repeated")
    if same_elsewhere >= SAME_ANSWER_PLACES:
        return Verdict(0.0, model, f"the same answer as for {same_elsewhere} other places")
    if broken:
        return Verdict(model * INCOMPLETE_FACTOR, model, "leaves the hole unparsed")
    if len(text.strip()) < MIN_SHOWN_CHARS:
        return Verdict(model * SHORT_FACTOR, model, f"shorter than {MIN_SHOWN_CHARS} characters")
    return Verdict(model, model)
