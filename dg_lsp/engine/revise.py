"""Rewrite selection by doubt: change only what the model doubts, keep what it is sure of.

A checkpoint trained with absorbing noise (``canvas_init: "mask"``, the embedded model) was only
ever asked "which token belongs at this ``<mask>``, given both sides"; it was never asked about
visible tokens, so a canvas started from the selection partly re-noised rewrites at random
(docs/canvas.md: it changed 97% of clean lines). ``revise`` asks it what it can answer:

1. **Doubt.** The canvas's **pseudo-likelihood** of each selected token: the probability of the
   token the user wrote when its position is ``<mask>`` and everything else (prefix, suffix, the
   rest of the selection) is visible; ``stride`` rows of one decoder call (row r masks positions
   r, r + stride, ...), so each masked token sees its neighbours. Beside it the causal encoder's
   teacher-forced probability of each token given its left (``FastModel.score_rows``). A token's
   doubt is how much less likely it is than the best alternative (log max_v p(v) - log p(x),
   nats), summed over the two models; checkpoints trained with uniform noise (DiffusionGemma's
   own), which learned to find noise among visible tokens, are read on the selection as it is.
2. **Proposals** at the ``spots`` most doubted tokens (doubt at least ``min_doubt``): the other
   tokens either model expects there, the token deleted, a token inserted before or after it (the
   causal encoder's expectations), its word deleted or swapped with a neighbour, and names of the
   context (the text around the selection) within ``max_spell`` edits of the word.
3. **Decision** by a noisy channel. Each proposal is read as a slip the user made
   (``classify``): a misspelled name ("spell": the word is no name of the context, the
   proposal is), a missing or an extra word ("insert", "repeat": a word that repeats its
   neighbour), two words swapped ("swap"), an operator for one of its family ("operator": ``<``
   for ``<=``, ``+`` for ``-``, ``and`` for ``or``), ``==`` for ``=`` ("double"), a literal
   ("literal"); anything else (two words changed, an operator into a name, anything inside a
   string or comment, a keyword, a name the context does not use) is no slip and never proposed.
   Every proposal is scored by the causal encoder's log-likelihood of the whole selection and
   its EOS as the middle of the fill-in-the-middle prompt (a true sequence likelihood, so
   proposals of other lengths compare; one batched pass, each proposal scored from its first
   token that differs). The best one replaces the selection only if it is more likely by its
   kind's cost (``costs``, nats: how unlikely such a slip is); otherwise the selection comes
   back unchanged: the model is sure of it, or not sure enough of any change.

The canvas's pseudo-likelihood picks where to look; it is no judge of a change (as a vote on
the decision it lowered the restore rate at every weight tried, docs/canvas.md), and with
``costs`` the deletion of a word that repeats no neighbour and the change of one name of the
context into another are never made (on clean code the causal encoder prefers dropping a rare
name to keeping it). Costs were chosen on the dev cut of ``benchmarks/rewrite.py`` for at most
3% of clean selections changed (docs/canvas.md).

With a token memory (``revise(memory=...)``: the server's, of the document without the
selection) every likelihood above is the memory-mixed one the draft decodes from
(``dg_lsp.memory.Cursor.logprob``), the token the memory expects at a doubted position is
proposed too, and the costs are ``MEMORY_COSTS`` (chosen on the same dev cut with the memory).
"""

from __future__ import annotations

import keyword
import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from dg_lsp.engine.errors import Cancelled
from dg_lsp.engine.prompt import encode_text

if TYPE_CHECKING:
    from dg_lsp.engine.core import Engine


# The noisy channel: nats a proposal of each kind (``classify``) must gain over the selection.
# Chosen on the dev cut of benchmarks/rewrite.py (docs/canvas.md); absent kinds are never made.
DEFAULT_COSTS = {"spell": 6.0, "insert": 10.0, "repeat": 2.0, "swap": 8.0, "operator": 10.0, "double": 2.0,
                 "literal": 10.0}
# With the token memory of the document mixed into the likelihoods: chosen on the same dev cut for at
# most 3% of clean selections changed (``benchmarks/rewrite_costs.py --memory``). A name of the
# context for another ("name") and a word deleted ("delete") are made here, where the document
# itself must back them.
MEMORY_COSTS = {"spell": 12.0, "insert": 10.0, "repeat": 6.0, "swap": 12.0, "operator": 8.0, "double": 0.0,
                "literal": 10.0, "name": 20.0, "delete": 40.0}


@dataclass
class ReviseParams:
    stride: int = 4  # canvas rows of the pseudo-likelihood: row r masks positions r, r + stride, ...
    canvas_weight: float = 1.0  # weight of the canvas's doubt
    causal_weight: float = 1.0  # weight of the causal encoder's doubt
    min_doubt: float = 2.0  # nats: tokens doubted less get no proposals
    spots: int = 4  # most doubted tokens that get proposals
    top: int = 5  # alternatives per doubted token, from each model
    max_spell: int = 2  # names of the context within this edit distance of a doubted word are proposed
    costs: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_COSTS))
    # the costs when a token memory is mixed into the scores (``revise(memory=...)``)
    memory_costs: dict[str, float] = field(default_factory=lambda: dict(MEMORY_COSTS))
    rounds: int = 1  # proposals accepted one after another (each round re-examines the revised text)
    max_tokens: int = 192  # selections longer than this are returned unchanged


DEFAULT_PARAMS = ReviseParams()


@dataclass
class Doubt:
    """Per token of the selection: its character span, and how much it is doubted (nats)."""

    start: int
    end: int
    token: int
    canvas: float  # log max p - log p(token) under the canvas (masked there)
    causal: float  # the same under the causal encoder (given its left)
    score: float
    canvas_top: list[int] = field(default_factory=list)  # the canvas's most likely tokens there
    causal_top: list[int] = field(default_factory=list)  # the causal encoder's, given the left


@dataclass
class Revision:
    text: str  # the revised selection (the selection itself when nothing was changed)
    changed: bool
    edits: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, new) in the selection, per round
    doubts: list[Doubt] = field(default_factory=list)  # of the first round
    # nats by which the accepted proposals beat their costs, in all; when none was accepted, the
    # best proposal's margin (negative: how far the most tempting change was from being made)
    gain: float = 0.0
    proposals: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    candidates: list[dict] = field(default_factory=list)  # of the first round (with ``keep_candidates``)


_WORD = re.compile(r"[A-Za-z_$][\w$]*|\d[\w.]*|\s+|[^\w\s]")
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")


_OPERATORS = r"""===|!==|\*\*=|//=|>>=|<<=|\.\.\.|=>|==|!=|<=|>=|&&|\|\||\?\?|\?\.|\+=|-=|\*=|/=|%=|\*\*|//|<<|>>
    |->|\+\+|--|:="""
_STRINGS = r"""[rbfuRBFU]{0,2}(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|`(?:[^`\\]|\\.)*`"""
_LEXEMES = {
    # comments first: ``#`` starts one in Python (a private name in JavaScript), ``//`` elsewhere
    "python": re.compile(rf"""\#[^\n]*|{_STRINGS}|[A-Za-z_$][\w$]*|\d[\w.]*|{_OPERATORS}|[^\w\s]""", re.VERBOSE),
    "code": re.compile(rf"""//[^\n]*|/\*(?:[^*]|\*(?!/))*\*/|{_STRINGS}|[A-Za-z_$][\w$]*|\d[\w.]*|{_OPERATORS}|[^\w\s]""",
                       re.VERBOSE),
}
# Operators one is typed or thought for another (a slip changes one into another of its family)
OPERATOR_FAMILIES = (
    # comparisons (loose and strict equality are not each other's slip: which one is style)
    ("==", "!=", "<", ">", "<=", ">=", "is", "in"),
    ("===", "!==", "<", ">", "<=", ">="),
    ("=", "==", ":="),  # assignment for equality
    ("+", "-", "*", "/", "%", "**", "//"),  # arithmetic
    ("=", "+=", "-=", "*=", "/=", "%="),  # (augmented) assignment
    ("&&", "||", "??", "and", "or", "&", "|"),  # logical
    ("++", "--"),
    (".", ",", "?."),
    ("<<", ">>"),
)
WORD_OPERATORS = {"and", "or", "not", "is", "in"}
KEYWORDS = set(keyword.kwlist) | set("""break case catch class const continue debugger default delete do else export
extends finally for function if import instanceof let new return super switch this throw try typeof var void while
with yield async await of static get set type interface enum implements private protected public readonly declare
namespace abstract as keyof infer self cls""".split())
LITERAL_NAMES = {"True", "False", "None", "true", "false", "null", "undefined"}


def lexemes(text: str, language: str = "code") -> list[str]:
    """The words of ``text`` as a code lexer sees them: names, numbers, string literals, comments,
    operators."""
    return _LEXEMES["python" if language == "python" else "code"].findall(text)


def _class(word: str) -> str:
    if word in WORD_OPERATORS:
        return "operator"
    if word in LITERAL_NAMES or word[:1].isdigit():
        return "literal"
    if _IDENT.fullmatch(word):
        return "name"
    if word.startswith(("#", "//", "/*")) and len(word) > 1:
        return "comment"
    if len(word) > 1 and word[-1] in "'\"`" and (word[0] in "'\"`" or word[0].isalpha()):
        return "string"
    return "operator"


def confusable(x: str, y: str) -> bool:
    return any(x in f and y in f for f in OPERATOR_FAMILIES)


def classify(old: str, new: str, proposed: str, known: set[str], max_spell: int = 2, piece: str = "",
             language: str = "code") -> str | None:
    """The kind of the edit from ``old`` to ``new`` (whole selections) as a slip the user made
    (``DEFAULT_COSTS``), by their words (``lexemes``), or None when it is no one slip: more than
    one word changed, anything inside a string or comment (prose is not revised), a word changed
    into one of another class (an operator into a name), an operator into one of another family
    (``OPERATOR_FAMILIES``), a misspelling of a name the context uses, a name replaced by one the
    context does not use. ``proposed``: the kind the proposal was made as (a swap is only ever
    proposed as one; an insertion of ``piece``, one word, stays one even where it splits a word:
    ``selfx`` -> ``self.x``)."""
    a, b = lexemes(old, language), lexemes(new, language)
    if a == b:
        return None  # whitespace only
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    j = 0
    while j < min(len(a), len(b)) - i and a[len(a) - 1 - j] == b[len(b) - 1 - j]:
        j += 1
    da, db = a[i : len(a) - j], b[i : len(b) - j]
    if any(_class(w) in ("string", "comment") or w in "'\"`" for w in da + db):
        return None
    if proposed == "swap":
        return "swap"
    if proposed == "insert" and len(lexemes(piece, language)) == 1 and len(b) > len(a):
        return "insert"
    if not da and len(db) == 1:
        return "insert"
    if len(da) == 1 and not db:
        w = da[0]
        return "repeat" if (i > 0 and a[i - 1] == w) or (i + 1 < len(a) and a[i + 1] == w) else "delete"
    if len(da) == 1 and len(db) == 1:
        x, y = da[0], db[0]
        cx = _class(x)
        if cx != _class(y):
            return None
        if cx == "operator":
            if {x, y} == {"=", "=="}:  # "==" for "=": a character typed twice (or once)
                return "double"
            return "operator" if confusable(x, y) else None
        if cx == "literal":
            return "literal"
        if x in KEYWORDS or y in KEYWORDS or y not in known:
            return None
        if x in known:
            return "name"  # one name of the context for another
        return "spell" if edit_distance(x, y) <= max_spell else None
    return None


def words(text: str) -> list[tuple[int, int]]:
    """Spans of ``text``'s words: identifiers, numbers, one punctuation character each; no whitespace."""
    return [(m.start(), m.end()) for m in _WORD.finditer(text) if not m.group().isspace()]


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance (insert, delete, substitute, swap adjacent: 1 each)."""
    if a == b:
        return 0
    la, lb = len(a), len(b)
    prev2: list[int] = []
    prev = list(range(lb + 1))
    for i in range(1, la + 1):
        cur = [i] + [0] * lb
        for j in range(1, lb + 1):
            c = prev[j - 1] + (a[i - 1] != b[j - 1])
            c = min(c, prev[j] + 1, cur[j - 1] + 1)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                c = min(c, prev2[j - 2] + 1)
            cur[j] = c
        prev2, prev = prev, cur
    return prev[lb]


def token_offsets(tokenizer: Any, ids: Sequence[int], text: str) -> list[tuple[int, int]]:
    """Character span of each token of ``ids`` (the tokens of ``text``), by decoding prefixes."""
    out, prev = [], 0
    for j in range(len(ids)):
        cur = len(tokenizer.decode(list(ids[: j + 1]), skip_special_tokens=True, clean_up_tokenization_spaces=False))
        cur = max(prev, min(cur, len(text)))
        out.append((prev, cur))
        prev = cur
    return out


def cut_context(engine: "Engine", prefix: str, suffix: str) -> tuple[str, str]:
    """The prefix's last and the suffix's first tokens within the checkpoint's prompt budget
    (2:1, as its training prompts were cut)."""
    from dg_lsp.training.examples import truncate_context

    budget = engine.context_tokens or 1024
    pre = (2 * budget) // 3
    return truncate_context(engine.tokenizer, prefix, suffix, pre, budget - pre)


class Reviser:
    """One revision's model calls over one prompt (the engine's prompt cache holds it)."""

    def __init__(self, engine: "Engine", prefix: str, suffix: str, language: str, params: ReviseParams,
                 should_stop: Callable[[], bool] | None = None, context: str | None = None, memory: Any = None):
        """``context``: the text whose names are the context's (default: the prompt's prefix and
        suffix); ``memory``: a ``dg_lsp.memory.Memory`` (of the document without the selection)
        mixed into every likelihood, whose expected tokens are proposed too."""
        if engine.fast is None:
            raise RuntimeError("revise needs the fast path")
        self.e, self.fm, self.p = engine, engine.fast, params
        self.prefix, self.suffix, self.language = prefix, suffix, language
        self.should_stop = should_stop
        self.prompt = engine.prompt(prefix, suffix, language)
        self.kv, _ = engine.cache.prepare(self.prompt.ids, engine.device, should_stop)
        self._names: list[str] | None = None
        self._context = prefix + "\n" + suffix if context is None else context
        self.cursor = engine.memory_cursor(memory, prefix)
        self.states: list[Any] = []  # the memory's cursor before each token of the selection, and after it

    def _check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("cancelled while revising")

    # ----------------------------------------------------------------- doubt
    def canvas_logprobs(self, ids: list[int], top: int, masked: bool = True) -> tuple[torch.Tensor, torch.Tensor,
                                                                                     torch.Tensor]:
        """Per selected token: the canvas's log-probability of it with that position masked, the
        best token's log-probability and the ``top`` best tokens (mask-trained checkpoints); or
        read from the canvas as it is (uniform-noise checkpoints, or ``masked=False``: one row,
        every token visible, as correction training shows the canvas wrong tokens)."""
        e, fm = self.e, self.fm
        n = len(ids)
        length = max(e.canvas_length, n + 1)
        base = torch.tensor(ids + [e.eos_id] * (length - n), dtype=torch.long, device=e.device)
        if e.mask_id is None or not masked:
            rows = 1
            canvas = base[None]
        else:
            rows = max(1, min(self.p.stride, n))
            canvas = base.repeat(rows, 1)
            for r in range(rows):
                canvas[r, r:n:rows] = e.mask_id
        z = fm.step_fn(self.kv, length, rows=rows)(canvas, None).view(rows, length, -1)
        if e.banned.numel():
            z[..., e.banned] = float("-inf")
        pos = torch.arange(n, device=e.device)
        zz = z[pos % rows, pos]  # (n, V): each token's logits from the row that masks it
        lse = torch.logsumexp(zz, dim=-1)
        tv, ti = torch.topk(zz, max(1, top), dim=-1)
        own = zz.gather(-1, base[:n, None]).squeeze(-1)
        return own - lse, tv[:, 0] - lse, ti

    def doubts(self, text: str, ids: list[int]) -> list[Doubt]:
        p = self.p
        own_c, best_c, top_c = self.canvas_logprobs(ids, p.top)
        lp, ti, tv = self.fm.score_rows(self.kv, self.prompt.ids[-1], [ids + [self.e.eos_id]], banned=self.e.banned,
                                        top=max(1, p.top))
        self.base = lp[0].tolist()  # log p of each token and of EOS after them
        if self.cursor is not None:
            self.states = [self.cursor]
            for t in ids:
                c = self.states[-1].fork()
                c.push(t)
                self.states.append(c)
            full = ids + [self.e.eos_id]
            self.base = [self.states[i].logprob(full[i], x) for i, x in enumerate(self.base)]
        causal = (tv[0, :, 0] - lp[0]).tolist()
        canvas = (best_c - own_c).tolist()
        offs = token_offsets(self.e.tokenizer, ids, text)
        top_c, ti = top_c.tolist(), ti[0].tolist()
        return [Doubt(a, b, t, canvas[j], causal[j], p.canvas_weight * canvas[j] + p.causal_weight * causal[j],
                      top_c[j], ti[j])
                for j, ((a, b), t) in enumerate(zip(offs, ids))]

    # ----------------------------------------------------------------- proposals
    def names(self) -> list[str]:
        """Identifiers of the context (``context``), most frequent first."""
        if self._names is None:
            count: dict[str, int] = {}
            for m in _IDENT.finditer(self._context):
                count[m.group()] = count.get(m.group(), 0) + 1
            self._names = sorted(count, key=lambda w: -count[w])
        return self._names

    def proposals(self, text: str, doubts: list[Doubt]) -> list[tuple[int, int, str, str, int]]:
        """Edits (start, end, new text, kind, the doubted token it is for) of ``text`` at its most
        doubted tokens."""
        p, e = self.p, self.e
        spans = words(text)
        order = sorted(range(len(doubts)), key=lambda j: -doubts[j].score)
        ranked = [j for j in order if doubts[j].score >= p.min_doubt][: p.spots]
        edits: list[tuple[int, int, str, str, int]] = []
        seen_spans: set[tuple[int, int]] = set()
        dec = lambda t: e.decode([t])  # noqa: E731

        def word_of(a: int) -> int | None:
            for k, (s, t) in enumerate(spans):
                if s <= a < t:
                    return k
            return None

        for j in ranked:
            d = doubts[j]
            s, t = d.start, d.end
            # the token itself: other tokens there (both models), deleted, a token inserted before / after it
            said = self.states[j].top() if self.states else None  # what the memory expects there
            for tok in dict.fromkeys(d.canvas_top + d.causal_top + ([said] if said is not None else [])):
                if tok != d.token and tok not in e.eos_ids:
                    edits.append((s, t, dec(tok), "token", j))
            if said is not None and said not in e.eos_ids:
                edits.append((s, s, dec(said), "insert", j))
            repeat = (j > 0 and doubts[j - 1].token == d.token) or (j + 1 < len(doubts) and doubts[j + 1].token == d.token)
            edits.append((s, t, "", "repeat" if repeat else "delete", j))
            for tok in d.causal_top:
                if tok not in e.eos_ids:
                    edits.append((s, s, dec(tok), "insert", j))
            if j + 1 < len(doubts):
                for tok in doubts[j + 1].causal_top:
                    if tok not in e.eos_ids:
                        edits.append((t, t, dec(tok), "insert", j))
            # the word holding the token's first non-space character
            a = s
            while a < t and text[a].isspace():
                a += 1
            k = word_of(a) if a < len(text) else None
            if k is None:
                continue
            ws, we = spans[k]
            word = text[ws:we]
            if (ws, we) in seen_spans:
                continue
            seen_spans.add((ws, we))
            repeat = (k > 0 and text[spans[k - 1][0]:spans[k - 1][1]] == word) or \
                (k + 1 < len(spans) and text[spans[k + 1][0]:spans[k + 1][1]] == word)
            # the word deleted with the spaces after it, or with those before it
            after, before = we, ws
            while after < len(text) and text[after] == " ":
                after += 1
            while before > 0 and text[before - 1] == " ":
                before -= 1
            for a, b in {(ws, after), (before, we)}:
                edits.append((a, b, "", "repeat" if repeat else "delete", j))
            if k + 1 < len(spans):  # swapped with the next word
                ns, ne = spans[k + 1]
                edits.append((ws, ne, text[ns:ne] + text[we:ns] + word, "swap", j))
            if k > 0:
                ps, pe = spans[k - 1]
                edits.append((ps, we, word + text[pe:ws] + text[ps:pe], "swap", j))
            if _IDENT.fullmatch(word):  # names of the context within a few edits of it: a misspelling
                for name in self.names():
                    if name != word and abs(len(name) - len(word)) <= p.max_spell and \
                            edit_distance(name, word) <= p.max_spell:
                        edits.append((ws, we, name, "spell", j))
        return edits

    # ----------------------------------------------------------------- decision
    def gains(self, ids: list[int], base: list[float], texts: list[str]) -> list[float]:
        """How much more likely (nats) each text, then EOS, is than the selection ``ids`` as the
        middle of the prompt, under the causal encoder. ``base``: the log-probability of each of
        ``ids`` and EOS. A text is scored from its first token that differs from the selection's:
        the selection is encoded after the prompt once, and each text's rows continue it there."""
        e = self.e
        start = len(self.prompt.ids)
        eos = e.eos_id
        full = ids + [eos]
        kv, _ = e.cache.prepare(self.prompt.ids + ids, e.device, self.should_stop)
        rows, ats, lasts, olds = [], [], [], []
        for t in texts:
            row = encode_text(e.tokenizer, t) + [eos]
            a = 0
            while a < min(len(row), len(full)) - 1 and row[a] == full[a]:
                a += 1
            rows.append(row[a:])
            ats.append(start + a)
            lasts.append(self.prompt.ids[-1] if a == 0 else ids[a - 1])
            olds.append(sum(base[a:]))
        out: list[float] = []
        chunk = 32
        for i in range(0, len(rows), chunk):
            self._check()
            lp, _, _ = self.fm.score_rows(kv, lasts[i : i + chunk], rows[i : i + chunk], at=ats[i : i + chunk],
                                          banned=e.banned)
            if not self.states:
                out += lp.sum(dim=-1).tolist()
                continue
            lps = lp.tolist()
            for r, row in enumerate(rows[i : i + chunk]):  # the memory's say, token by token
                c = self.states[ats[i + r] - start].fork()
                total = 0.0
                for k, tok in enumerate(row):
                    total += c.logprob(tok, lps[r][k])
                    if k + 1 < len(row):
                        c.push(tok)
                out.append(total)
        e.cache.prepare(self.prompt.ids, e.device)  # the prompt alone again (a canvas goes after it)
        return [x - o for x, o in zip(out, olds)]


@torch.inference_mode()
def revise(engine: "Engine", prefix: str, selection: str, suffix: str, *, language: str = "code",
           params: ReviseParams | None = None, should_stop: Callable[[], bool] | None = None,
           cut: bool = True, keep_candidates: bool = False, memory: Any = None) -> Revision:
    """The selection with the changes the model is sure of (module docstring); unchanged when
    there are none. ``cut``: cut the prefix and suffix to the checkpoint's prompt budget first.
    ``memory``: the token memory of the document without the selection, mixed into the
    likelihoods (the costs are then ``params.memory_costs``)."""
    p = params or DEFAULT_PARAMS
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    context = prefix + "\n" + suffix
    if cut:
        prefix, suffix = cut_context(engine, prefix, suffix)
    rv = Reviser(engine, prefix, suffix, language, p, should_stop, context=context, memory=memory)
    costs = p.costs if rv.cursor is None else p.memory_costs
    timings["encode"] = (time.perf_counter() - t0) * 1000
    out = Revision(text=selection, changed=False, prompt_tokens=len(rv.prompt.ids))
    # leading/trailing whitespace of the selection is kept as it is: the model revises its code
    lead = len(selection) - len(selection.lstrip())
    trail = len(selection) - len(selection.rstrip())
    core = selection[lead : len(selection) - trail]
    if not core.strip():
        return out
    n_prop = 0
    best_margin = -math.inf
    for rnd in range(max(1, p.rounds)):
        ids = encode_text(engine.tokenizer, core)
        if not ids or len(ids) > p.max_tokens:
            break
        t1 = time.perf_counter()
        doubts = rv.doubts(core, ids)
        timings["doubt"] = timings.get("doubt", 0.0) + (time.perf_counter() - t1) * 1000
        if rnd == 0:
            out.doubts = doubts
        t1 = time.perf_counter()
        edits = rv.proposals(core, doubts)
        timings["propose"] = timings.get("propose", 0.0) + (time.perf_counter() - t1) * 1000
        cands: dict[str, tuple[int, int, str, str, int]] = {}
        known = set(rv.names())
        for a, b, new, kind, spot in edits:
            cand = core[:a] + new + core[b:]
            if cand in cands or not cand.strip():
                continue
            kind = classify(core, cand, kind, known, p.max_spell, new, language)
            if kind is not None:
                cands[cand] = (a, b, new, kind, spot)
        if not cands:
            break
        t1 = time.perf_counter()
        texts = list(cands)
        gains = rv.gains(ids, rv.base, texts)
        timings["score"] = timings.get("score", 0.0) + (time.perf_counter() - t1) * 1000
        n_prop += len(cands)
        margins = [g - costs.get(cands[t][3], math.inf) for g, t in zip(gains, texts)]
        if rnd == 0 and keep_candidates:
            out.candidates = [{"text": t, "gain": g, "kind": cands[t][3], "old": core[cands[t][0]:cands[t][1]],
                               "new": cands[t][2], "doubt": doubts[cands[t][4]].score}
                              for g, t in zip(gains, texts)]
        k = max(range(len(margins)), key=lambda i: margins[i])
        best_margin = max(best_margin, margins[k])
        if margins[k] <= 0:
            break
        out.edits.append(cands[texts[k]][:3])
        out.gain += margins[k]
        core = texts[k]
    out.text = selection[:lead] + core + selection[len(selection) - trail :]
    out.changed = out.text != selection
    if not out.changed:
        out.gain = best_margin if best_margin > -math.inf else 0.0
    out.proposals = n_prop
    timings["total"] = (time.perf_counter() - t0) * 1000
    out.timings = timings
    return out
