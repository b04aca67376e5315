"""Syntax-aware context: documents, completion modes, cuts, holes and middle checks.

Fixtures: ``tests/data/context/<lang>/<case>.<ext>`` hold one ``<|cursor|>`` marker;
``<case>.expect.json`` beside it holds the expectations::

    {"budget": 120,                 # tokens (count_tokens = len) given to cut_context
     "mode": "single",              # completion_mode(invoked=False)
     "mode_invoked": "single",      # completion_mode(invoked=True)   (optional)
     "prefix_start_line": 0,        # 0-based line where the cut prefix starts
     "suffix_end_line": 4}          # 0-based last line included in the suffix

Adding a case needs no code.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from dg_lsp.context import (
    Cut,
    SyntaxDocument,
    bracket_delta,
    brackets_balanced,
    completion_mode,
    cut_context,
    enclosing_scope,
    find_holes,
    new_syntax_errors,
    registry,
)
from dg_lsp.context.document import common_prefix_length, common_suffix_length

MARKER = "<|cursor|>"
FIXTURES = Path(__file__).resolve().parent / "data" / "context"


def _fixture_files() -> list[Path]:
    files = []
    for path in sorted(FIXTURES.glob("*/*")):
        if path.name.endswith(".expect.json") or not path.is_file():
            continue
        files.append(path)
    return files


def _load(path: Path) -> tuple[SyntaxDocument, int, dict]:
    raw = path.read_text(encoding="utf-8")
    assert raw.count(MARKER) == 1, f"{path}: needs exactly one {MARKER}"
    offset = raw.index(MARKER)
    text = raw.replace(MARKER, "")
    spec = registry().for_path(str(path))
    assert spec is not None, path
    assert spec.name == path.parent.name, f"{path} is in the wrong folder"
    expect_path = path.with_name(path.name.rsplit(".", 1)[0] + ".expect.json")
    expect = json.loads(expect_path.read_text(encoding="utf-8"))
    return SyntaxDocument(spec, text), offset, expect


FIXTURE_FILES = _fixture_files()


def doc_for(lang: str, text: str) -> SyntaxDocument:
    spec = registry().get(lang)
    assert spec is not None
    return SyntaxDocument(spec, text)


def at(text: str) -> tuple[str, int]:
    """Strip the cursor marker; return (text, offset)."""
    return text.replace(MARKER, ""), text.index(MARKER)


# -- fixtures ---------------------------------------------------------------------------


def test_fixture_coverage() -> None:
    """At least two cases per language, with single, multi and none modes all present."""
    per_lang: dict[str, set[str]] = {}
    for path in FIXTURE_FILES:
        _, _, expect = _load(path)
        per_lang.setdefault(path.parent.name, set()).add(expect["mode"])
    names = {s.name for s in registry().all()}
    assert set(per_lang) == names
    for lang, modes in per_lang.items():
        assert len(modes) >= 2, (lang, modes)
        assert "none" in modes, lang


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[f"{p.parent.name}/{p.name}" for p in FIXTURE_FILES])
def test_fixture(path: Path) -> None:
    doc, offset, expect = _load(path)
    assert completion_mode(doc, offset) == expect["mode"]
    if "mode_invoked" in expect:
        assert completion_mode(doc, offset, invoked=True) == expect["mode_invoked"]
    budget = expect.get("budget", 120)
    cut = cut_context(doc, offset, len, budget)
    _check_cut_invariants(doc, offset, cut, len, budget)
    assert cut.mode == expect["mode"]
    if "prefix_start_line" in expect:
        assert doc.line_of(cut.prefix_start) == expect["prefix_start_line"], cut.prefix
        assert cut.prefix_start == doc.line_start(expect["prefix_start_line"])
    if "suffix_end_line" in expect:
        last = doc.line_of(cut.suffix_end - 1) if cut.suffix_end > offset else doc.line_of(offset)
        assert last == expect["suffix_end_line"], cut.suffix


def _check_cut_invariants(doc: SyntaxDocument, offset: int, cut: Cut, count, budget: int) -> None:
    text = doc.text
    assert cut.prefix == text[cut.prefix_start : offset]
    assert cut.suffix == text[offset : cut.suffix_end]
    # whole lines: the prefix starts a line, the suffix ends one (or the document)
    assert cut.prefix_start == 0 or text[cut.prefix_start - 1] == "\n"
    assert cut.suffix_end == len(text) or text[cut.suffix_end - 1] == "\n"
    # the cursor line is always included
    line = doc.line_of(offset)
    assert cut.prefix_start <= doc.line_start(line)
    assert cut.suffix_end >= doc.line_end(line)
    cur = count(text[doc.line_start(line) : offset]) + count(text[offset : doc.line_end(line) + 1])
    assert count(cut.prefix) + count(cut.suffix) <= max(budget, cur)


# -- modes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lang, source, mode",
    [
        ("python", "def f():\n    <|cursor|>", "multi"),  # empty body at the end of the file
        ("python", "def f():\n    <|cursor|>\n\nx = 1\n", "multi"),
        ("python", "if x:\n\n    <|cursor|>\n", "multi"),
        ("python", "x = 1\n<|cursor|>\ny = 2\n", "single"),
        ("python", "def f():\n    x = 1\n    <|cursor|>\n", "single"),
        ("python", "# Example:\n<|cursor|>\n", "single"),  # ':' inside a comment opens nothing
        ("python", "x = fo<|cursor|>", "single"),  # end of an identifier
        ("python", "x = fo<|cursor|>o", "none"),
        ("python", 'x = "abc<|cursor|>', "none"),  # unterminated string being typed
        ("python", "x = 1  # note<|cursor|>", "none"),  # end of a line comment
        ("python", "x = 1  # note\n<|cursor|>", "single"),
        ("python", 'x = "abc"<|cursor|>', "single"),  # right after the closing quote
        ("python", '"""doc\nmore <|cursor|>\n"""\n', "none"),
        ("javascript", "function f() {\n  <|cursor|>\n}\n", "multi"),
        ("javascript", "function f() {<|cursor|>}\n", "single"),
        ("javascript", "if (x) {\n  // note\n  <|cursor|>\n}\n", "multi"),
        ("javascript", "/* block <|cursor|> */", "none"),
        ("javascript", "/* block */<|cursor|>", "single"),
        ("javascript", "const s = `a ${b<|cursor|>} c`;", "single"),
        ("rust", "fn f() {\n    <|cursor|>\n    todo!()\n}\n", "multi"),
        ("rust", "fn f() {\n    let x = 1;\n    <|cursor|>\n    x\n}\n", "single"),
        ("go", "package p\n\nfunc f() {\n\t<|cursor|>\n}\n", "multi"),
        ("lua", "for i = 1, 3 do\n  <|cursor|>\nend\n", "multi"),
        ("bash", "while true; do\n  <|cursor|>\ndone\n", "multi"),
        ("bash", "echo a#b<|cursor|>", "single"),
        ("json", '{"a": [\n  <|cursor|>\n]}\n', "multi"),
    ],
)
def test_completion_mode(lang: str, source: str, mode: str) -> None:
    text, offset = at(source)
    assert completion_mode(doc_for(lang, text), offset) == mode


def test_invoked_overrides_none() -> None:
    text, offset = at('x = "ab<|cursor|>c"\n')
    doc = doc_for("python", text)
    assert completion_mode(doc, offset) == "none"
    assert completion_mode(doc, offset, invoked=True) == "single"
    text, offset = at("value = comp<|cursor|>ute()\n")
    doc = doc_for("python", text)
    assert completion_mode(doc, offset) == "none"
    assert completion_mode(doc, offset, invoked=True) == "single"
    assert cut_context(doc, offset, len, 100, invoked=True).mode == "single"


# -- unicode -----------------------------------------------------------------------------

UNICODE_CASES = [
    ("python", 'msg = "😀 héllo 中文"; n = <|cursor|>len(msg)\n'),
    ("python", "# 👩‍👩‍👧 family\ndef f():\n    s = '日本語テキスト😀'\n    return s + <|cursor|>\n"),
    ("javascript", "const a = '😀😀'; /* 中文 */ let b = a.<|cursor|>length;\n"),
    ("rust", 'fn main() { let s = "𝄞 clef"; println!("{}", <|cursor|>s); }\n'),
    ("go", 'package p\n\nvar s = "中文😀"\nvar n = len(<|cursor|>s)\n'),
    ("json", '{"emoji": "😀", "cjk": "中文", "n": <|cursor|>1}\n'),
]


@pytest.mark.parametrize("lang, source", UNICODE_CASES)
def test_unicode_prefix_ends_at_cursor(lang: str, source: str) -> None:
    text, offset = at(source)
    doc = doc_for(lang, text)
    cut = cut_context(doc, offset, len, 10_000)
    assert cut.prefix == text[:offset]
    assert cut.suffix == text[offset:]
    assert cut.prefix + cut.suffix == text
    assert completion_mode(doc, offset) == "single"
    # the node at the cursor is the token that starts there
    node = doc.node_at(offset)
    assert doc.offset_of(node.start_byte) <= offset <= doc.offset_of(node.end_byte)


@pytest.mark.parametrize("lang, source", UNICODE_CASES)
def test_byte_offset_roundtrip(lang: str, source: str) -> None:
    text, _ = at(source)
    doc = doc_for(lang, text)
    data = text.encode("utf-8")
    for offset in range(len(text) + 1):
        byte = doc.byte_of(offset)
        assert byte == len(text[:offset].encode("utf-8"))
        assert doc.offset_of(byte) == offset
    assert doc.offset_of(len(data)) == len(text)


def test_unicode_string_is_literal() -> None:
    text, offset = at('s = "😀 中文 <|cursor|>"\n')
    doc = doc_for("python", text)
    assert completion_mode(doc, offset) == "none"
    text, offset = at('s = "😀 中文" <|cursor|>\n')
    assert completion_mode(doc_for("python", text), offset) == "single"


# -- incremental parsing -----------------------------------------------------------------

EDIT_SAMPLES = {
    "python": "import os\n\ndef f(x):\n    s = '😀 中文'\n    return [x, {1: 2}]\n\nclass A:\n    pass\n",
    "javascript": "function f(a) {\n  const s = `😀 ${a}`;\n  return [a, {b: 1}];\n}\n",
    "rust": "fn f(x: i32) -> i32 {\n    let s = \"中文\";\n    x + 1\n}\n",
    "go": "package p\n\nfunc f(x int) int {\n\ts := \"😀\"\n\t_ = s\n\treturn x\n}\n",
    "json": '{"a": [1, 2, {"b": "中文"}], "c": null}\n',
    "lua": "local function f(x)\n  local s = '😀'\n  return x + 1\nend\n",
}
PIECES = ["x", " ", "\n", "(", ")", "{", "}", "[", "]", '"', "'", "😀", "中", "é", "foo", "1", ";", ":", "  return ", "if "]


@pytest.mark.parametrize("lang", sorted(EDIT_SAMPLES))
def test_incremental_update_matches_fresh_parse(lang: str) -> None:
    rng = random.Random(1234 + len(lang))
    text = EDIT_SAMPLES[lang]
    doc = doc_for(lang, text)
    for _ in range(40):
        kind = rng.random()
        a = rng.randint(0, len(text))
        b = min(len(text), a + rng.randint(0, 6))
        if kind < 0.4:  # insert
            text = text[:a] + rng.choice(PIECES) + text[a:]
        elif kind < 0.7:  # delete
            text = text[:a] + text[b:]
        else:  # replace
            text = text[:a] + "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 3))) + text[b:]
        doc.update(text)
        fresh = doc_for(lang, text)
        assert doc.text == text
        assert str(doc.tree.root_node) == str(fresh.tree.root_node), text
        assert doc.tree.root_node.end_byte == len(text.encode("utf-8"))


def test_update_repeated_text_and_noop() -> None:
    doc = doc_for("python", "aaaa\naaaa\n")
    doc.update("aaaa\naaaaa\naaaa\n")
    assert str(doc.tree.root_node) == str(doc_for("python", "aaaa\naaaaa\naaaa\n").tree.root_node)
    tree = doc.tree
    doc.update(doc.text)
    assert doc.tree is tree


@pytest.mark.parametrize(
    "a, b",
    [("", ""), ("abc", "abc"), ("abc", "abd"), ("abc", "xbc"), ("aaaa", "aaaaa"), ("😀a中", "😀b中"), ("x" * 1000 + "y", "x" * 1000 + "z")],
)
def test_common_prefix_suffix(a: str, b: str) -> None:
    p = common_prefix_length(a, b)
    assert a[:p] == b[:p] and (p == min(len(a), len(b)) or a[p] != b[p])
    limit = min(len(a), len(b)) - p
    s = common_suffix_length(a, b, limit)
    assert s <= limit
    assert a[len(a) - s :] == b[len(b) - s :]
    assert s == limit or a[len(a) - s - 1] != b[len(b) - s - 1]


# -- budget and speed --------------------------------------------------------------------


def _big_python(n_funcs: int = 2500) -> str:
    parts = []
    for i in range(n_funcs):
        parts.append(
            f"def func_{i}(a, b):\n"
            f"    '''Docstring {i} 😀.'''\n"
            f"    total = a + b * {i}\n"
            f"    values = [\n"
            f"        total,\n"
            f"        {i},\n"
            f"    ]\n"
            f"    return values\n"
        )
    return "".join(parts)


class CountingLen:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, s: str) -> int:
        self.calls += 1
        return len(s)


@pytest.mark.parametrize("budget", [0, 40, 500, 4000])
def test_budget_respected(budget: int) -> None:
    text = _big_python(300)
    doc = doc_for("python", text)
    for offset in (0, len(text) // 3, text.index("return values", len(text) // 2) + 7, len(text)):
        count = CountingLen()
        cut = cut_context(doc, offset, count, budget)
        _check_cut_invariants(doc, offset, cut, len, budget)
        if budget >= 500 and 0 < offset < len(text):
            # the prefix gets the larger share, and most of the budget gets used
            assert len(cut.prefix) > len(cut.suffix)
            assert len(cut.prefix) + len(cut.suffix) > budget // 3


def test_big_file_is_fast_and_counts_only_nearby_lines() -> None:
    text = _big_python()  # 20,000 lines
    assert text.count("\n") == 20_000
    doc = doc_for("python", text)
    offset = text.index("return values", len(text) // 2) + len("return ")
    count = CountingLen()
    start = time.perf_counter()
    for _ in range(10):
        completion_mode(doc, offset)
        cut = cut_context(doc, offset, count, 2048)
    elapsed = (time.perf_counter() - start) / 10
    assert count.calls < 10 * 400  # line by line around the cursor, not the whole file
    assert len(cut.prefix) + len(cut.suffix) <= 2048
    assert cut.prefix.startswith("def func_") or cut.prefix.lstrip().startswith(("'''", "total", "values", "return"))
    assert elapsed < 0.25, f"{elapsed * 1000:.1f} ms per completion"
    # an incremental edit near the cursor stays cheap too
    start = time.perf_counter()
    doc.update(text[:offset] + "total" + text[offset:])
    assert time.perf_counter() - start < 0.5


def test_cut_snaps_to_statement_boundaries() -> None:
    text = _big_python(60)
    doc = doc_for("python", text)
    offset = text.index("return values", len(text) // 2) + len("return ")
    for budget in range(60, 600, 37):
        cut = cut_context(doc, offset, len, budget)
        first = cut.prefix.split("\n", 1)[0].strip()
        # never starts inside the list literal or with its closing bracket
        assert not first.startswith(("total,", "]")) and not first[:1].isdigit(), (budget, first)
        last = cut.suffix.rstrip("\n").rsplit("\n", 1)[-1].strip()
        assert last != "values = [" and not last.endswith(","), (budget, last)


# -- scopes and holes ---------------------------------------------------------------------


def test_enclosing_scope() -> None:
    text, offset = at("class A:\n    def m(self):\n        x = 1\n        return <|cursor|>x\n\ny = 2\n")
    doc = doc_for("python", text)
    fn = enclosing_scope(doc, offset)
    assert fn is not None and text[fn[0] : fn[1]].startswith("def m(self):")
    assert text[fn[0] : fn[1]].endswith("return x")
    cls = enclosing_scope(doc, offset, "class")
    assert cls is not None and text[cls[0] : cls[1]].startswith("class A:")
    assert enclosing_scope(doc, text.index("y = 2")) is None
    # at the very end of an indentation-based body: still inside
    end = text.index("return x") + len("return x")
    assert enclosing_scope(doc, end) == fn


def test_enclosing_scope_braces_and_closures() -> None:
    text, offset = at("function outer() {\n  const g = (a) => {\n    return a<|cursor|>;\n  };\n}\nlet z = 1;\n")
    doc = doc_for("javascript", text)
    inner = enclosing_scope(doc, offset)
    assert inner is not None and text[inner[0] : inner[1]].startswith("(a) =>")
    outer_end = text.index("}\nlet") + 1
    assert enclosing_scope(doc, outer_end) is None  # right after the closing brace
    block = enclosing_scope(doc, offset, "block")
    assert block is not None and text[block[0] : block[1]].startswith("{\n    return a")


def test_find_holes_range_and_order() -> None:
    text = "def f():\n    ...\n\ndef g():\n    # TODO: g\n    pass\n"
    doc = doc_for("python", text)
    all_holes = find_holes(doc, 0, len(text))
    assert [text[s:e] for s, e in all_holes] == ["...", "# TODO: g", "pass"]
    g = text.index("def g")
    assert [text[s:e] for s, e in find_holes(doc, g, len(text))] == ["# TODO: g", "pass"]
    # a hole only partly inside the range is left out
    assert find_holes(doc, 0, text.index("...") + 2) == []


def test_find_holes_unicode_offsets() -> None:
    text = "fn f() -> &'static str {\n    // 中文 😀\n    todo!()\n}\n"
    doc = doc_for("rust", text)
    holes = find_holes(doc, 0, len(text))
    assert [text[s:e] for s, e in holes] == ["todo!()"]


# -- middle checks -------------------------------------------------------------------------

CHECK_CASES = [
    # lang, prefix, good middle, bad middle, suffix
    ("python", "def f(x):\n    return ", "x + 1", "x + (1", "\n\nprint(f(2))\n"),
    ("python", "items = [", "1, 2, 3", "1, 2, 3]]", "]\n"),
    ("javascript", "function f(a) {\n  ", "return a * 2;", "return a * 2; }", "\n}\n"),
    ("typescript", "const xs: number[] = [", "1, 2", "1, (2", "];\n"),
    ("rust", "fn f() -> i32 {\n    ", "let x = 1;\n    x", "let x = {1;\n    x", "\n}\n"),
    ("go", "package p\n\nfunc f() int {\n\t", "return 1", "return (1", "\n}\n"),
    ("c", "int f(void) {\n    ", "return 1;", "return 1;}", "\n}\n"),
    ("java", "class A {\n    int f() {\n        ", "return 1;", "return [1;", "\n    }\n}\n"),
    ("lua", "local function f()\n  ", "return {1, 2}", "return {1, 2", "\nend\n"),
    ("json", '{"a": 1,\n "b": [', "1, 2", "1, [2", "]}\n"),
]


@pytest.mark.parametrize("lang, prefix, good, bad, suffix", CHECK_CASES)
def test_syntax_and_bracket_checks(lang: str, prefix: str, good: str, bad: str, suffix: str) -> None:
    spec = registry().get(lang)
    assert spec is not None
    assert new_syntax_errors(spec, prefix, good, suffix) == 0
    assert brackets_balanced(spec, prefix, good, suffix)
    assert not brackets_balanced(spec, prefix, bad, suffix)
    assert new_syntax_errors(spec, prefix, bad, suffix) > 0


def test_new_syntax_errors_is_relative() -> None:
    spec = registry().get("python")
    assert spec is not None
    # the document is already broken elsewhere; a good middle adds nothing
    prefix, suffix = "x = (\n\ndef f():\n    return ", "\n"
    assert new_syntax_errors(spec, prefix, "1", suffix) == 0
    # fixing an error never goes below zero
    assert new_syntax_errors(spec, "x = (1", ")", "\n") == 0


def test_bracket_delta_skips_strings_and_comments() -> None:
    py = registry().get("python")
    js = registry().get("javascript")
    bash = registry().get("bash")
    assert py is not None and js is not None and bash is not None
    assert bracket_delta(py, "x = f('(', \"[\")  # ((( \n") == {"(": 0, "[": 0, "{": 0}
    assert bracket_delta(py, 'x = f"{a[0]}" + (') == {"(": 1, "[": 0, "{": 0}
    assert bracket_delta(js, "const s = `(${f(a)}`; /* { */ g(") == {"(": 1, "[": 0, "{": 0}
    assert bracket_delta(bash, 'echo "((" $(ls) ]') == {"(": 0, "[": -1, "{": 0}
    assert brackets_balanced(js, "f(", "'((('", ")")


def test_line_tables_follow_edits() -> None:
    rng = random.Random(7)
    text = "a😀\nbc\n\n中文 x\n" * 5
    doc = doc_for("python", text)
    doc.byte_of(len(text))  # build the tables so that updates splice them
    for _ in range(60):
        a = rng.randint(0, len(text))
        b = min(len(text), a + rng.randint(0, 5))
        text = text[:a] + rng.choice(["", "\n", "😀\n中", "x", "\n\n", "é"]) + text[b:]
        doc.update(text)
        lines = text.split("\n")
        assert doc.line_count == len(lines)
        for i, line in enumerate(lines):
            assert doc.line_text(i) == line
        for offset in range(0, len(text) + 1, 3):
            assert doc.byte_of(offset) == len(text[:offset].encode("utf-8"))
            assert doc.offset_of(doc.byte_of(offset)) == offset


def test_random_offsets_and_budgets_keep_invariants() -> None:
    """Every fixture, random cursors and budgets: the API never fails and the cut stays valid."""
    rng = random.Random(99)
    for path in FIXTURE_FILES:
        doc, _, _ = _load(path)
        text = doc.text
        for _ in range(8):
            offset = rng.randint(0, len(text))
            budget = rng.choice([0, 5, 30, 80, 400])
            invoked = rng.random() < 0.3
            mode = completion_mode(doc, offset, invoked)
            assert mode in ("none", "single", "multi")
            cut = cut_context(doc, offset, len, budget, invoked)
            assert cut.mode == mode
            _check_cut_invariants(doc, offset, cut, len, budget)
            scope = enclosing_scope(doc, offset)
            assert scope is None or scope[0] <= offset <= scope[1]
            holes = find_holes(doc, 0, len(text))
            assert all(a < b <= c for (a, b), (c, _) in zip(holes, holes[1:]))
