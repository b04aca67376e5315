"""The completion cache: typing through a proposal, deleting back to it, and what breaks it."""

from __future__ import annotations

from dg_lsp.completion_cache import CompletionCache

DOC = "def f(x):\n    return \n\nprint(f(2))\n"
CURSOR = DOC.index("return ") + len("return ")


def typed(doc: str, offset: int, chars: str) -> str:
    return doc[:offset] + chars + doc[offset:]


def test_typing_the_proposal_returns_its_rest():
    c = CompletionCache()
    c.store("a", DOC, CURSOR, "x * 2", 0, "single")
    for n in range(1, 5):
        hit = c.lookup("a", typed(DOC, CURSOR, "x * 2"[:n]), CURSOR + n)
        assert hit is not None and hit.text == "x * 2"[n:] and hit.typed == n
    # typed all of it: nothing left to propose from the cache
    assert c.lookup("a", typed(DOC, CURSOR, "x * 2"), CURSOR + 5) is None


def test_deleting_back_to_the_anchor_is_a_hit():
    c = CompletionCache()
    c.store("a", DOC, CURSOR, "x * 2", 0, "single")
    hit = c.lookup("a", DOC, CURSOR)
    assert hit is not None and hit.text == "x * 2" and hit.typed == 0


def test_diverging_or_edited_context_misses():
    c = CompletionCache()
    c.store("a", DOC, CURSOR, "x * 2", 0, "single")
    assert c.lookup("a", typed(DOC, CURSOR, "y"), CURSOR + 1) is None  # typed something else
    edited_before = DOC.replace("def f(x)", "def g(x)")
    assert c.lookup("a", edited_before, CURSOR) is None
    edited_after = DOC.replace("print(f(2))", "print(f(3))")
    assert c.lookup("a", edited_after, CURSOR) is None
    assert c.lookup("b", DOC, CURSOR) is None  # another document
    assert c.lookup("a", DOC, CURSOR - 1) is None  # before the anchor


def test_replace_and_newest_entry_win():
    c = CompletionCache()
    doc = "print(\n"
    c.store("a", doc, 6, "1, 2)", 0, "single")
    doc2 = "print()\n"
    c.store("a", doc2, 6, "3)", 1, "single")
    hit = c.lookup("a", doc2, 6)
    assert hit is not None and hit.text == "3)" and hit.replace == 1
    c.forget("a")
    assert c.lookup("a", doc2, 6) is None


def test_single_line_proposals_do_not_continue_past_a_typed_newline():
    c = CompletionCache()
    c.store("a", DOC, CURSOR, "x\n    y", 0, "single")
    assert c.lookup("a", typed(DOC, CURSOR, "x\n"), CURSOR + 2) is None
    c.store("a", DOC, CURSOR, "x\n    y", 0, "multi")
    hit = c.lookup("a", typed(DOC, CURSOR, "x\n"), CURSOR + 2)
    assert hit is not None and hit.text == "    y"
