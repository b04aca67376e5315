"""Rolling per-phase timings of completions, reported by the ``dg-lsp.status`` command."""

from __future__ import annotations

import statistics
from collections import deque
from typing import Any


class Stats:
    def __init__(self, keep: int = 2000):
        self.timings: deque[dict[str, float]] = deque(maxlen=keep)
        self.steps: deque[int] = deque(maxlen=keep)
        self.tokens: deque[int] = deque(maxlen=keep)
        self.cached: deque[float] = deque(maxlen=keep)
        self.answered = 0
        self.dropped = 0
        self.cache_hits = 0  # answered from the completion cache (no model run)
        self.withheld = 0  # automatic suggestions under minConfidence (not shown)
        self.prefetches = 0  # prefetches that ran to the end
        self.prefetched_tokens = 0  # prompt tokens they encoded

    def record(self, timings: dict[str, float], steps: int, tokens: int, cached: int, prompt: int) -> None:
        self.answered += 1
        self.timings.append(timings)
        self.steps.append(steps)
        self.tokens.append(tokens)
        self.cached.append(cached / prompt if prompt else 0.0)

    def summary(self) -> dict[str, Any]:
        phases: dict[str, float] = {}
        for key in {k for t in self.timings for k in t}:
            vals = [t[key] for t in self.timings if key in t]
            phases[key] = statistics.median(vals)
        steps = sum(self.steps)
        return {
            "answered": self.answered,
            "dropped": self.dropped,
            "completion_cache_hits": self.cache_hits,
            "withheld": self.withheld,
            "prefetches": self.prefetches,
            "prefetched_tokens": self.prefetched_tokens,
            "median_ms": phases,
            "denoising_steps_mean": steps / len(self.steps) if self.steps else 0.0,
            "tokens_per_forward": sum(self.tokens) / steps if steps else 0.0,
            "prompt_cache_reuse_mean": statistics.fmean(self.cached) if self.cached else 0.0,
        }
