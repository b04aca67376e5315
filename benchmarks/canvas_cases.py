"""Held-out cases for the canvas operations: Rewrite selection and Fill holes (docs/canvas.md).

Both benchmarks (``benchmarks/rewrite.py``, ``benchmarks/fill_holes.py``) cut their cases from
the corpus's held-out packages (``model/heldout.py``: files no training run saw), Python,
JavaScript and TypeScript, only from files that parse without errors (tree-sitter). Files are
split in two **cuts** by a hash of their package and path: ``dev`` (used to choose methods and
thresholds) and ``test`` (used only to report), so dev and test cases never share a file; each
cut also has its own seed.

Rewrite cases (``rewrite_cases``): a selection of one line (or, one time in four, two lines)
inside a function (from the first line's indentation to the end of the last line's text), with
one realistic corruption of kind:

* ``misspell``: an identifier used elsewhere in the file, one character dropped, doubled,
  swapped with its neighbour or replaced by a keyboard neighbour (the result is no name of
  the file, no keyword);
* ``wrong_ident``: an identifier replaced by another name that occurs in the file within 40
  lines;
* ``drop_token``: one token removed (whitespace it leaves doubled is removed too);
* ``extra_token``: one of two neighbouring tokens repeated between them (``a..b``,
  ``return return x``);
* ``swap``: two adjacent tokens swapped;
* ``wrong_operator``: an operator replaced by another of its family (comparison, arithmetic,
  augmented assignment, logical);
* ``wrong_literal``: a number changed (one digit, or 0 <-> 1), a boolean flipped, or a string
  literal replaced by another string literal of the file;

and ``clean`` selections (no corruption) for the harm rate. Tokens are lexemes of a small
regex lexer (identifiers, numbers, strings, operators, punctuation); comments are never touched.

Fill-holes cases (``fill_cases``): a function (3-60 lines) with 1-3 of its single-line
statements (a line that is a whole statement, not one that opens or closes a block) replaced
by the language's hole marker that the server detects (``dg_lsp.context.find_holes``:
``pass`` in Python, ``// TODO`` in JavaScript and TypeScript), indentation kept.
"""

from __future__ import annotations

import hashlib
import keyword
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from model.heldout import LANGS, _File, load_records

CUTS = ("dev", "test")
CUT_SEEDS = {"dev": 2026, "test": 7}
CORRUPTIONS = ("misspell", "wrong_ident", "drop_token", "extra_token", "swap", "wrong_operator", "wrong_literal")
REWRITE_KINDS = CORRUPTIONS + ("clean",)
HOLE_MARKER = {"python": "pass", "javascript": "// TODO", "typescript": "// TODO"}

JS_KEYWORDS = set("""break case catch class const continue debugger default delete do else export extends false
finally for function if import in instanceof let new null return super switch this throw true try typeof
undefined var void while with yield async await of static get set type interface enum implements private
protected public readonly declare namespace abstract as any boolean number string unknown never object
keyof infer is""".split())
PY_KEYWORDS = set(keyword.kwlist) | set(keyword.softkwlist) | {"self", "cls", "print", "len", "str", "int",
                                                                "list", "dict", "set", "tuple", "isinstance"}

_LEX = re.compile(r"""
    (?P<comment>\#[^\n]*|//[^\n]*)
  | (?P<string>[rbfuRBFU]{0,2}(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|`(?:[^`\\]|\\.)*`)
  | (?P<number>0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_$][\w$]*)
  | (?P<op>===|!==|\*\*=|//=|>>=|<<=|\.\.\.|=>|==|!=|<=|>=|&&|\|\||\?\?|\+=|-=|\*=|/=|%=|\*\*|//|<<|>>|->|\+\+|--
         |[-+*/%=<>!&|^~?:.,;()\[\]{}@])
  | (?P<ws>\s+)
  | (?P<other>.)
""", re.VERBOSE)

OPERATOR_FAMILIES = {
    "python": [["==", "!=", "<", ">", "<=", ">="], ["+", "-", "*", "/", "%"], ["+=", "-=", "*=", "/="],
               ["and", "or"], ["is", "in"]],
    "js": [["===", "!==", "<", ">", "<=", ">="], ["==", "!="], ["+", "-", "*", "/", "%"], ["+=", "-=", "*=", "/="],
           ["&&", "||", "??"]],
}
KEYBOARD = {c: n for c, n in zip("qwertyuiopasdfghjklzxcvbnm",
                                  ["wa", "qes", "wrd", "etf", "ryg", "tuh", "yij", "uok", "ipl", "ol", "qsz", "awdx",
                                   "sefc", "drgv", "fthb", "gyjn", "hukm", "jil", "kop", "zxa", "zcs", "xvd", "cbf",
                                   "vng", "bmh", "nj"])}


@dataclass(frozen=True)
class Lexeme:
    kind: str
    start: int
    end: int
    text: str


def lex(text: str) -> list[Lexeme]:
    """Non-whitespace lexemes of ``text`` (one line or a few), in order."""
    out = []
    for m in _LEX.finditer(text):
        kind = m.lastgroup or "other"
        if kind != "ws":
            out.append(Lexeme(kind, m.start(), m.end(), m.group()))
    return out


def cut_of(rec: dict) -> str:
    """``dev`` or ``test``: a stable hash of the file's package and path."""
    h = hashlib.sha1(f"{rec['source']}/{rec['path']}".encode()).digest()
    return "dev" if h[0] % 2 == 0 else "test"


def keywords(lang: str) -> set[str]:
    return PY_KEYWORDS if lang == "python" else JS_KEYWORDS


def _function_spans(text: str, lang: str) -> list[tuple[int, int]]:
    """(start, end) code-point offsets of function nodes (the server's ``@scope.function``)."""
    from dg_lsp.context import SyntaxDocument, registry
    from dg_lsp.context.syntax import captures, iter_captures

    doc = SyntaxDocument(registry().get(lang), text)
    caps = captures(doc.spec.query("scopes"), doc.tree.root_node, 0, len(doc.data))
    spans = []
    for _, node in iter_captures(caps, "scope.function"):
        spans.append((doc.offset_of(node.start_byte), doc.offset_of(node.end_byte)))
    return sorted(set(spans))


def _identifiers(text: str, lang: str) -> list[tuple[int, str]]:
    """(offset, name) of every identifier node of the file (tree-sitter; not comments or strings)."""
    from model.eval import parser_for

    data = text.encode("utf-8")
    tree = parser_for(lang).parse(data)
    out, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.child_count == 0:
            if "identifier" in node.type:
                out.append((len(data[: node.start_byte].decode("utf-8")), data[node.start_byte: node.end_byte].decode()))
        else:
            stack.extend(node.children)
    return sorted(out)


class _Source:
    """A held-out file that parses cleanly: its lines, prose lines, functions and names."""

    def __init__(self, rec: dict):
        from model.eval import error_count

        self.rec = rec
        self.lang = rec["lang"]
        self.ok = error_count(rec["text"], self.lang) == 0
        if not self.ok:
            return
        self.f = _File(rec)
        self.text = rec["text"]
        self.functions = _function_spans(self.text, self.lang)
        self.words = _identifiers(self.text, self.lang)

    def line_of(self, offset: int) -> int:
        import bisect

        return bisect.bisect_right(self.f.starts, offset) - 1

    def in_function(self, i: int) -> tuple[int, int] | None:
        """The innermost function whose body holds line ``i`` (not its first line)."""
        a = self.f.starts[i]
        best = None
        for s, e in self.functions:
            if s < a and a + len(self.f.lines[i]) <= e and self.line_of(s) < i:
                if best is None or s > best[0]:
                    best = (s, e)
        return best


@dataclass(frozen=True)
class RewriteCase:
    cut: str
    lang: str
    source: str
    path: str
    text: str  # the author's file
    start: int  # the selection in the author's file
    end: int
    original: str  # the author's selection
    shown: str  # the selection as the user has it (corrupted, or the original for ``clean``)
    kind: str  # a corruption kind, or ``clean``
    detail: str = ""

    @property
    def doc_text(self) -> str:
        """The document as the editor has it: the file with the corrupted selection."""
        return self.text[: self.start] + self.shown + self.text[self.end:]

    def brief(self) -> dict:
        d = asdict(self)
        del d["text"]
        return d


def _names_near(src: _Source, a: int, b: int, lines: int = 40) -> set[str]:
    """Identifiers within ``lines`` lines of [a, b), outside it."""
    i, j = src.line_of(a), src.line_of(b)
    lo, hi = src.f.starts[max(0, i - lines)], src.f.starts[min(len(src.f.lines) - 1, j + lines)]
    return {w for o, w in src.words if lo <= o < hi and not (a <= o < b)}


def _word_count(src: _Source, w: str, a: int, b: int) -> int:
    return sum(1 for o, x in src.words if x == w and not (a <= o < b))


def _misspell(name: str, rng: random.Random) -> str:
    i = rng.randrange(len(name))
    op = rng.choice(("drop", "double", "swap", "key"))
    if op == "drop" and len(name) > 3:
        return name[:i] + name[i + 1:]
    if op == "double":
        return name[: i + 1] + name[i] + name[i + 1:]
    if op == "swap" and i + 1 < len(name) and name[i] != name[i + 1]:
        return name[:i] + name[i + 1] + name[i] + name[i + 2:]
    c = name[i]
    near = KEYBOARD.get(c.lower())
    if near:
        n = rng.choice(near)
        return name[:i] + (n.upper() if c.isupper() else n) + name[i + 1:]
    return name


def corrupt(src: _Source, a: int, b: int, kind: str, rng: random.Random) -> tuple[str, str] | None:
    """(corrupted selection, what changed) for the selection [a, b) of ``src``, or None."""
    sel = src.text[a:b]
    lx = [x for x in lex(sel) if x.kind != "comment"]
    kw = keywords(src.lang)
    if not lx:
        return None

    def put(x: Lexeme, new: str) -> str:
        return sel[: x.start] + new + sel[x.end:]

    idents = [x for x in lx if x.kind == "ident" and x.text not in kw]
    if kind == "misspell":
        cands = [x for x in idents if len(x.text) >= 3 and _word_count(src, x.text, a, b) >= 1]
        rng.shuffle(cands)
        names = {w for _, w in src.words}
        for x in cands:
            for _ in range(4):
                new = _misspell(x.text, rng)
                if new != x.text and re.fullmatch(r"[A-Za-z_$][\w$]*", new) and new not in names and new not in kw:
                    return put(x, new), f"{x.text} -> {new}"
        return None
    if kind == "wrong_ident":
        cands = [x for x in idents if _word_count(src, x.text, a, b) >= 1]
        rng.shuffle(cands)
        near = sorted(w for w in _names_near(src, a, b) if w not in kw and len(w) >= 2)
        for x in cands:
            others = [w for w in near if w != x.text]
            if others:
                new = rng.choice(others)
                return put(x, new), f"{x.text} -> {new}"
        return None
    if kind == "drop_token":
        if len(lx) < 2:
            return None
        x = rng.choice(lx)
        out = sel[: x.start] + sel[x.end:]
        if x.start > 0 and x.end < len(sel) and sel[x.start - 1] == " " and sel[x.end] == " ":
            out = sel[: x.start] + sel[x.end + 1:]
        out = out.strip() if out.strip() else out
        return (out, f"drop {x.text}") if out != sel and out.strip() else None
    if kind == "extra_token":
        i = rng.randrange(len(lx))
        x = lx[i]
        wordy = x.kind in ("ident", "number", "string")
        # repeat the lexeme right after itself (a space between two word-like ones)
        new = x.text + (" " if wordy else "") + x.text
        return put(x, new), f"repeat {x.text}"
    if kind == "swap":
        pairs = [(lx[i], lx[i + 1]) for i in range(len(lx) - 1) if lx[i].text != lx[i + 1].text]
        if not pairs:
            return None
        x, y = rng.choice(pairs)
        out = sel[: x.start] + y.text + sel[x.end: y.start] + x.text + sel[y.end:]
        return (out, f"swap {x.text} {y.text}") if out != sel else None
    if kind == "wrong_operator":
        fams = OPERATOR_FAMILIES["python" if src.lang == "python" else "js"]
        cands = []
        for x in lx:
            for fam in fams:
                if x.text in fam and (x.kind == "op" or x.text in ("and", "or", "is", "in")):
                    cands.append((x, fam))
        if not cands:
            return None
        x, fam = rng.choice(cands)
        new = rng.choice([o for o in fam if o != x.text])
        return put(x, new), f"{x.text} -> {new}"
    if kind == "wrong_literal":
        flips = {"True": "False", "False": "True", "true": "false", "false": "true"}
        cands = [x for x in lx if x.kind in ("number", "string") or x.text in flips]
        if not cands:
            return None
        x = rng.choice(cands)
        if x.text in flips:
            new = flips[x.text]
        elif x.kind == "number":
            digits = [i for i, c in enumerate(x.text) if c.isdigit()]
            if x.text in ("0", "1"):
                new = "1" if x.text == "0" else "0"
            else:
                i = rng.choice(digits)
                new = x.text[:i] + rng.choice([d for d in "0123456789" if d != x.text[i]]) + x.text[i + 1:]
                if new[0] == "0" and len(new) > 1 and new[1].isdigit():
                    return None
        else:
            pool = sorted({m.group() for m in re.finditer(r"'[^'\\\n]{1,30}'|\"[^\"\\\n]{1,30}\"", src.text)}
                          - {x.text})
            pool = [s for s in pool if s[0] == x.text[-1]]
            if not pool:
                return None
            new = rng.choice(pool)
        return put(x, new), f"{x.text} -> {new}"
    raise ValueError(kind)


def _selection(src: _Source, i: int, rng: random.Random) -> tuple[int, int] | None:
    """A one- or two-line selection starting at line ``i`` inside a function, or None."""
    f = src.f
    if not f.code_line(i) or src.in_function(i) is None:
        return None
    a, e = f.content(i)
    if not (6 <= e - a <= 120) or "\t" in f.lines[i]:
        return None
    if rng.random() < 0.25 and f.code_line(i + 1) and src.in_function(i + 1) == src.in_function(i):
        a2, e2 = f.content(i + 1)
        if e2 - a2 <= 120 and f.indent(i + 1) >= f.indent(i):
            e = e2
    return a, e


def sources(corpus: Path | Iterable[dict], cut: str, langs: Sequence[str] = LANGS) -> list[_Source]:
    out = []
    for rec in load_records(corpus):
        if rec["lang"] in langs and cut_of(rec) == cut:
            s = _Source(rec)
            if s.ok:
                out.append(s)
    return out


def rewrite_cases(corpus: Path | Iterable[dict], cut: str, per_kind: int = 20, langs: Sequence[str] = LANGS,
                  kinds: Sequence[str] = REWRITE_KINDS, srcs: list[_Source] | None = None) -> list[RewriteCase]:
    """``per_kind`` cases per (language, kind) of the cut, deterministic (module docstring)."""
    srcs = srcs if srcs is not None else sources(corpus, cut, langs)
    seed = CUT_SEEDS[cut]
    out: list[RewriteCase] = []
    for lang in langs:
        files = [s for s in srcs if s.lang == lang]
        cands = [(k, i) for k, s in enumerate(files) for i in range(len(s.f.lines)) if s.f.code_line(i)]
        for kind in kinds:
            rng = random.Random(f"{seed}/{cut}/{lang}/{kind}")
            order = rng.sample(range(len(cands)), len(cands))
            got = 0
            for j in order:
                if got >= per_kind:
                    break
                k, i = cands[j]
                s = files[k]
                span = _selection(s, i, rng)
                if span is None:
                    continue
                a, b = span
                if kind == "clean":
                    shown, detail = s.text[a:b], ""
                else:
                    c = corrupt(s, a, b, kind, rng)
                    if c is None or c[0] == s.text[a:b]:
                        continue
                    shown, detail = c
                out.append(RewriteCase(cut, lang, s.rec["source"], s.rec["path"], s.text, a, b, s.text[a:b], shown,
                                       kind, detail))
                got += 1
    return out


def rewrite_benchmark_cases(corpus: Path | Iterable[dict], cut: str, per_kind: int = 20, clean: int = 60,
                            srcs: list[_Source] | None = None) -> list[RewriteCase]:
    """The Rewrite benchmarks' cases: ``per_kind`` corrupted selections per (language, kind) of
    ``CORRUPTIONS``, then ``clean`` clean ones per language (``benchmarks/rewrite.py``,
    ``rewrite_costs.py``, ``doubt.py``)."""
    srcs = srcs if srcs is not None else sources(corpus, cut)
    return rewrite_cases(corpus, cut, per_kind=per_kind, kinds=CORRUPTIONS, srcs=srcs) + \
        rewrite_cases(corpus, cut, per_kind=clean, kinds=("clean",), srcs=srcs)


# ----------------------------------------------------------------------------- fill holes
@dataclass(frozen=True)
class FillCase:
    cut: str
    lang: str
    source: str
    path: str
    text: str  # the author's file
    region: tuple[int, int]  # the function, in the author's file
    holes: tuple[tuple[int, int], ...]  # the statements replaced (author's file offsets, line content)
    marker: str
    doc_text: str = field(default="")  # the file with the markers (set by ``fill_cases``)

    @property
    def middles(self) -> list[str]:
        return [self.text[a:b] for a, b in self.holes]

    def brief(self) -> dict:
        d = asdict(self)
        del d["text"], d["doc_text"]
        d["middles"] = self.middles
        return d


def _statement_lines(src: _Source, region: tuple[int, int]) -> list[int]:
    """Lines of the function body that are one whole simple statement (tree-sitter)."""
    from model.eval import parser_for

    f = src.f
    first, last = src.line_of(region[0]), src.line_of(region[1] - 1)
    data = src.text.encode("utf-8")
    tree = parser_for(src.lang).parse(data)
    out = []
    for i in range(first + 1, last + 1):
        if not f.code_line(i) or "\t" in f.lines[i]:
            continue
        a, e = f.content(i)
        if not (4 <= e - a <= 100):
            continue
        text = src.text[a:e]
        if text.endswith((":", "{", "(", "[", ",", "\\")) or text.startswith(("}", ")", "]", "@", "else", "elif",
                                                                                  "case ", "default")):
            continue
        ab, eb = len(src.text[:a].encode("utf-8")), len(src.text[:e].encode("utf-8"))
        node = tree.root_node.descendant_for_byte_range(ab, eb)
        if node is None or node.start_byte != ab or node.end_byte != eb:
            continue  # part of a longer statement, or several
        stmt = node
        while stmt.parent is not None and stmt.parent.start_byte == ab and stmt.parent.end_byte == eb:
            stmt = stmt.parent
        if not (stmt.type.endswith("statement") or stmt.type in ("lexical_declaration", "variable_declaration")):
            continue
        if stmt.type in ("if_statement", "for_statement", "while_statement", "try_statement", "with_statement",
                         "function_definition", "class_definition", "block", "statement_block"):
            continue
        out.append(i)
    return out


def fill_cases(corpus: Path | Iterable[dict], cut: str, per_lang: int = 40, langs: Sequence[str] = LANGS,
               srcs: list[_Source] | None = None) -> list[FillCase]:
    """``per_lang`` functions per language of the cut, each with 1-3 holes (module docstring)."""
    from dg_lsp.context import SyntaxDocument, find_holes, registry

    srcs = srcs if srcs is not None else sources(corpus, cut, langs)
    seed = CUT_SEEDS[cut]
    out: list[FillCase] = []
    for lang in langs:
        rng = random.Random(f"{seed}/{cut}/{lang}/fill")
        funcs = [(s, r) for s in srcs if s.lang == lang for r in s.functions
                 if 3 <= s.line_of(r[1] - 1) - s.line_of(r[0]) <= 60]
        rng.shuffle(funcs)
        got = 0
        for s, region in funcs:
            if got >= per_lang:
                break
            lines = _statement_lines(s, region)
            if not lines:
                continue
            k = min(len(lines), rng.choice((1, 2, 3)))
            pick = sorted(rng.sample(lines, k))
            holes = tuple(s.f.content(i) for i in pick)
            marker = HOLE_MARKER[lang]
            doc = s.text
            for a, b in reversed(holes):
                doc = doc[:a] + marker + doc[b:]
            # the markers must be what the server finds, in the function
            shift = [sum(len(marker) - (b - a) for a, b in holes[:j]) for j in range(len(holes))]
            want = [(a + d, a + d + len(marker)) for (a, _), d in zip(holes, shift)]
            r0 = region[0]
            r1 = region[1] + sum(len(marker) - (b - a) for a, b in holes)
            found = find_holes(SyntaxDocument(registry().get(lang), doc), r0, r1)
            if found != want:
                continue
            out.append(FillCase(cut, lang, s.rec["source"], s.rec["path"], s.text, region, holes, marker, doc))
            got += 1
    return out
