"""The server's document: cached LSP lines, edits as one slice, positions from line starts.

Each is checked against the straightforward version it replaces (pygls' line-by-line edit,
a scan of every line break) on random texts mixing every LSP line break, characters that
``str.splitlines`` would break at, and non-BMP characters.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

from lsprotocol import types
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import PositionCodec

from dg_lsp.server import _LSP_BREAK, DgLanguageServer, LspTextDocument

PIECES = ["a", "bc", "é", "😀", "\n", "\r\n", "\r", " ", "\x0c", "\u2028", "\x85"]
CODEC = PositionCodec()


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 30)))


def test_incremental_edits_equal_pygls_line_by_line_edit():
    rng = random.Random(0)
    for _ in range(3000):
        text = random_text(rng)
        fast = LspTextDocument("file:///x", source=text, position_codec=CODEC)
        slow = LspTextDocument("file:///x", source=text, position_codec=CODEC)
        n = len(fast.lines) + 1
        a = types.Position(line=rng.randrange(n), character=rng.randrange(8))
        b = types.Position(line=rng.randrange(n), character=rng.randrange(8))
        if rng.random() < 0.8 and (b.line, b.character) < (a.line, a.character):
            a, b = b, a  # mostly well-formed ranges, sometimes reversed ones
        change = types.TextDocumentContentChangePartial(range=types.Range(start=a, end=b), text=random_text(rng))
        fast._apply_incremental_change(change)
        TextDocument._apply_incremental_change(slow, change)
        assert fast.source == slow.source, (text, change)
        assert fast.lines == tuple(line for line in _split(fast.source))
        assert fast._starts == [sum(len(x) for x in fast.lines[:i]) for i in range(len(fast.lines))]
        # and a second edit on the incrementally kept lines still agrees
        again = types.TextDocumentContentChangePartial(range=types.Range(start=a, end=a), text="\r")
        fast._apply_incremental_change(again)
        TextDocument._apply_incremental_change(slow, again)
        assert fast.source == slow.source and fast.lines == tuple(_split(fast.source))


def _split(text: str):
    start = 0
    for m in _LSP_BREAK.finditer(text):
        yield text[start : m.end()]
        start = m.end()
    if start < len(text):
        yield text[start:]


def test_position_of_every_offset_equals_a_scan_of_line_breaks():
    rng = random.Random(1)
    for _ in range(1000):
        text = random_text(rng)
        doc = LspTextDocument("file:///x", source=text, position_codec=CODEC)
        snap = SimpleNamespace(text=doc.source, doc=doc)
        for offset in range(len(text) + 1):
            line, start = 0, 0
            for m in _LSP_BREAK.finditer(text, 0, offset):
                line, start = line + 1, m.end()
            expected = types.Position(line=line, character=CODEC.client_num_units(text[start:offset]))
            assert DgLanguageServer.position_at(None, snap, offset) == expected, (text, offset)
        for row in range(len(doc.lines) + 2):
            for col in (0, 1, 3):
                pos = types.Position(line=row, character=col)
                assert doc.offset_at_server_position(pos) == TextDocument.offset_at_server_position(doc, pos)
