"""Held-out completion test: does a completion help where an editor asks for one?

Holes are cut from the corpus's ``heldout`` split (whole packages no training run sees, see
``model/corpus.py``: ``HOLDOUT_DISTS`` / ``HOLDOUT_NPM``), in Python, JavaScript and TypeScript,
in three kinds, the way an editor meets them:

* ``rest_of_line``: the cursor is on a non-blank code line, after its indentation and at least
  one character into its text, before its last character; the middle is the rest of the line
  (without the newline). The cut is at a token boundary (the character after the cursor is not
  whitespace, and the characters on either side are not both identifier characters) whenever the
  line has one, else anywhere in that range.
* ``line``: a whole non-blank line: the cursor is at its indentation (the line is left holding
  only the indentation, as after pressing Enter in an auto-indenting editor) and the middle is the
  line's text after the indentation, trailing spaces and **the newline excluded** (the newline
  stays in the suffix: the line the user is on already exists).
* ``block_lines``: 2-4 consecutive lines inside a block: the first line is indented, non-blank and
  does not start with a closing bracket, the last is non-blank, and no non-blank line is indented
  less than the first (the lines stay in the block). The cursor is at the first line's
  indentation; the middle runs from there to the end of the last line's text (its newline
  excluded, as for ``line``).

Lines that are prose are never a hole's (first) line: comment lines, and lines that start inside a
string literal or are a string literal (docstrings, continuation lines of multi-line strings), found
with tree-sitter. Holes whose middle is longer than ``MAX_MIDDLE`` (160) characters or has no letter
or digit (only punctuation / blank) are skipped. The cut is deterministic: per (language, kind) the
candidate lines of all files (in corpus order) are visited in the order of a permutation drawn from
``random.Random(f"{seed}/{lang}/{kind}")`` until ``per_kind`` holes are found.

Answers and scores (``score``):

* ``exact``: answer == middle ignoring surrounding whitespace (``model.eval.exact``);
* ``useful``: what a user accepts with Tab and keeps typing: with leading and trailing whitespace
  stripped from the answer and from the middle (``str.strip`` on both, the same on both sides),
  the answer is non-empty, the middle starts with it, and it is at least ``MIN_USEFUL`` (4)
  characters long or all of the middle. Inner whitespace (continuation lines' indentation) must
  match. A stripped leading space is not held against the answer (``x = 1`` cut after ``x``: the
  answer ``= 1`` for the middle `` = 1`` is useful);
* ``empty``: the answer is blank (nothing shown);
* most frequent answer (``most_frequent``): the share of the single most frequent answer (stripped;
  the blank answer counts as one) among a group's holes, and that answer: degenerate output;
* ``whole_file_syntax``: the file with the answer (replacing what the server says it replaces)
  parses with zero ERROR/MISSING nodes (tree-sitter, ``model.eval.error_count``); counted only on
  holes whose file with the author's text parses with zero errors (all of them in the held-out
  split as built here), and only for non-blank answers;
* ``no_new_errors``: no more ERROR/MISSING nodes than with the author's text
  (``model.eval.syntax_ok``), non-blank answers only;
* cross-entropy (``middle_cross_entropy``): mean nats per token of the true middle's canvas (its
  first ``canvas_length - 1`` tokens, then EOS) under the model after one decoder step (no
  self-conditioning, no sampling, no banned tokens) from the engine's starting canvas:
  uniform random tokens (seeded per hole), or all ``<mask>`` when the checkpoint's
  generation_config.json says ``"canvas_init": "mask"`` (``canvas_init_of``), averaged over a
  group's holes. It depends on the prompt, not on an answer.

Answers (``run_engine``): the prompt is the server's (``dg_lsp.context.cut_context`` at the cursor of
the document without the middle, ``invoked=True``, with the engine's default prompt budget,
``dg_lsp.service.prompt_budget``). ``raw`` is ``Engine.infill``'s text for it (one canvas of the
model's length, the checkpoint's sampler settings, seed ``Settings.seed``); ``post`` is ``raw``
after the server's post-processing: ``dg_lsp.postprocess.finish`` with the completion mode
(``completion_mode``), the validation window (``dg_lsp.service.check_window``) and the token
boundaries (``Generation.boundaries``) the service uses, on a ``SyntaxDocument`` built as
``dg-lsp complete`` builds it. The service's own generation (a 16-token canvas for a single line,
lexical constraints, repair) is not in ``post``: ``benchmarks/heldout_server.py`` measures that
through the real server.
"""

from __future__ import annotations

import bisect
import json
import random
import re
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

KINDS = ("rest_of_line", "line", "block_lines")
LANGS = ("python", "javascript", "typescript")
MAX_MIDDLE = 160
MIN_USEFUL = 4
DEFAULT_PER_KIND = 67  # 3 languages x 3 kinds x 67 = 603 holes
DEFAULT_SEED = 1234
LANG_BY_SUFFIX = {".py": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".ts": "typescript"}
# tree-sitter node types that hold prose (comments, string literals)
PROSE_QUERY = {
    "python": "(comment) @comment (string) @string",
    "javascript": "(comment) @comment (string) @string (template_string) @string",
    "typescript": "(comment) @comment (string) @string (template_string) @string",
}


@dataclass(frozen=True)
class Hole:
    lang: str
    source: str
    path: str
    text: str  # the whole file, with the author's middle
    offset: int  # cursor (code points into ``text``, and into ``doc_text``)
    middle: str
    kind: str

    @property
    def prefix(self) -> str:
        return self.text[: self.offset]

    @property
    def suffix(self) -> str:
        return self.text[self.offset + len(self.middle):]

    @property
    def doc_text(self) -> str:
        """The document as the editor has it: the file without the middle."""
        return self.prefix + self.suffix

    def brief(self) -> dict:
        d = asdict(self)
        del d["text"]
        return d


# ----------------------------------------------------------------------------- records
def records_from_dir(root: Path) -> list[dict]:
    """Corpus-like records from the source files under ``root`` (test fixtures)."""
    out = []
    for p in sorted(Path(root).rglob("*")):
        lang = LANG_BY_SUFFIX.get(p.suffix)
        if p.is_file() and lang and not p.name.endswith(".d.ts"):
            out.append({"source": root.name, "path": p.relative_to(root).as_posix(), "lang": lang,
                        "text": p.read_text(encoding="utf-8")})
    return out


def load_records(corpus: Path | Iterable[dict]) -> list[dict]:
    """The held-out split of a ``model.corpus`` directory, or the given records."""
    if isinstance(corpus, (str, Path)):
        from model.corpus import iter_corpus

        return list(iter_corpus(Path(corpus), "heldout"))
    return list(corpus)


# ----------------------------------------------------------------------------- cutting
_WORD = re.compile(r"\w")


def _is_word(ch: str) -> bool:
    return bool(_WORD.match(ch))


_CLOSERS = set(")]}")


def _has_content(middle: str) -> bool:
    return any(ch.isalnum() for ch in middle)


class _File:
    """Lines of one record with offsets and which lines are prose (comment / string)."""

    def __init__(self, rec: dict):
        self.rec = rec
        self.text: str = rec["text"]
        self.lines = self.text.split("\n")
        self.starts = [0]
        for ln in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(ln) + 1)
        self.prose = self._prose_lines()

    def indent(self, i: int) -> int:
        ln = self.lines[i]
        return len(ln) - len(ln.lstrip(" \t"))

    def content(self, i: int) -> tuple[int, int]:
        """Offsets of line ``i``'s text: after the indentation, before trailing whitespace."""
        ln = self.lines[i]
        return self.starts[i] + self.indent(i), self.starts[i] + len(ln.rstrip())

    def _prose_lines(self) -> set[int]:
        import tree_sitter

        from model.eval import parser_for

        lang = self.rec["lang"]
        parser = parser_for(lang)
        data = self.text.encode("utf-8")
        tree = parser.parse(data)
        query = tree_sitter.Query(parser.language, PROSE_QUERY[lang])
        spans = sorted(((n.start_byte, -n.end_byte, kind) for kind, nodes in
                        tree_sitter.QueryCursor(query).captures(tree.root_node).items() for n in nodes))
        outer: list[tuple[int, int, str]] = []  # outermost spans only: they do not overlap
        for start, neg_end, kind in spans:
            if not outer or start >= outer[-1][1]:
                outer.append((start, -neg_end, kind))
        starts = [o[0] for o in outer]
        out: set[int] = set()
        b = 0
        for i, ln in enumerate(self.lines):
            line_bytes = len(ln.encode("utf-8"))
            if ln.strip():
                ind = self.indent(i)
                a = b + len(ln[:ind].encode("utf-8"))
                e = b + len(ln.rstrip().encode("utf-8"))
                j = bisect.bisect_right(starts, a) - 1
                if j >= 0:
                    s, t, kind = outer[j]
                    if s <= a < t and (kind == "comment" or s < a or e <= t):
                        out.add(i)  # a comment line, a line inside a string, or a string (a docstring)
            b += line_bytes + 1
        return out

    def code_line(self, i: int) -> bool:
        return 0 <= i < len(self.lines) and bool(self.lines[i].strip()) and i not in self.prose


def _rest_of_line(f: _File, i: int, rng: random.Random) -> tuple[int, str] | None:
    a, e = f.content(i)
    if e - a < 2:
        return None
    text = f.text
    cuts = range(a + 1, e)
    bounds = [m for m in cuts if not text[m].isspace() and not (_is_word(text[m - 1]) and _is_word(text[m]))]
    m = rng.choice(bounds) if bounds else rng.choice(list(cuts))
    return m, text[m:e]


def _line(f: _File, i: int, rng: random.Random) -> tuple[int, str] | None:  # noqa: ARG001 - same signature
    a, e = f.content(i)
    return a, f.text[a:e]


def _block_lines(f: _File, i: int, rng: random.Random) -> tuple[int, str] | None:
    ind = f.indent(i)
    if ind == 0 or f.lines[i].lstrip()[:1] in _CLOSERS:
        return None
    k = rng.choice((2, 3, 4))
    for n in range(k, 1, -1):  # fall back to fewer lines when the block ends first
        last = i + n - 1
        if last >= len(f.lines) or not f.lines[last].strip():
            continue
        if any(f.lines[j].strip() and f.indent(j) < ind for j in range(i + 1, last + 1)):
            continue
        a, _ = f.content(i)
        _, e = f.content(last)
        return a, f.text[a:e]
    return None


CUTTERS: dict[str, Callable[[_File, int, random.Random], tuple[int, str] | None]] = {
    "rest_of_line": _rest_of_line, "line": _line, "block_lines": _block_lines,
}


def cut_heldout_holes(corpus: Path | Iterable[dict], per_kind: int = DEFAULT_PER_KIND, seed: int = DEFAULT_SEED,
                      langs: Sequence[str] = LANGS, kinds: Sequence[str] = KINDS) -> list[Hole]:
    """``per_kind`` holes of each kind for each language (fewer where the files have fewer), in
    (language, kind) order; a pure function of the records and the seed (module docstring)."""
    records = load_records(corpus)
    holes: list[Hole] = []
    for lang in langs:
        files = [_File(r) for r in records if r["lang"] == lang]
        cands = [(fi, i) for fi, f in enumerate(files) for i in range(len(f.lines)) if f.code_line(i)]
        for kind in kinds:
            rng = random.Random(f"{seed}/{lang}/{kind}")
            order = rng.sample(range(len(cands)), len(cands))
            got = 0
            for j in order:
                if got >= per_kind:
                    break
                fi, i = cands[j]
                f = files[fi]
                cut = CUTTERS[kind](f, i, rng)
                if cut is None:
                    continue
                offset, middle = cut
                if not middle or len(middle) > MAX_MIDDLE or not _has_content(middle):
                    continue
                holes.append(Hole(lang, f.rec["source"], f.rec["path"], f.text, offset, middle, kind))
                got += 1
    return holes


# ----------------------------------------------------------------------------- scoring
def exact(answer: str, middle: str) -> bool:
    from model.eval import exact as _exact

    return _exact(answer, middle)


def useful(answer: str, middle: str) -> bool:
    """A non-empty prefix of the middle, at least ``MIN_USEFUL`` characters or all of it, both
    compared with leading and trailing whitespace stripped (module docstring)."""
    a, m = answer.strip(), middle.strip()
    return bool(a) and m.startswith(a) and (len(a) >= MIN_USEFUL or a == m)


def most_frequent(answers: Sequence[str]) -> tuple[float, str]:
    """(share, answer) of the single most frequent answer (stripped; ties: the first seen)."""
    if not answers:
        return 0.0, ""
    counts = Counter(a.strip() for a in answers)
    best = max(counts.items(), key=lambda kv: kv[1])  # max keeps the first of equal counts
    return best[1] / len(answers), best[0]


_AUTHOR_ERRORS: dict[tuple[str, str, int], int] = {}


def author_errors(hole: Hole) -> int:
    """ERROR/MISSING nodes of the file with the author's text (cached per file)."""
    from model.eval import error_count

    key = (hole.lang, hole.path, hash(hole.text))
    if key not in _AUTHOR_ERRORS:
        _AUTHOR_ERRORS[key] = error_count(hole.text, hole.lang)
    return _AUTHOR_ERRORS[key]


def with_answer(hole: Hole, answer: str, replace: int = 0) -> str:
    """The file with ``answer`` at the cursor, replacing ``replace`` characters after it."""
    return hole.prefix + answer + hole.suffix[replace:]


def whole_file_syntax(hole: Hole, answer: str, replace: int = 0) -> bool | None:
    """The file with the answer parses with zero errors; None where the author's file does not."""
    from model.eval import error_count

    if author_errors(hole) != 0:
        return None
    return error_count(with_answer(hole, answer, replace), hole.lang) == 0


def no_new_errors(hole: Hole, answer: str, replace: int = 0) -> bool:
    """No more ERROR/MISSING nodes than with the author's text (``model.eval.syntax_ok``)."""
    from model.eval import error_count, syntax_ok

    if replace == 0:
        return syntax_ok(hole.prefix, answer, hole.suffix, hole.middle, hole.lang)
    return error_count(with_answer(hole, answer, replace), hole.lang) <= author_errors(hole)


def score(hole: Hole, answer: str, replace: int = 0) -> dict:
    """Per-hole scores of one answer."""
    blank = not answer.strip()
    return {
        "exact": exact(answer, hole.middle),
        "useful": useful(answer, hole.middle),
        "empty": blank,
        "whole_file_syntax": None if blank else whole_file_syntax(hole, answer, replace),
        "no_new_errors": None if blank else no_new_errors(hole, answer, replace),
    }


# ----------------------------------------------------------------------------- the model
def canvas_init_of(model: Any) -> str:
    """``"mask"`` when the checkpoint's generation_config.json has ``"canvas_init": "mask"``, else
    ``"uniform"``. ``model``: a checkpoint directory, an ``Engine``, or a generation config dict."""
    if isinstance(model, dict):
        gen = model
    else:
        root = Path(model) if isinstance(model, (str, Path)) else Path(model.loaded.files.root)
        path = root / "generation_config.json"
        gen = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return "mask" if gen.get("canvas_init") == "mask" else "uniform"


def starting_canvas(engine: Any, init: str, seed: int):
    """(1, canvas_length) token ids: uniform random (seeded) or all ``<mask>``."""
    import torch

    n = engine.canvas_length
    if init == "mask":
        from dg_lsp.engine.prompt import MASK

        vocab = engine.tokenizer.get_vocab()
        if MASK not in vocab:
            raise ValueError("canvas_init 'mask' but the tokenizer has no <mask> token")
        return torch.full((1, n), vocab[MASK], dtype=torch.long)
    if init != "uniform":
        raise ValueError(f"unknown canvas init {init!r}")
    return torch.randint(0, engine.vocab_size, (1, n), generator=torch.Generator().manual_seed(seed))


def truth_ids(engine: Any, middle: str) -> list[int]:
    """The true middle's canvas: its first canvas_length - 1 tokens, then EOS."""
    from dg_lsp.engine.prompt import encode_text

    return encode_text(engine.tokenizer, middle)[: engine.canvas_length - 1] + [engine.eos_id]


def middle_cross_entropy(engine: Any, prompt_ids: list[int], middle: str, canvas) -> float:
    """Mean nats per token of the true middle's canvas after one decoder step from ``canvas``
    (the fast path's encoder + one step, as benchmarks/context_budget.py; the reference model
    where the fast path does not cover the checkpoint)."""
    import torch

    truth = torch.tensor(truth_ids(engine, middle))
    n = len(truth)
    with torch.inference_mode():
        fm = engine.fast
        if fm is not None:
            cache = fm.new_cache()
            fm.encode(list(prompt_ids), cache)
            logits = fm.step_fn(cache, canvas.shape[1])(canvas.to(engine.device), None)[0, :n]
        else:
            engine.cache.reset()
            kv, _ = engine.cache.prepare(list(prompt_ids), engine.device)
            logits = engine._step_fn(kv, len(prompt_ids))(canvas.to(engine.device), None)[0, :n]
            engine.cache.reset()
    return -logits.float().log_softmax(-1)[torch.arange(n), truth.to(logits.device)].mean().item()


class CausalScorer:
    """The encoder's next-token cross-entropy of the true middle (and its EOS) after the prompt:
    how well the checkpoint predicts the middle causally, left to right (what a next-token loss
    trains, and what a causal draft reads). transformers' weights through the lean forward."""

    def __init__(self, model_dir: str | Path):
        from dg_lsp.engine.loader import load_checkpoint
        from dg_lsp.training.lean import LeanForward

        self.model = load_checkpoint(str(model_dir), device="cpu", dtype="float32").model.eval()
        self.fwd = LeanForward(self.model)

    def __call__(self, engine: Any, prompt_ids: list[int], middle: str) -> float:
        import torch
        import torch.nn.functional as F

        truth = truth_ids(engine, middle)
        truth = truth[: truth.index(engine.eos_id) + 1] if engine.eos_id in truth else truth
        ids = torch.tensor([list(prompt_ids) + truth])
        with torch.inference_mode():
            h = self.fwd.encode(ids, want_hidden=True).hidden[0, len(prompt_ids) - 1 : -1]
            z = self.fwd.logits(h)
        return F.cross_entropy(z, torch.tensor(truth)).item()


def run_engine(engine: Any, holes: Sequence[Hole], *, settings: Any = None, canvas_init: str | None = None,
               seed: int = 0, progress: Callable[[int, int], None] | None = None,
               causal: "CausalScorer | None" = None,
               sources: "Callable[[Hole], Sequence[tuple[str, str]]] | None" = None,
               cross_file_tokens: int | None = None,
               start: "Callable[[Hole, str, str], str | None] | None" = None,
               start_strength: float = 0.5) -> list[dict]:
    """Raw and post-processed answers and the true middle's cross-entropy for each hole (and,
    with ``causal``, its causal cross-entropy).

    ``sources``: the other files (path, text) a server would take cross-file snippets from for a
    hole (its open documents and neighbours); their snippets go into the prompt as the server
    puts them (``dg_lsp.service.cross_file_context``), within ``cross_file_tokens`` (default: the
    ``crossFileTokens`` setting, else the checkpoint's, else ``DEFAULT_CROSS_FILE_TOKENS``, whether
    or not the ``crossFile`` setting would serve them).
    ``start``: text for the canvas to start from (hole, cut prefix, cut suffix -> text or None),
    e.g. ``dg_lsp.context.crossfile.retrieved_line``; where it gives one, ``Engine.rewrite``
    denoises that text with ``start_strength`` of it re-noised instead of an infill from noise."""
    from dg_lsp.context import SyntaxDocument, completion_mode, cut_context, registry
    from dg_lsp.context.sticky import stabilize
    from dg_lsp.postprocess import finish
    from dg_lsp.service import (DEFAULT_CROSS_FILE_TOKENS, Generation, check_window, cross_file_context,
                                prompt_budget)
    from dg_lsp.settings import DEFAULTS

    settings = settings or DEFAULTS
    init = canvas_init or canvas_init_of(engine)
    budget = prompt_budget(settings, engine)
    if sources is not None and cross_file_tokens is None:
        cross_file_tokens = settings.cross_file_tokens or engine.cross_file_tokens or DEFAULT_CROSS_FILE_TOKENS
    rows = []
    for k, h in enumerate(holes):
        spec = registry().get(h.lang)
        doc = SyntaxDocument(spec, h.doc_text)
        mode = completion_mode(doc, h.offset, invoked=True)
        if mode == "multi" and not settings.multiline:
            mode = "single"
        c = cut_context(doc, h.offset, engine.count_tokens, budget, invoked=True)
        c = stabilize(doc.text, h.offset, c, doc.last_cut, engine.count_tokens, budget)
        ctx, snippets = "", []
        if sources is not None:
            ctx, snippets = cross_file_context(doc, h.offset, sources(h), engine, cross_file_tokens, settings)
        engine.cache.reset()
        t0 = time.perf_counter()
        cand = start(h, c.prefix, c.suffix) if start is not None else None
        if cand:
            res = engine.rewrite(c.prefix, cand, c.suffix, strength=start_strength, seed=settings.seed,
                                 language=spec.name)
        else:
            res = engine.infill(c.prefix, c.suffix, seed=settings.seed, language=spec.name, context=ctx)
        ms = (time.perf_counter() - t0) * 1000
        check = check_window(doc, h.offset)
        gen = Generation(engine, spec, c.prefix, c.suffix, mode, settings, None, False, None, check)
        done = finish(spec, check[0], res.text, check[1], mode, gen.boundaries(res.token_ids), partial=res.partial)
        engine.cache.reset()
        prompt_ids = engine.prompt(c.prefix, c.suffix, spec.name, ctx).ids
        ce = middle_cross_entropy(engine, prompt_ids, h.middle, starting_canvas(engine, init, seed + k))
        rows.append({"mode": mode, "raw": res.text, "post": done.text, "post_replace": done.replace,
                     "post_reason": done.reason, "prompt_tokens": len(prompt_ids), "cross_entropy": ce, "ms": ms})
        if sources is not None:
            rows[-1]["snippets"] = len(snippets)
        if start is not None:
            rows[-1]["start"] = cand
        if causal is not None:
            rows[-1]["causal_cross_entropy"] = causal(engine, prompt_ids, h.middle)
        if progress is not None:
            progress(k + 1, len(holes))
    return rows


# ----------------------------------------------------------------------------- summaries
def _rate(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def summarize_answers(holes: Sequence[Hole], answers: Sequence[str], replaces: Sequence[int] | None = None) -> dict:
    """Scores of one set of answers (one per hole)."""
    replaces = replaces or [0] * len(answers)
    scores = [score(h, a, r) for h, a, r in zip(holes, answers, replaces)]
    share, top = most_frequent(answers)
    wfs = [s["whole_file_syntax"] for s in scores]
    return {
        "n": len(answers),
        "exact": _rate([s["exact"] for s in scores]),
        "useful": _rate([s["useful"] for s in scores]),
        "empty": _rate([s["empty"] for s in scores]),
        "most_frequent_share": share,
        "most_frequent_answer": top,
        "whole_file_syntax": _rate(wfs),
        "whole_file_syntax_n": sum(x is not None for x in wfs),
        "no_new_errors": _rate([s["no_new_errors"] for s in scores]),
    }


def groups(holes: Sequence[Hole]) -> dict[str, list[int]]:
    """Hole indices per ``lang/kind``, ``lang/all``, ``all/kind`` and ``all/all``."""
    out: dict[str, list[int]] = {}
    for i, h in enumerate(holes):
        for key in (f"{h.lang}/{h.kind}", f"{h.lang}/all", f"all/{h.kind}", "all/all"):
            out.setdefault(key, []).append(i)
    langs = list(dict.fromkeys(h.lang for h in holes)) + ["all"]
    kinds = [k for k in KINDS if any(h.kind == k for h in holes)] + ["all"]
    return {f"{lang}/{kind}": out[f"{lang}/{kind}"] for lang in langs for kind in kinds if f"{lang}/{kind}" in out}


def summarize(holes: Sequence[Hole], variants: dict[str, tuple[list[str], list[int]]],
              cross_entropy: Sequence[float] | None = None) -> dict:
    """Per group (``groups``): each variant's scores (``summarize_answers``) and the mean
    cross-entropy."""
    out = {}
    for key, idx in groups(holes).items():
        hs = [holes[i] for i in idx]
        g: dict[str, Any] = {"n": len(idx)}
        for name, (answers, replaces) in variants.items():
            g[name] = summarize_answers(hs, [answers[i] for i in idx], [replaces[i] for i in idx])
        if cross_entropy is not None:
            g["cross_entropy"] = statistics.mean(cross_entropy[i] for i in idx)
        out[key] = g
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _short(s: str, n: int = 24) -> str:
    s = s.replace("\n", "\\n").replace("|", "\\|")
    return "`" + (s if len(s) <= n else s[: n - 1] + "...") + "`" if s else "(blank)"


def markdown(summary: dict, variants: Sequence[str]) -> str:
    """One table: a row per group, each cell ``variant1 / variant2 / ...``."""
    names = " / ".join(variants)
    has_ce = any("cross_entropy" in g for g in summary.values())
    head = ["language", "kind", "n", f"exact ({names})", f"useful ({names})", f"blank ({names})",
            f"most frequent answer share ({names})", f"whole-file syntax ({names})", f"no new errors ({names})"]
    if has_ce:
        head.append("cross-entropy (nats/token)")
    rows = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for key, g in summary.items():
        lang, kind = key.split("/")

        def cells(metric: str) -> str:
            return " / ".join(_pct(g[v][metric]) for v in variants)

        top = " / ".join(f"{_pct(g[v]['most_frequent_share'])} {_short(g[v]['most_frequent_answer'])}" for v in variants)
        row = [lang, kind, str(g["n"]), cells("exact"), cells("useful"), cells("empty"), top,
               cells("whole_file_syntax"), cells("no_new_errors")]
        if has_ce:
            row.append(f"{g['cross_entropy']:.3f}" if "cross_entropy" in g else "n/a")
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows) + "\n"


def samples(holes: Sequence[Hole], variants: dict[str, tuple[list[str], list[int]]], every: int = 15) -> list[dict]:
    """A few holes with their answers, for reading."""
    out = []
    for i in range(0, len(holes), max(1, every)):
        h = holes[i]
        out.append({"lang": h.lang, "kind": h.kind, "path": f"{h.source}:{h.path}", "middle": h.middle,
                    **{name: answers[i] for name, (answers, _) in variants.items()}})
    return out


def describe_holes(holes: Sequence[Hole]) -> dict:
    """Counts per language and kind, and the files they come from."""
    c = Counter(f"{h.lang}/{h.kind}" for h in holes)
    return {"total": len(holes), "per_lang_kind": dict(sorted(c.items())),
            "files": len({(h.source, h.path) for h in holes}),
            "sources": dict(Counter(h.source for h in holes))}


def add_heldout_args(ap: Any, root: Path, out: Path, threads: int = 1) -> None:
    """The options every held-out benchmark shares: ``--model``, ``--corpus``, ``--per-kind``,
    ``--seed``, ``--threads`` and ``--out`` (defaults under ``root``, the repository)."""
    ap.add_argument("--model", default=str(root / "model"))
    ap.add_argument("--corpus", type=Path, default=root / "data" / "corpus")
    ap.add_argument("--per-kind", type=int, default=DEFAULT_PER_KIND)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--threads", type=int, default=threads)
    ap.add_argument("--out", type=Path, default=out)
