"""Lexical constraints while denoising: brackets, strings and comments stay feasible.

Per language (``grammars/registry.json``): bracket pairs, string delimiters (which may span
lines, which have no escapes, long strings such as Lua's ``[[...]]``) and comment
delimiters. A small lexer (:class:`Lexicon.run`) walks text from a lexical state (code, inside a
string, inside a comment) and reports the closers that pop brackets opened *before* the text
and the openers the text leaves open.

The same lexer gives every vocabulary token, from every lexical state, its effect once per
(tokenizer, language) (:class:`TokenTable`), so the per-step hook is a short walk over the
canvas plus one vectorized mask. :class:`CanvasConstraint` is that hook. On the middle it enforces

* closers only for brackets the middle opened itself or that the prefix left open and the
  suffix does not close (``closable``), innermost first;
* EOS (or, in single-line mode, the end of the line) only when everything the middle opened is
  closed and no string or comment it opened is still open;
* on the last canvas, no more open brackets/literals than positions left to close them.

The walk follows the canvas' argmax left to right, correcting an infeasible argmax to the best
feasible token, so the argmax canvas the sampler returns is feasible by construction; the
acceptance hook re-noises sampled tokens that are infeasible given the accepted tokens before them.
"""

from __future__ import annotations

from collections import OrderedDict

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

NEG_INF = float("-inf")
CODE = 0  # lexical state id of plain code
_ERR = "\x00"  # pops marker of a token that mismatches its own brackets: never feasible
_BIG = 1 << 20
MAX_BACKTRACKS = 8  # openers dropped per step because the model ends the middle before closing
CLOSER_TOP_K = 5  # ...unless a closer is among its top choices where it ends
MAX_CACHED_MASKS = 512  # (V,) float masks kept per token table


# --------------------------------------------------------------------------- the lexer
@dataclass(frozen=True)
class Lexicon:
    """One language's lexical data, from ``grammars/registry.json``."""

    name: str
    brackets: tuple[tuple[str, str], ...]
    strings: tuple[str, ...]  # longest first
    multiline: frozenset[str]
    raw: frozenset[str]
    long_strings: tuple[tuple[str, str], ...]
    line_comment: str | None
    block_comment: tuple[str, str] | None
    comment_word_start: bool

    @classmethod
    def from_spec(cls, spec: Any) -> "Lexicon":
        """Build from a ``LanguageSpec`` plus the lexer fields of its registry entry."""
        extra = _registry_entry(str(spec.root), spec.name)
        return cls(
            name=spec.name,
            brackets=tuple(spec.brackets),
            strings=tuple(sorted(spec.strings, key=len, reverse=True)),
            multiline=frozenset(extra.get("multiline_strings", ())),
            raw=frozenset(extra.get("raw_strings", ())),
            long_strings=tuple((str(o), str(c)) for o, c in extra.get("long_strings", ())),
            line_comment=spec.line_comment,
            block_comment=spec.block_comment,
            comment_word_start=bool(extra.get("line_comment_word_start", False)),
        )

    # lexical states: 0 code, then one per (literal, escaped) -- see ``states``
    @property
    def states(self) -> list[tuple[str, str, str, bool]]:
        """(kind, open, close, escaped) per state id; kind in code/str/line/block."""
        return _states(self)

    def closer_of(self, opener: str) -> str:
        return dict(self.brackets)[opener]

    def run(self, text: str, state: int = CODE, strict: bool = False) -> "Run":
        """Lex ``text`` from ``state``; see :class:`Run`. ``strict``: a closer that does
        not match the text's own innermost opener is an error (else it just pops it)."""
        if strict or len(text) < 256:
            return _run(self, text, state, strict)
        return _run_by_line(self, text, state)


@dataclass
class Run:
    state: int  # lexical state at the end
    pops: str  # closers, in order, that closed brackets opened before the text
    pushes: str  # openers the text leaves open, outermost first
    error: bool = False  # a mismatched closer (strict) or a newline inside a one-line string
    newline: bool = False  # a newline outside strings (ends a line of code)


_REGISTRY_CACHE: dict[str, dict[str, Any]] = {}


def _registry_entry(root: str, name: str) -> dict[str, Any]:
    if root not in _REGISTRY_CACHE:
        with open(f"{root}/registry.json", encoding="utf-8") as fh:
            _REGISTRY_CACHE[root] = json.load(fh)
    return _REGISTRY_CACHE[root].get(name, {})


_STATES: dict[Lexicon, list[tuple[str, str, str, bool]]] = {}


def _states(lx: Lexicon) -> list[tuple[str, str, str, bool]]:
    if lx not in _STATES:
        st: list[tuple[str, str, str, bool]] = [("code", "", "", False), ("line", "", "\n", False)]
        if lx.block_comment:
            st.append(("block", lx.block_comment[0], lx.block_comment[1], False))
        for d in lx.strings:
            st.append(("str", d, d, False))
            if d not in lx.raw:
                st.append(("str", d, d, True))
        for o, c in lx.long_strings:
            st.append(("str", o, c, False))
        _STATES[lx] = st
    return _STATES[lx]


_STATE_IDS: dict[Lexicon, dict[tuple[str, str, str, bool], int]] = {}


def _sid(lx: Lexicon, key: tuple[str, str, str, bool]) -> int:
    if lx not in _STATE_IDS:
        _STATE_IDS[lx] = {k: i for i, k in enumerate(_states(lx))}
    return _STATE_IDS[lx][key]


def _run(lx: Lexicon, text: str, state: int, strict: bool) -> Run:
    states = _states(lx)
    openers = {o: c for o, c in lx.brackets}
    closers = {c: o for o, c in lx.brackets}
    pops: list[str] = []
    stack: list[str] = []
    error = newline = False
    i, n = 0, len(text)
    kind, opn, close, escaped = states[state]
    while i < n:
        ch = text[i]
        if kind == "code":
            if ch == "\n":
                newline = True
                i += 1
                continue
            if lx.block_comment and text.startswith(lx.block_comment[0], i):
                kind, opn, close, escaped = states[_sid(lx, ("block", *lx.block_comment, False))]
                i += len(lx.block_comment[0])
                continue
            if lx.line_comment and text.startswith(lx.line_comment, i):
                if not lx.comment_word_start or i == 0 or text[i - 1].isspace() or text[i - 1] in ";|&(":
                    kind, opn, close, escaped = "line", "", "\n", False
                    i += len(lx.line_comment)
                    continue
            hit = next((p for p in lx.long_strings if text.startswith(p[0], i)), None)
            if hit is not None:
                kind, opn, close, escaped = "str", hit[0], hit[1], False
                i += len(hit[0])
                continue
            d = next((d for d in lx.strings if text.startswith(d, i)), None)
            if d is not None:
                kind, opn, close, escaped = "str", d, d, False
                i += len(d)
                continue
            if ch in openers:
                stack.append(ch)
            elif ch in closers:
                if stack:
                    if stack[-1] != closers[ch] and strict:
                        error = True
                    stack.pop()
                else:
                    pops.append(ch)
            i += 1
        elif kind == "str":
            if escaped:
                escaped = False
                i += 1
                continue
            if ch == "\\" and opn not in lx.raw and close == opn:
                escaped = True
                i += 1
                continue
            if text.startswith(close, i):
                i += len(close)
                kind, opn, close, escaped = "code", "", "", False
                continue
            if ch == "\n" and opn not in lx.multiline and close == opn:
                error = True
            i += 1
        elif kind == "line":
            if ch == "\n":
                kind, opn, close, escaped = "code", "", "", False
                newline = True
            i += 1
        else:  # block comment
            if text.startswith(close, i):
                i += len(close)
                kind, opn, close, escaped = "code", "", "", False
                continue
            i += 1
    end = _sid(lx, (kind, opn if kind in ("str", "block") else "", close if kind != "code" else "", escaped))
    return Run(end, "".join(pops), "".join(stack), error, newline)


_LINES = re.compile(r"[^\n]*\n|[^\n]+")  # lines with their newline ("\n" only, as the lexer)
_LINE_RUNS: "OrderedDict[tuple[Lexicon, str, int], Run]" = OrderedDict()
_LINE_RUNS_MAX = 50_000


def _run_by_line(lx: Lexicon, text: str, state: int) -> Run:
    """``_run(lx, text, state, strict=False)``, composed from cached runs of its lines.

    The prefix and suffix are lexed again for every request, and between keystrokes only
    the line at the cursor changes. A line starts after a newline, where the lexer keeps no
    other context, so the run of a text is the runs of its lines in sequence: each line's
    closers first pop what the lines before left open, the rest are the text's own pops.
    """
    pops: list[str] = []
    stack: list[str] = []
    error = newline = False
    for line in _LINES.findall(text):
        key = (lx, line, state)
        r = _LINE_RUNS.get(key)
        if r is None:
            r = _run(lx, line, state, False)
            _LINE_RUNS[key] = r
            if len(_LINE_RUNS) > _LINE_RUNS_MAX:
                _LINE_RUNS.popitem(last=False)
        for closer in r.pops:
            if stack:
                stack.pop()
            else:
                pops.append(closer)
        stack.extend(r.pushes)
        error, newline, state = error or r.error, newline or r.newline, r.state
    return Run(state, "".join(pops), "".join(stack), error, newline)


# --------------------------------------------------------------------------- token tables
@dataclass
class StateTable:
    """Every token's effect when it starts in one lexical state (tensors: special tokens only)."""

    pops: list[str]  # per token: closers of brackets opened before it
    pushes: list[str]  # per token: openers it leaves open
    end: list[int]  # per token: lexical state after it
    newline: list[bool]  # per token: ends a line of code
    pops_index: dict[str, int]  # distinct pops strings -> id
    pops_id: torch.Tensor  # (S,) long, over ``TokenTable.special``
    pops_len: torch.Tensor  # (S,) long
    push_len: torch.Tensor  # (S,) long
    end_t: torch.Tensor  # (S,) long
    newline_t: torch.Tensor  # (S,) bool


class TokenTable:
    """Per-token lexical effects for one (tokenizer, language); state tables built lazily."""

    def __init__(self, texts: Sequence[str], lexicon: Lexicon, device: str = "cpu"):
        self.texts = list(texts)
        self.lexicon = lexicon
        self.device = device
        chars = {c for o, c in lexicon.brackets} | {o for o, _ in lexicon.brackets} | {"\\", "\n"}
        for d in lexicon.strings:
            chars |= set(d)
        for o, c in lexicon.long_strings:
            chars |= set(o) | set(c)
        if lexicon.line_comment:
            chars |= set(lexicon.line_comment)
        if lexicon.block_comment:
            chars |= set(lexicon.block_comment[0]) | set(lexicon.block_comment[1])
        self.special_chars = frozenset(chars)
        self.plain = [not (set(t) & chars) for t in self.texts]
        # tokens with a bracket, quote, comment, escape or newline character: the only ones
        # whose effect depends on the state (all others keep it and never pop or push)
        self.special = torch.tensor([i for i, p in enumerate(self.plain) if not p], dtype=torch.long, device=device)
        self.plain_idx = torch.tensor([i for i, p in enumerate(self.plain) if p], dtype=torch.long, device=device)
        self._tables: dict[int, StateTable] = {}
        self.biases: dict[tuple, torch.Tensor] = {}  # additive masks, shared by requests (CanvasConstraint._bias)

    def __len__(self) -> int:
        return len(self.texts)

    def table(self, state: int) -> StateTable:
        tab = self._tables.get(state)
        if tab is None:
            tab = self._tables[state] = self._build(state)
        return tab

    def _build(self, state: int) -> StateTable:
        n = len(self.texts)
        pops, pushes, end, newline = [""] * n, [""] * n, [state] * n, [False] * n
        for i, text in enumerate(self.texts):
            if self.plain[i]:
                continue
            r = self.lexicon.run(text, state, strict=True)
            pops[i] = _ERR if r.error else r.pops
            pushes[i], end[i], newline[i] = r.pushes, r.state, r.newline
        index: dict[str, int] = {}
        sp = self.special.tolist()
        ids = [index.setdefault(pops[i], len(index)) for i in sp]
        dev = self.device
        return StateTable(
            pops=pops,
            pushes=pushes,
            end=end,
            newline=newline,
            pops_index=index,
            pops_id=torch.tensor(ids, dtype=torch.long, device=dev),
            pops_len=torch.tensor([len(pops[i]) for i in sp], dtype=torch.long, device=dev),
            push_len=torch.tensor([len(pushes[i]) for i in sp], dtype=torch.long, device=dev),
            end_t=torch.tensor([end[i] for i in sp], dtype=torch.long, device=dev),
            newline_t=torch.tensor([newline[i] for i in sp], dtype=torch.bool, device=dev),
        )


_TABLES: dict[tuple[int, int, Lexicon], TokenTable] = {}


def token_table(tokenizer: Any, vocab_size: int, lexicon: Lexicon, device: str = "cpu") -> TokenTable:
    """The (cached) table of ``tokenizer``'s tokens for ``lexicon``."""
    key = (id(tokenizer), vocab_size, lexicon)
    tab = _TABLES.get(key)
    if tab is None:
        n = min(vocab_size, len(tokenizer))
        texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=True,
                                       clean_up_tokenization_spaces=False)
        texts += [""] * (vocab_size - n)
        tab = _TABLES[key] = TokenTable(texts, lexicon, device)
    return tab


# --------------------------------------------------------------------------- the context
@dataclass
class Context:
    """What the prefix and suffix allow the middle to do."""

    start: int  # lexical state at the cursor
    closable: str  # closers the middle may use for prefix brackets, innermost first
    end_ok: frozenset[int]  # lexical states the middle may end in


def analyse(lexicon: Lexicon, prefix: str, suffix: str, mode: str = "single") -> Context:
    """Lex prefix and suffix: which prefix brackets the middle may close, where it starts.

    The prefix leaves a stack ``P`` open; the suffix closes a sequence ``U`` it did not open.
    When ``U`` starts by matching ``P``'s innermost brackets, those belong to the suffix and the
    middle may close none of them -- except the closers that are all that is left on the cursor's
    line (the middle may retype them; post-processing replaces them). When ``U`` does not match,
    the middle may close the innermost ``len(P) - len(U)`` brackets.
    """
    pre = lexicon.run(prefix, CODE)
    suf = lexicon.run(suffix, pre.state)
    stack, used = pre.pushes, suf.pops
    k = 0
    while k < min(len(stack), len(used)) and used[k] == lexicon.closer_of(stack[-1 - k]):
        k += 1
    if k == 0:
        n = max(0, len(stack) - len(used))
    else:
        rest = suffix.split("\n", 1)[0]
        line = lexicon.run(rest, pre.state)
        only_closers = rest.strip() and all(ch.isspace() or ch in ";,:" or ch in line.pops for ch in rest)
        n = min(k, len(line.pops)) if only_closers and used.startswith(line.pops) else 0
    closable = "".join(lexicon.closer_of(o) for o in reversed(stack[len(stack) - n :])) if n else ""
    end_ok = {pre.state}
    if pre.state == CODE and (mode == "single" or suffix[:1] in ("", "\n")):
        end_ok.add(_sid(lexicon, ("line", "", "\n", False)))  # a trailing line comment ends at the newline
    return Context(pre.state, closable, frozenset(end_ok))


# --------------------------------------------------------------------------- the hook
@dataclass
class _State:
    lex: int
    opened: str  # openers of the middle, outermost first
    closed: int  # how many of ``closable`` the middle closed


class CanvasConstraint:
    """Logits hook + acceptance hook for ``denoise`` that keeps the canvas feasible.

    ``begin(prev_ids, final, fixed, left=0)`` is called before each canvas: the tokens of
    earlier canvases, whether this is the last canvas (then literals and brackets must be closed
    by its end, or by ``left`` positions of later canvases), and optionally (tokens, frozen) of a
    canvas whose frozen positions are given.
    """

    def __init__(self, table: TokenTable, ctx: Context, eos_ids: Sequence[int], single_line: bool = False):
        self.table = table
        self.lx = table.lexicon
        self.ctx = ctx
        self.eos = frozenset(int(e) for e in eos_ids)
        self.eos_t = torch.tensor(sorted(self.eos), dtype=torch.long, device=table.device)
        self.single = single_line
        self.close_of = dict(self.lx.brackets)
        self.plain = list(table.plain)  # tokens that never change the state (EOS is not one)
        for e in self.eos:
            if e < len(self.plain):
                self.plain[e] = False
        self.origin = _State(ctx.start, "", 0)
        self.final = True
        self.left = 0
        self.fixed: tuple[list[int], list[bool]] | None = None
        self._end_open: dict[int, torch.Tensor] = {}
        self._maxp: dict[int, int] = {}
        self.stats = {"steps": 0, "corrected": 0, "rejected": 0, "backtracks": 0}

    # -- engine protocol
    def begin(self, prev_ids: Sequence[int], final: bool = True,
              fixed: tuple[torch.Tensor, torch.Tensor] | None = None, left: int = 0, **_: Any) -> None:
        st = _State(self.ctx.start, "", 0)
        for t in prev_ids:
            st = self._advance(st, int(t))
        self.origin, self.final, self.left = st, final, max(0, left)
        self.fixed = None if fixed is None else (fixed[0][0].tolist(), fixed[1][0].tolist())

    def __call__(self, logits: torch.Tensor, argmax: torch.Tensor) -> None:  # noqa: ARG002
        """Mask what is infeasible in each canvas of ``logits`` (K, L, V), in place."""
        self.stats["steps"] += 1
        for r in range(logits.shape[0]):
            self._constrain_row(logits[r])

    def _constrain_row(self, row_logits: torch.Tensor) -> None:
        chain = _LazyArgmax(row_logits)
        caps: dict[int, int] = {}  # position -> most it may leave open (closing / dropped openers)
        for _ in range(MAX_BACKTRACKS + 1):
            rows, keys, back = self._walk(row_logits, chain, caps)
            if back is None:
                break
            caps[back[0]] = back[1]  # the model ends the middle later: this opener is dropped instead
            self.stats["backtracks"] += 1
        if not rows:
            return
        bias = torch.stack([self._bias(k) for k in keys])  # (R, V): 0 feasible, -inf not
        if rows[-1] - rows[0] == len(rows) - 1:
            row_logits[rows[0] : rows[-1] + 1] += bias
        else:
            row_logits.index_add_(0, torch.tensor(rows, dtype=torch.long, device=row_logits.device), bias)

    def feasible(self, st: _State, rem: int, cap: int | None = None) -> torch.Tensor:
        """(V,) bool: the tokens feasible next in state ``st`` with ``rem`` positions after it
        (and at most ``cap`` brackets / literals left open after the token)."""
        return self._bias(self._key(st, rem, cap)) == 0

    def _key(self, st: _State, rem: int, cap: int | None = None) -> tuple[int, str, int, int]:
        """Masks depend on the state and on how much may be left open -- up to a cap."""
        limit = min(rem, _BIG if cap is None else cap)
        most = len(st.opened) + self._max_push(st.lex) + 1  # a larger limit changes nothing
        return (st.lex, st.opened, st.closed, min(limit, most))

    def _bias(self, key: tuple[int, str, int, int]) -> torch.Tensor:
        """(V,) float: 0 for feasible tokens, -inf for the others (all 0 when none is feasible)."""
        gkey = (self.single, self.ctx.closable, self.ctx.end_ok, self.eos, key)
        bias = self.table.biases.get(gkey)
        if bias is None:
            lex, opened, closed, limit = key
            st = _State(lex, opened, closed)
            tab = self.table.table(lex)
            dev = self.table.device
            ok = torch.zeros(len(self.table), dtype=torch.bool, device=dev)
            need = self._need(len(opened), lex)
            if need <= limit:
                ok[self.table.plain_idx] = True  # plain tokens keep the state
            ok[self.table.special] = self._special_row(st, tab, limit)
            ok[self.eos_t] = need == 0
            bias = torch.zeros(len(self.table), dtype=torch.float32, device=dev)
            if bool(ok.any()):
                bias.masked_fill_(~ok, NEG_INF)
            if len(self.table.biases) >= MAX_CACHED_MASKS:
                self.table.biases.clear()
            self.table.biases[gkey] = bias
        return bias

    def _rems(self, rows: list[int], L: int) -> list[int]:
        return [(L - 1 - i + self.left) if self.final else _BIG for i in rows]

    def _walk(self, row_logits: torch.Tensor, chain: "_LazyArgmax", caps: dict[int, int]) -> tuple[list[int], list[tuple[int, str, int, int]], tuple[int, int] | None]:
        """Follow the argmax ``chain`` (corrected in place) from the left.

        Returns the free positions up to the end of the middle with the mask key of each, and
        maybe a (position, cap) to walk again with: where the model ends the middle (EOS / end
        of line) while something the middle opened is still open, the best closing token is
        used if it is among the model's top choices there; otherwise the innermost opener's
        position is re-chosen among tokens that open nothing (its cap is the need before it).
        """
        L = len(chain)
        rows: list[int] = []
        keys: list[tuple[int, str, int, int]] = []
        opened_at: list[tuple[int, int]] = []  # (position, need before it) of each open thing
        plain = self.plain
        st = self.origin
        need = self._need(len(st.opened), st.lex)
        for i in range(L):
            fixed = self.fixed is not None and self.fixed[1][i]
            tok = self.fixed[0][i] if fixed else chain[i]  # type: ignore[index]
            rem = (L - 1 - i + self.left) if self.final else _BIG
            if not fixed:
                key = self._key(st, rem, caps.get(i))
                if not (plain[tok] and need <= key[3]) and not self._ok(st, tok, rem, caps.get(i)):
                    ends = tok in self.eos or (self.single and self.table.table(st.lex).newline[tok])
                    if ends and opened_at and i not in caps:
                        close_key = self._key(st, rem, need - 1)
                        if not self._in_top(row_logits[i], self._bias(close_key)):
                            return rows, keys, opened_at[-1]
                        caps[i], key = need - 1, close_key
                    bias = self._bias(key)
                    if bool((bias == 0).any()):
                        tok = chain[i] = int((row_logits[i] + bias).argmax())
                        self.stats["corrected"] += 1
                rows.append(i)
                keys.append(key)
            if tok in self.eos:
                break
            if plain[tok]:
                continue  # the state is unchanged
            if self.single and self.table.table(st.lex).newline[tok]:
                break
            nxt = self._advance(st, tok)
            after = self._need(len(nxt.opened), nxt.lex)
            if after < need:
                del opened_at[max(0, len(opened_at) - (need - after)) :]
            opened_at += [(i, need)] * max(0, after - need)
            st, need = nxt, after
        return rows, keys, None

    def _in_top(self, raw: torch.Tensor, bias: torch.Tensor) -> bool:
        """Whether a token feasible under ``bias`` is among the model's top choices."""
        ok = bias == 0
        if not bool(ok.any()):
            return False
        best = raw.masked_fill(~ok, NEG_INF).max()
        return bool((raw > best).sum() < CLOSER_TOP_K)

    def accept(self, sampled: torch.Tensor, accept: torch.Tensor) -> torch.Tensor:
        """Re-noise sampled tokens that are infeasible after the accepted tokens before them
        (each canvas row of ``sampled`` (K, L) on its own)."""
        out = accept
        for r in range(sampled.shape[0]):
            bad = self._rejected(sampled[r].tolist(), accept[r].tolist())
            if bad:
                self.stats["rejected"] += len(bad)
                if out is accept:
                    out = accept.clone()
                out[r, bad] = False
        return out

    def _rejected(self, toks: list[int], acc: list[bool]) -> list[int]:
        st = self.origin
        plain = self.plain
        bad: list[int] = []
        for i, (tok, a) in enumerate(zip(toks, acc)):
            if self.fixed is not None and self.fixed[1][i]:
                tok, a = self.fixed[0][i], True
            elif not a or plain[tok]:
                continue
            elif not self._ok(st, tok, _BIG):
                bad.append(i)
                continue
            if tok in self.eos or (self.single and self.table.table(st.lex).newline[tok]):
                break
            st = self._advance(st, tok)
        return bad

    # -- pieces
    def _closing(self, st: _State) -> str:
        """Closers the middle may use next, innermost first."""
        own = "".join(self.close_of[o] for o in reversed(st.opened))
        return own + self.ctx.closable[st.closed :]

    def _need(self, opened: int, lex: int) -> int:
        return opened + (0 if lex in self.ctx.end_ok else 1)

    def _ok(self, st: _State, tok: int, rem: int, cap: int | None = None) -> bool:
        if tok in self.eos:
            return self._need(len(st.opened), st.lex) == 0
        tab = self.table.table(st.lex)
        pops = tab.pops[tok]
        if pops and not self._closing(st).startswith(pops):
            return False
        need = max(0, len(st.opened) - len(pops)) + len(tab.pushes[tok])
        need = self._need(need, tab.end[tok])
        if cap is not None and need > cap:
            return False
        if self.single and tab.newline[tok]:
            return need == 0
        return need <= rem

    def _advance(self, st: _State, tok: int) -> _State:
        if tok in self.eos:
            return st
        tab = self.table.table(st.lex)
        pops, push = tab.pops[tok], tab.pushes[tok]
        if pops == _ERR:
            return _State(tab.end[tok], st.opened + push, st.closed)
        n = len(pops)
        if n <= len(st.opened):
            return _State(tab.end[tok], st.opened[: len(st.opened) - n] + push, st.closed)
        return _State(tab.end[tok], push, st.closed + n - len(st.opened))

    def _end_open_t(self, lex: int) -> torch.Tensor:
        t = self._end_open.get(lex)
        if t is None:
            ends = self.table.table(lex).end_t
            ok = torch.tensor(sorted(self.ctx.end_ok), dtype=torch.long, device=ends.device)
            t = self._end_open[lex] = (~torch.isin(ends, ok)).long()
        return t

    def _max_push(self, lex: int) -> int:
        n = self._maxp.get(lex)
        if n is None:
            pl = self.table.table(lex).push_len
            n = self._maxp[lex] = int(pl.max()) if pl.numel() else 0
        return n

    def _special_row(self, st: _State, tab: StateTable, limit: int) -> torch.Tensor:
        """(S,) bool: which special tokens are feasible in state ``st`` with ``limit`` positions."""
        dev = self.table.device
        seq = self._closing(st)
        ok_pops = torch.zeros(len(tab.pops_index), dtype=torch.bool, device=dev)
        ids = [tab.pops_index[seq[:k]] for k in range(len(seq) + 1) if seq[:k] in tab.pops_index]
        ok_pops[torch.tensor(ids, dtype=torch.long, device=dev)] = True
        need = (len(st.opened) - tab.pops_len).clamp_(min=0) + tab.push_len + self._end_open_t(st.lex)
        if self.single:
            return ok_pops[tab.pops_id] & (need <= torch.where(tab.newline_t, 0, limit))
        return ok_pops[tab.pops_id] & (need <= limit)


class _LazyArgmax:
    """The argmax canvas, computed in chunks as the walk reaches them (it stops at EOS)."""

    CHUNK = 8

    def __init__(self, row_logits: torch.Tensor):
        self.logits = row_logits
        self.ids: list[int] = []
        self.fixed: dict[int, int] = {}

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def __getitem__(self, i: int) -> int:
        if i in self.fixed:
            return self.fixed[i]
        while len(self.ids) <= i:
            a = len(self.ids)
            self.ids += self.logits[a : a + self.CHUNK].argmax(-1).tolist()
        return self.ids[i]

    def __setitem__(self, i: int, tok: int) -> None:
        self.fixed[i] = tok


# --------------------------------------------------------------------------- glue
class HookChain:
    """Several logits hooks in order; ``begin``/``accept`` forwarded to those that have them."""

    def __init__(self, *hooks: Any):
        self.hooks = [h for h in hooks if h is not None]

    def begin(self, prev_ids: Sequence[int], final: bool = True, fixed: Any = None, **kw: Any) -> None:
        for h in self.hooks:
            if hasattr(h, "begin"):
                h.begin(prev_ids, final, fixed, **kw)

    def __call__(self, logits: torch.Tensor, argmax: torch.Tensor) -> None:
        for h in self.hooks:
            h(logits, argmax)

    def accept(self, sampled: torch.Tensor, accept: torch.Tensor) -> torch.Tensor:
        for h in self.hooks:
            if hasattr(h, "accept"):
                accept = h.accept(sampled, accept)
        return accept


def for_engine(engine: Any, spec: Any, prefix: str, suffix: str, mode: str) -> CanvasConstraint:
    """The constraint for one completion with ``engine``'s tokenizer in ``spec``'s language."""
    lexicon = lexicon_for(spec)
    table = token_table(engine.tokenizer, engine.vocab_size, lexicon, engine.device)
    return CanvasConstraint(table, analyse(lexicon, prefix, suffix, mode), engine.eos_ids, single_line=mode == "single")


_LEXICONS: dict[Any, Lexicon] = {}


def lexicon_for(spec: Any) -> Lexicon:
    lx = _LEXICONS.get(spec)
    if lx is None:
        lx = _LEXICONS[spec] = Lexicon.from_spec(spec)
    return lx


AcceptHook = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
__all__ = ["Lexicon", "Run", "TokenTable", "token_table", "Context", "analyse", "CanvasConstraint",
           "HookChain", "for_engine", "lexicon_for", "AcceptHook", "CODE"]
