"""Mixing the memories into each decoding step.

A ``Memory`` is what one request may read: scopes (the open document, other open documents,
the workspace), each a ``TokenIndex`` with the spans it must not read (an open document's file
in the workspace index: the buffer replaces the disk). A ``Cursor`` follows one sequence being
decoded (the prefix's last tokens, then each token drafted) and turns the model's next-token
distribution ``p`` into

    p' = (1 - sum_s l_s) p + sum_s l_s q_s

where ``q_s`` is scope ``s``'s next-token distribution after the longest suffix of the sequence
that occurs in it, and ``l_s`` its weight: ``weight_s * ramp(k)`` for a match of ``k`` tokens
(0 under ``min_length``, rising to ``weight_s`` at ``min_length + ramp - 1``). Where the memories
are silent the model's distribution is untouched; the mixed probabilities are what the draft's
argmax, its cut and the confidence read. ``MixParams`` defaults were chosen on a dev cut of the
held-out packages (``benchmarks/memory.py``, docs/memory.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np
import torch

from dg_lsp.memory.index import MAX_MATCH, Match, TokenIndex

SCOPES = ("document", "open", "workspace")
_ANY_VOCAB = 1 << 62  # ``_parts``' vocabulary bound where no model distribution limits the ids


@dataclass(frozen=True)
class MixParams:
    """How much a scope's match is trusted (chosen on the dev cut, docs/memory.md)."""

    weights: tuple[tuple[str, float], ...] = (("document", 0.5), ("open", 0.3), ("workspace", 0.3))
    min_length: int = 1  # matches shorter than this are not used
    ramp: int = 1  # tokens of match over which the weight rises to its full value
    max_total: float = 0.9  # the memories' weights together never exceed this
    # the causal draft's cuts while a memory is mixed in (the checkpoint's own, draft_cut 0.1 and
    # draft_short_cut 0.01 for the embedded model, were chosen without one): dev cut, docs/memory.md
    draft_cut: float = 0.3
    draft_short_cut: float = 0.02
    token_floor: float = 0.0  # and before any token whose mixed probability is under this

    def weight(self, scope: str) -> float:
        return dict(self.weights).get(scope, 0.0)

    def lam(self, scope: str, length: int) -> float:
        if length < self.min_length or length <= 0:
            return 0.0
        return self.weight(scope) * min(1.0, (length - self.min_length + 1) / max(1, self.ramp))


@dataclass
class Scope:
    name: str
    index: TokenIndex
    exclude: np.ndarray | None = None  # (m, 2) spans of ``index.tokens`` not to read


@dataclass
class Memory:
    """The scopes one request reads, and how they are mixed."""

    scopes: list[Scope]
    params: MixParams = field(default_factory=MixParams)

    def cursor(self, context: Sequence[int]) -> "Cursor":
        return Cursor(self, list(context[-MAX_MATCH:]))

    def describe(self) -> dict:
        return {s.name: {"tokens": s.index.n_tokens, "sequences": len(s.index.starts)} for s in self.scopes}


@dataclass
class Evidence:
    """What the memories said about one decoded token."""

    length: int = 0  # the longest match among the scopes that had one
    agreed: bool = False  # a scope's most frequent next token was this token
    supplied: bool = False  # the memories gave this token more probability than the model did


class _Part(NamedTuple):
    """What one scope says after a sequence: its next tokens, their distribution, its weight."""

    ids: np.ndarray  # (K,) token ids
    q: np.ndarray  # (K,) their share of the occurrences
    lam: float  # the scope's weight for this match
    length: int  # the match's length
    ids_t: torch.Tensor  # ``ids`` as a tensor
    weighted: torch.Tensor  # ``q * lam`` float32


class Cursor:
    """One decoded sequence's matches, per scope, advanced token by token (``push``)."""

    def __init__(self, memory: Memory, context: list[int]):
        self.memory = memory
        self.context = context
        self.matches: list[Match] = [s.index.match(context, exclude=s.exclude) for s in memory.scopes]
        self._cached: list[_Part] | None = None
        self._cached_vocab = 0
        self.evidence: list[Evidence] = []
        self._last: tuple[torch.Tensor, list[_Part]] | None = None  # the latest ``mix``: model's probs, parts
        self.forks: list[Cursor] = []  # ``FastModel.draft_branches``: each row's cursor

    def fork(self) -> "Cursor":
        c = Cursor.__new__(Cursor)
        c.memory, c.context, c.matches = self.memory, list(self.context), list(self.matches)
        c.evidence, c._last, c._cached, c._cached_vocab = list(self.evidence), self._last, self._cached, self._cached_vocab
        c.forks = []
        return c

    def mix(self, probs: torch.Tensor) -> torch.Tensor:
        """``probs`` (V,) float32, the model's next-token distribution -> the mixed one (a new tensor
        when a memory speaks, else ``probs`` itself)."""
        parts = self._parts(probs.shape[-1])
        self._last = (probs, parts)
        if not parts:
            return probs
        total = sum(p.lam for p in parts)
        scale = min(1.0, self.memory.params.max_total / total)
        out = probs * (1.0 - total * scale)
        for p in parts:
            out.index_add_(0, p.ids_t.to(out.device), (p.weighted * scale).to(dtype=out.dtype, device=out.device))
        return out

    def logprob(self, token: int, logp: float) -> float:
        """The mixed log-probability of ``token`` next, given the model's (``logp``): ``mix`` for
        one token (a teacher-forced score has the model's probability of its token only)."""
        params = self.memory.params
        said = [(params.lam(s.name, m.length), s.index, m) for s, m in zip(self.memory.scopes, self.matches) if m.found]
        said = [x for x in said if x[0] > 0.0]
        if not said:
            return logp
        total = sum(lam for lam, _, _ in said)
        scale = min(1.0, params.max_total / total)
        mem = sum(lam * index.next_share(m, token) for lam, index, m in said) * scale
        return math.log(math.exp(logp) * (1.0 - total * scale) + mem)

    def top(self) -> int | None:
        """The token the memories find most likely next (None where they are silent)."""
        best: dict[int, float] = {}
        for p in self._parts(_ANY_VOCAB):
            for t, w in zip(p.ids.tolist(), (p.q * p.lam).tolist()):
                best[t] = best.get(t, 0.0) + w
        return max(best, key=best.__getitem__) if best else None

    def _parts(self, vocab: int) -> list[_Part]:
        """What each scope that speaks after this sequence says; computed once per state (a
        canvas asks again at every step)."""
        if self._cached is not None and self._cached_vocab == vocab:
            return self._cached
        parts = []
        params = self.memory.params
        for scope, m in zip(self.memory.scopes, self.matches):
            lam = params.lam(scope.name, m.length) if m.found else 0.0
            if lam <= 0.0:
                continue
            ids, counts = scope.index.next_counts(m)
            ok = ids < vocab
            ids, counts = ids[ok], counts[ok]
            if len(ids):
                q = counts / counts.sum()
                parts.append(_Part(ids, q, lam, m.length, torch.from_numpy(ids), torch.from_numpy(q * lam).float()))
        self._cached, self._cached_vocab = parts, vocab
        return parts

    def push(self, token: int) -> None:
        """``token`` was decoded: record the memories' evidence for it and advance every match."""
        token = int(token)
        ev = Evidence()
        if self._last is not None:
            probs, parts = self._last
            mem = 0.0
            for p in parts:
                ev.length = max(ev.length, p.length)
                hit = np.flatnonzero(p.ids == token)
                if len(hit):
                    mem += p.lam * float(p.q[hit[0]])
                    ev.agreed = ev.agreed or int(p.ids[int(np.argmax(p.q))]) == token
            ev.supplied = mem > float(probs[token]) * (1.0 - sum(p.lam for p in parts))
        self.evidence.append(ev)
        self._last = None
        self.context.append(token)
        if len(self.context) > 4 * MAX_MATCH:
            del self.context[: -MAX_MATCH]
        self.matches = [s.index.advance(m, token, self.context, exclude=s.exclude)
                        for s, m in zip(self.memory.scopes, self.matches)]
        self._cached = None

    def summary(self, n: int | None = None) -> dict:
        """The evidence over the first ``n`` decoded tokens (all when None)."""
        ev = self.evidence if n is None else self.evidence[:n]
        k = len(ev)
        return {
            "tokens": k,
            "supplied": sum(e.supplied for e in ev),
            "agreed": sum(e.agreed for e in ev),
            "mean_length": (sum(e.length for e in ev) / k) if k else 0.0,
        }


class MemoryHook:
    """The memories in a denoising loop (a sampler ``logits_hook``, for canvases: checkpoints
    that answer by denoising, the real DiffusionGemma among them): each row's positions, left to
    right, get ``Cursor.mix`` of their distribution, the cursor following the row's current
    best tokens (``argmax``) up to its first EOS."""

    def __init__(self, cursor: Cursor, eos_ids: Sequence[int]):
        self.cursor = cursor
        self.eos = set(int(i) for i in eos_ids)
        self.last: Cursor | None = None  # the first row's cursor after the latest step
        # the cursor after each prefix of best tokens seen: steps mostly keep the prefix, so the
        # searches are not repeated (a canvas step then costs a mix per position)
        self._states: dict[tuple[int, ...], Cursor] = {(): cursor}

    def _state(self, prefix: tuple[int, ...]) -> Cursor:
        c = self._states.get(prefix)
        if c is None:
            c = self._state(prefix[:-1]).fork()
            c.push(prefix[-1])
            if len(self._states) > 4096:
                self._states = {(): self.cursor}
            self._states[prefix] = c
        return c

    def __call__(self, logits: torch.Tensor, argmax: torch.Tensor) -> None:
        rows, length, _ = logits.shape
        for r in range(rows):
            best = tuple(argmax[r].tolist())
            c = self.cursor
            for i in range(length):
                c = self._state(best[:i])
                p = logits[r, i].float().softmax(-1)
                q = c.mix(p)
                if q is not p:
                    logits[r, i] = q.clamp_min(1e-30).log().to(logits.dtype)
                if best[i] in self.eos:
                    break
            if r == 0:
                self.last = self._state(best[: i + 1]) if best[i] not in self.eos else c
