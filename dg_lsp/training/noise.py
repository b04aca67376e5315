"""Noise for canvas training: how a clean canvas x0 becomes the x_t the model denoises.

Two kinds, named the way the checkpoint's ``generation_config.json`` names its starting
canvas (``canvas_init``), so the server starts sampling where the model was trained:

* ``uniform`` -- DiffusionGemma's own: each position is replaced by a uniformly random
  vocabulary token with probability t. The model must find which tokens are noise.
* ``mask`` -- absorbing: each position becomes ``<mask>`` with probability t. Which
  positions to fill is given; at small scale this learns faster (von Rutte et al., 2512.10858).

The noise level t per canvas is drawn from ``t_dist``:

* ``uniform``: t ~ U(0, 1);
* ``high``: t = u ** 0.5 (density 2t): more weight near t = 1, where sampling starts.

Every draw comes from a generator seeded by (seed, step), and for the whole batch at once,
so a step's noise is a pure function of the step (a resumed run draws what an uninterrupted
one would) and a data-parallel rank takes its rows of the same draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NOISES = ("uniform", "mask")
T_DISTS = ("uniform", "high")


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step) * 8 + salt)
    return g


def noise_levels(n: int, dist: str, gen: torch.Generator) -> torch.Tensor:
    """(n, 1) noise levels in (0, 1]."""
    u = torch.rand(n, 1, generator=gen)
    if dist == "uniform":
        t = u
    elif dist == "high":
        t = u.sqrt()
    else:
        raise ValueError(f"unknown noise-level distribution {dist!r}")
    return t.clamp_min(1e-3)


@dataclass
class Corrupted:
    xt: torch.Tensor  # (N, C) noisy canvases
    hit: torch.Tensor  # (N, C) bool, positions the noise replaced
    t: torch.Tensor  # (N, 1)


def corrupt(x0: torch.Tensor, kind: str, dist: str, vocab: int, mask_id: int, gen: torch.Generator,
            offset: int = 0, total: int | None = None) -> Corrupted:
    """Corrupt canvases ``x0`` (N, C). With ``total``, ``x0`` is rows offset..offset+N of a
    batch of ``total`` canvases and the draws are that batch's, sliced (data-parallel ranks)."""
    n, c = x0.shape
    total = total or n
    t = noise_levels(total, dist, gen)
    hit = torch.rand(total, c, generator=gen) < t
    noise = torch.randint(0, vocab, (total, c), generator=gen)
    t, hit, noise = t[offset : offset + n], hit[offset : offset + n], noise[offset : offset + n]
    t, hit, noise = t.to(x0.device), hit.to(x0.device), noise.to(x0.device)
    if kind == "uniform":
        xt = torch.where(hit, noise, x0)
    elif kind == "mask":
        xt = torch.where(hit, torch.full_like(x0, mask_id), x0)
    else:
        raise ValueError(f"unknown noise {kind!r}")
    return Corrupted(xt, hit, t)
