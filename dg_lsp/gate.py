"""A learned gate: the probability that a suggestion is useful, from what the server knows when it
decides to show it.

The model's own confidence (``dg_lsp.confidence.model_confidence``) reads only the draft's
probabilities. The gate also reads the memories' evidence (how much of the answer they supplied
and agreed on, how long their matches were), how the answer ended (an EOS, or a cut where the
model became unsure), its length and the kind of hole (rest of a line, a new line, a block), and
maps them through a logistic regression fitted on dev holes of the held-out packages
(``benchmarks/fit_gate.py``; never on the test holes). The weights are data that belongs to a
checkpoint: ``gate.json`` in its folder (the embedded model ships one); a checkpoint without one
keeps the model's own confidence. ``minConfidence`` then reads as "the probability that this
suggestion is useful". The judge's hard rules (``dg_lsp.confidence.judge``: empty, repeated,
the same answer everywhere, a block left broken, under 4 characters) still apply on top.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

FILE = "gate.json"
FEATURES = (
    "logp",  # mean log-probability of the kept tokens (and EOS where it ended them)
    "chars",  # log(1 + characters of the answer)
    "tokens",  # log(1 + tokens of the answer)
    "eos",  # 1 when the answer ended with EOS (the model finished it), 0 when cut or out of budget
    "supplied",  # share of the answer's tokens the memories gave more probability than the model
    "agreed",  # share of tokens that were a memory's most frequent next token
    "match",  # log(1 + mean longest match length over the answer's tokens)
    "memory",  # 1 when a memory was mixed in
    "mid_line",  # 1 when the cursor line has code before the cursor (rest of a line)
    "multi",  # 1 for a block (multi-line) completion
)


def features(result: Any, text: str, mode: str, mid_line: bool) -> list[float]:
    """The gate's inputs for a post-processed answer ``text`` from the engine's ``result``."""
    sig = getattr(result, "signals", None)
    logp = float(sig.first) if sig is not None and sig.tokens else -10.0
    mem = getattr(result, "memory", None) or {}
    n = max(1, int(mem.get("tokens", 0)))
    return [
        max(-10.0, logp),
        math.log1p(len(text.strip())),
        math.log1p(len(getattr(result, "token_ids", []) or [])),
        1.0 if (getattr(result, "hit_eos", False) and not getattr(result, "partial", False)) else 0.0,
        mem.get("supplied", 0) / n,
        mem.get("agreed", 0) / n,
        math.log1p(float(mem.get("mean_length", 0.0))),
        1.0 if mem else 0.0,
        1.0 if mid_line else 0.0,
        1.0 if mode == "multi" else 0.0,
    ]


@dataclass
class Gate:
    """A logistic regression over ``FEATURES`` (standardised with ``mean`` / ``scale``)."""

    weights: list[float]
    bias: float
    mean: list[float]
    scale: list[float]
    meta: dict

    def probability(self, x: Sequence[float]) -> float:
        z = self.bias + sum(w * (v - m) / s for w, v, m, s in zip(self.weights, x, self.mean, self.scale))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def to_json(self) -> dict:
        return {"features": list(FEATURES), "weights": self.weights, "bias": self.bias, "mean": self.mean,
                "scale": self.scale, "meta": self.meta}

    @classmethod
    def from_json(cls, d: dict) -> "Gate":
        if list(d.get("features", [])) != list(FEATURES):
            raise ValueError(f"gate features {d.get('features')} are not this version's {list(FEATURES)}")
        return cls([float(w) for w in d["weights"]], float(d["bias"]), [float(v) for v in d["mean"]],
                   [float(v) or 1.0 for v in d["scale"]], dict(d.get("meta", {})))


def load(folder: str | Path) -> Gate | None:
    """The gate of the checkpoint in ``folder``, or None (none, or not for this version)."""
    p = Path(folder) / FILE
    if not p.is_file():
        return None
    try:
        return Gate.from_json(json.loads(p.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fit(xs: Sequence[Sequence[float]], ys: Sequence[int], l2: float = 1.0, iters: int = 50) -> Gate:
    """Logistic regression by Newton's method (IRLS) with an L2 penalty on standardised inputs."""
    import numpy as np

    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    reg = np.eye(z.shape[1]) * l2
    reg[0, 0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -50, 50)))
        g = z.T @ (p - y) + reg @ w
        h = (z * (p * (1 - p))[:, None]).T @ z + reg
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Gate(w[1:].tolist(), float(w[0]), mean.tolist(), scale.tolist(), {})
