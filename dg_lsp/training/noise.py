"""Noise for canvas training: how a clean canvas x0 becomes the x_t the model denoises.

Two kinds, named the way the checkpoint's ``generation_config.json`` names its starting
canvas (``canvas_init``), so the server starts sampling where the model was trained:

* ``uniform`` -- DiffusionGemma's own: each position is replaced by a uniformly random
  vocabulary token with probability t. The model must find which tokens are noise.
* ``mask`` -- absorbing: each position becomes ``<mask>`` with probability t. Which
  positions to fill is given; at small scale this learns faster (von Rutte et al., 2512.10858).
* ``correct`` -- ``mask``, plus wrong *visible* tokens the model must find and fix (issue 26:
  mask training alone never asks the canvas to doubt a visible token, arXiv 2512.15596): each
  position the masks leave visible is a uniformly random token with probability
  ``WRONG_SHARE`` (DiffusionGemma's own noise), and with probability ``EDIT_SHARE`` (every
  canvas, by default) a canvas also gets one edit of its true middle (Seed Diffusion's edit
  corruptions, arXiv 2508.02193): two adjacent tokens swapped, a token replaced by another
  token of the same canvas (a name used elsewhere), a token dropped (the rest shifts left, EOS
  fills the end) or a token repeated (the rest shifts right). The target is the true canvas at
  every position. A checkpoint trained so still starts sampling from ``<mask>``
  (``canvas_init: "mask"``).

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

NOISES = ("uniform", "mask", "correct")
# ``correct``: the share of visible positions replaced by a random token, and of canvases edited
# (the defaults of ``model.train``'s ``--wrong-share`` and ``--edit-share``). Chosen on the dev cuts
# in stint 4 of the small run over 0.1 / 0.5 (docs/canvas.md, "The correction share")
WRONG_SHARE = 0.3
EDIT_SHARE = 1.0
EDITS = ("swap", "substitute", "drop", "repeat")
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
    hit: torch.Tensor  # (N, C) bool, positions the noise replaced (``correct``: where xt != x0)
    t: torch.Tensor  # (N, 1)


def corrupt(x0: torch.Tensor, kind: str, dist: str, vocab: int, mask_id: int, gen: torch.Generator,
            offset: int = 0, total: int | None = None, wrong_share: float = WRONG_SHARE,
            edit_share: float = EDIT_SHARE) -> Corrupted:
    """Corrupt canvases ``x0`` (N, C). With ``total``, ``x0`` is rows offset..offset+N of a
    batch of ``total`` canvases and the draws are that batch's, sliced (data-parallel ranks).
    ``wrong_share``, ``edit_share``: ``correct`` noise's shares (``WRONG_SHARE``, ``EDIT_SHARE``)."""
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
    elif kind == "correct":
        # the draws for the whole batch, then this slice (data-parallel ranks agree)
        wrong = torch.rand(total, c, generator=gen) < wrong_share
        edit = torch.rand(total, generator=gen) < edit_share
        op = torch.randint(0, len(EDITS), (total,), generator=gen)
        at = torch.randint(0, max(1, c - 1), (total,), generator=gen)
        src = torch.randint(0, c, (total,), generator=gen)
        sl = slice(offset, offset + n)
        wrong, edit, op, at, src = wrong[sl], edit[sl], op[sl].tolist(), at[sl].tolist(), src[sl].tolist()
        base = x0.clone()
        for r in range(n):  # one edit of the true middle, before masks and random tokens
            if not bool(edit[r]):
                continue
            row, i = base[r], at[r]
            kind_r = EDITS[op[r]]
            if kind_r == "swap":
                row[i], row[i + 1] = x0[r, i + 1], x0[r, i]
            elif kind_r == "substitute":
                row[i] = x0[r, src[r]]
            elif kind_r == "drop":
                row[i:-1] = x0[r, i + 1:].clone()
                row[-1] = x0[r, -1]
            else:  # repeat
                row[i + 1:] = x0[r, i:-1].clone()
        xt = torch.where(wrong.to(x0.device) & ~hit, noise, base)
        xt = torch.where(hit, torch.full_like(x0, mask_id), xt)
        hit = xt != x0
    else:
        raise ValueError(f"unknown noise {kind!r}")
    return Corrupted(xt, hit, t)
