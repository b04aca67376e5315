"""Tokenize by line, with a cache: typing changes one line, the others are looked up.

Every keystroke sends the whole prefix and suffix again (thousands of characters), and
tokenizing them from scratch costs milliseconds. Byte-level BPE tokenizers that split
newline runs into their own pre-tokens (ours does: ``model/tokenizer.py``) tokenize a text
exactly as the concatenation of its lines, each line taken with the newlines that end it.
``LineTokenCache`` checks that property on the loaded tokenizer at start-up and, when it
holds, tokenizes line by line through an LRU cache; otherwise it tokenizes whole texts.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Callable

# a line with the newline run that ends it (the last one may have none)
_LINE = re.compile(r"[^\n]*\n+|[^\n]+")

PROBES = (
    "def f(x):\n    return x\n\n\nclass A:\n\tpass\n",
    "if (a) {\n  b();\n}\n// done\n\n",
    "  x = 'it''s'\n\n  y = \"\\n\"\n",
    "\n\n\nfoo\n bar \n\n",
)


class LineTokenCache:
    def __init__(self, encode: Callable[[str], list[int]], max_lines: int = 50_000):
        self._encode = encode
        self.max_lines = max_lines
        self.lines: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self.by_line = all(self._split_encode(t, cache=False) == encode(t) for t in PROBES)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, exactly as the tokenizer gives them for the whole text."""
        if not text:
            return []
        if not self.by_line:
            return self._encode(text)
        return self._split_encode(text, cache=True)

    def _split_encode(self, text: str, *, cache: bool) -> list[int]:
        out: list[int] = []
        lines = self.lines
        for m in _LINE.finditer(text):
            line = m.group()
            ids = lines.get(line) if cache else None
            if ids is None:
                ids = tuple(self._encode(line))
                if cache:
                    lines[line] = ids
                    if len(lines) > self.max_lines:
                        lines.popitem(last=False)
            elif len(lines) > self.max_lines // 2:
                lines.move_to_end(line)
            out.extend(ids)
        return out


def for_tokenizer(tokenizer: Any) -> LineTokenCache:
    from dg_lsp.engine.prompt import encode_text

    return LineTokenCache(lambda text: encode_text(tokenizer, text))
