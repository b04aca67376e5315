"""A token index: for a context of token ids, the next tokens after the longest suffix of the
context that occurs in the indexed sequences.

Sequences are concatenated into one int32 array ``T`` with ``SEP`` (-1) before, between and
after them, so every position has a successor and no match crosses from one sequence into the
next. A match of length ``k`` is the set of positions ``p`` (each the index in ``T`` of the last
matched token) where ``T[p-k+1 : p+1]`` equals the context's last ``k`` tokens and ``T[p+1]`` is a
token (not ``SEP``, not in an excluded span): an occurrence with nothing after it predicts nothing
and does not count, so the index at the cursor of a document ("prefix SEP suffix") is never its
own longest match.

Two ways to find matches, the same answers (``tests/test_memory.py`` checks them against a
brute-force search):

* **scan** (short arrays, an open document): the positions of the context's last token
  (``np.flatnonzero``), filtered backwards one token at a time. No build cost, so a document
  can be indexed afresh on every request.
* **suffix array** (long arrays, a workspace): ``pydivsufsort`` sorts the suffixes of the
  *reversed* array; the context read backwards is a pattern whose ranges nest as it grows, so
  each further context token is two binary searches inside the previous range.

``Matcher`` follows a draft token by token: the positions of a match of length ``k``, each moved
one token on and filtered by the token drafted, are those of the match of length ``k + 1``; only
when none is left is the context searched again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

SEP = -1
# Longest suffix of the context looked for (tokens): longer matches are rarely different.
MAX_MATCH = 24
# Arrays from this length get a suffix array; shorter ones are scanned (no build).
SA_MIN = 1 << 16
# Positions kept per match: beyond this, an even sample (the next-token counts of a very
# frequent short context are its distribution, not its every occurrence).
MAX_POSITIONS = 2048
# Occurrences whose successors are counted for a match's next-token distribution (an even sample).
COUNT_SAMPLE = 256
# Below this many candidates a range is narrowed with numpy in one go, above it by bisection.
VECTOR_RANGE = 4096


@dataclass
class Match:
    """The longest-suffix match of a context: ``length`` tokens, at ``positions`` (the index in
    the token array of each occurrence's last token, each with a successor; an even sample of
    at most ``MAX_POSITIONS`` when there are more)."""

    length: int
    positions: np.ndarray

    @property
    def found(self) -> bool:
        return self.length > 0 and len(self.positions) > 0


NO_MATCH = Match(0, np.zeros(0, dtype=np.int64))


class TokenIndex:
    """Sequences of token ids, searchable for longest-suffix matches (see the module doc)."""

    def __init__(self, seqs: Sequence[Sequence[int]], *, sa_min: int = SA_MIN):
        lens = [len(s) for s in seqs]
        n = sum(lens) + len(lens) + 1
        t = np.full(n, SEP, dtype=np.int32)
        starts = np.zeros(len(lens), dtype=np.int64)
        at = 1
        for i, s in enumerate(seqs):
            starts[i] = at
            if len(s):
                t[at : at + len(s)] = np.asarray(s, dtype=np.int32)
            at += len(s) + 1
        self.tokens = t  # (N,) int32, SEP-separated
        self.starts = starts  # (S,) where each sequence begins in ``tokens``
        self.lengths = np.asarray(lens, dtype=np.int64)
        self.sa: np.ndarray | None = None
        self.rev: np.ndarray | None = None
        if n >= sa_min:
            import pydivsufsort

            self.rev = np.ascontiguousarray((t[::-1].astype(np.int64) + 1).astype(np.uint32))  # SEP -> 0
            self.sa = pydivsufsort.divsufsort(self.rev).astype(np.int64)

    # -------------------------------------------------------------- sizes
    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.tokens, self.starts, self.lengths, self.sa, self.rev) if a is not None)

    # -------------------------------------------------------------- search
    def _valid(self, pos: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
        """Positions whose successor is a token and which lie outside ``exclude`` spans."""
        pos = pos[self.tokens[pos + 1] >= 0]
        if exclude is not None and len(exclude) and len(pos):
            keep = np.ones(len(pos), dtype=bool)
            for a, b in exclude:
                keep &= (pos < a) | (pos >= b)
            pos = pos[keep]
        return pos

    def match(self, context: Sequence[int], *, exclude: np.ndarray | None = None,
              max_len: int = MAX_MATCH) -> Match:
        """The longest suffix of ``context`` (up to ``max_len`` tokens) that occurs with a
        successor outside the ``exclude`` spans ((a, b) pairs of positions in ``tokens``, each a
        whole sequence with the separator after it: a hidden file)."""
        ctx = [int(c) for c in context[-max_len:]]
        if not ctx or ctx[-1] < 0:
            return NO_MATCH
        if self.sa is None:
            return self._scan(ctx, exclude)
        return self._search(ctx, exclude)

    def _scan(self, ctx: list[int], exclude: np.ndarray | None) -> Match:
        t = self.tokens
        pos = self._valid(np.flatnonzero(t == ctx[-1]), exclude)
        if not len(pos):
            return NO_MATCH
        k = 1
        while k < len(ctx):
            prev = pos - k
            nxt = pos[(prev >= 0) & (t[np.maximum(prev, 0)] == ctx[-1 - k])]
            if not len(nxt):
                break
            pos, k = nxt, k + 1
        return Match(k, pos[_even(len(pos), MAX_POSITIONS)])

    def _search(self, ctx: list[int], exclude: np.ndarray | None) -> Match:
        """Nested ranges of the reversed array's suffix array, one per context token read
        backwards; the longest with a valid occurrence wins."""
        sa, rev = self.sa, self.rev
        assert sa is not None and rev is not None
        n = len(rev)
        lo, hi = 0, len(sa)
        ranges: list[tuple[int, int]] = []
        for j, tok in enumerate(reversed(ctx)):
            c = tok + 1
            lo, hi = _narrow(sa, rev, lo, hi, j, c)
            if lo >= hi:
                break
            ranges.append((lo, hi))
        # the longest k whose occurrences include one with a successor (outside ``exclude``):
        # shorter matches have more occurrences, so that is monotone in k, and a binary search
        # finds it (the text before the cursor, or a hidden file, can match very long)
        best = NO_MATCH
        a, b = 1, len(ranges)
        while a <= b:
            k = (a + b) // 2
            lo, hi = ranges[k - 1]
            idx = lo + _even(hi - lo, MAX_POSITIONS)
            pos = self._valid(n - 1 - sa[idx], exclude)  # forward index of the context's last token
            if len(pos):
                best, a = Match(k, pos), k + 1
            else:
                b = k - 1
        return best

    def advance(self, m: Match, token: int, context: Sequence[int], *, exclude: np.ndarray | None = None,
                max_len: int = MAX_MATCH) -> Match:
        """The match of ``context`` (which ends with ``token``) from ``m``, that of the context
        before ``token``: its occurrences followed by ``token``, else a new search."""
        if m.found and token >= 0:
            pos = m.positions + 1
            pos = self._valid(pos[self.tokens[pos] == token], exclude)
            if len(pos) and m.length < max_len:
                return Match(m.length + 1, pos)
        return self.match(context, exclude=exclude, max_len=max_len)

    def next_counts(self, m: Match) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, counts) of what follows the match's occurrences."""
        if not m.found:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        pos = m.positions[_even(len(m.positions), COUNT_SAMPLE)]  # a frequent context: an even sample
        ids, counts = np.unique(self.tokens[pos + 1], return_counts=True)
        return ids.astype(np.int64), counts.astype(np.int64)


    def next_share(self, m: Match, token: int) -> float:
        """The share of the match's occurrences (``next_counts``' sample) that ``token`` follows."""
        if not m.found:
            return 0.0
        pos = m.positions[_even(len(m.positions), COUNT_SAMPLE)]
        return float(np.count_nonzero(self.tokens[pos + 1] == token)) / len(pos)


def _even(n: int, k: int) -> np.ndarray:
    """Indices 0..n-1, or ``k`` of them evenly spread when ``n`` is larger."""
    if n <= k:
        return np.arange(n, dtype=np.int64)
    return (np.arange(k, dtype=np.int64) * n) // k


def _narrow(sa: np.ndarray, rev: np.ndarray, lo: int, hi: int, j: int, c: int) -> tuple[int, int]:
    """Within suffixes ``sa[lo:hi]`` (which agree on their first ``j`` symbols), those whose
    ``j``-th symbol is ``c``: a sub-range, found by the ``j``-th symbols' order."""
    n = len(rev)
    if hi - lo <= VECTOR_RANGE:
        at = sa[lo:hi] + j
        sym = np.where(at < n, rev[np.minimum(at, n - 1)].astype(np.int64), -1)  # past the end sorts first
        a = int(np.searchsorted(sym, c, side="left"))
        b = int(np.searchsorted(sym, c, side="right"))
        return lo + a, lo + b

    def sym_at(i: int) -> int:
        p = int(sa[i]) + j
        return int(rev[p]) if p < n else -1

    a, b = lo, hi
    while a < b:  # first index with symbol >= c
        mid = (a + b) // 2
        if sym_at(mid) < c:
            a = mid + 1
        else:
            b = mid
    first = a
    b = hi
    while a < b:  # first index with symbol > c
        mid = (a + b) // 2
        if sym_at(mid) <= c:
            a = mid + 1
        else:
            b = mid
    return first, a
