"""Canvas noise for training (dg_lsp/training/noise.py), the ``correct`` kind above all: masks plus
wrong visible tokens and edits of the true middle, which teach the canvas to doubt and fix what it
sees (issue 26); the same draws for every data-parallel rank; the lean trainer's loss over it."""

from __future__ import annotations

import torch

from dg_lsp.training import noise

VOCAB, MASK, C = 300, 6, 16


def _x0(n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randint(7, VOCAB, (n, C), generator=g)


def test_correct_noise_masks_replaces_and_edits():
    x0 = _x0()
    cor = noise.corrupt(x0, "correct", "uniform", VOCAB, MASK, noise.step_generator(1, 5))
    assert torch.equal(cor.hit, cor.xt != x0)  # hit: exactly where the canvas is not the truth
    masked = cor.xt == MASK
    wrong = cor.hit & ~masked  # visible tokens that are not the truth: the ones to doubt
    assert masked.any() and wrong.any()
    assert (cor.hit.float().mean(1) > 0).float().mean() > 0.8  # nearly every canvas has something to do
    # edits: a swap, a repeat or a drop shows as a visible token that is the truth of a neighbour
    shifted = ((cor.xt[:, :-1] == x0[:, 1:]) | (cor.xt[:, 1:] == x0[:, :-1])) & ~masked[:, :-1] & wrong[:, :-1]
    assert shifted.any(dim=1).sum() >= 5
    again = noise.corrupt(x0, "correct", "uniform", VOCAB, MASK, noise.step_generator(1, 5))
    assert torch.equal(again.xt, cor.xt)  # a pure function of (seed, step)
    other = noise.corrupt(x0, "correct", "uniform", VOCAB, MASK, noise.step_generator(1, 6))
    assert not torch.equal(other.xt, cor.xt)


def test_a_rank_draws_its_rows_of_the_whole_batch():
    x0 = _x0(24)
    whole = noise.corrupt(x0, "correct", "high", VOCAB, MASK, noise.step_generator(2, 9))
    part = noise.corrupt(x0[8:16], "correct", "high", VOCAB, MASK, noise.step_generator(2, 9), offset=8, total=24)
    assert torch.equal(part.xt, whole.xt[8:16]) and torch.equal(part.hit, whole.hit[8:16])


def test_correct_noise_trains_every_position_and_checkpoints_start_from_mask():
    from model.train import TrainConfig, sampler_for
    from dg_lsp.training.config import ModelSize, make_config
    from dg_lsp.training.lean import LeanForward
    from dg_lsp.training.steps import step_losses
    from transformers import DiffusionGemmaForBlockDiffusion

    assert sampler_for(TrainConfig(noise="correct")) == {"canvas_init": "mask"}
    torch.manual_seed(0)
    size = ModelSize(hidden=48, layers=2, heads=2, kv_heads=1, head_dim=24, intermediate=96, moe_intermediate=24,
                     canvas_length=C)
    model = DiffusionGemmaForBlockDiffusion(make_config(VOCAB, size)).float()
    g = torch.Generator().manual_seed(1)
    batch = {"input_ids": torch.randint(7, VOCAB, (2, 12), generator=g), "prompt_lens": torch.tensor([12, 12]),
             "canvas": torch.randint(7, VOCAB, (2, C), generator=g)}
    ids = {"vocab": VOCAB, "eos": 1, "pad": 0, "mask": MASK}
    losses = {}
    for kind in ("mask", "correct"):
        model.zero_grad()
        cfg = TrainConfig(canvases=2, noise=kind, ar_weight=0.0)
        closs, _, _ = step_losses(LeanForward(model), batch, cfg, ids, step=4, use_sc=False)
        losses[kind] = float(closs)
        assert torch.isfinite(closs)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # mask noise scores the masked positions only; correct scores every position (most visible and
    # right, so easy for a random model too): the two losses are not the same number
    assert losses["mask"] != losses["correct"]


def test_correct_noise_shares_set_how_many_visible_tokens_are_wrong_and_canvases_edited():
    x0 = torch.randint(7, VOCAB, (64, C), generator=torch.Generator().manual_seed(3))
    none = noise.corrupt(x0, "correct", "uniform", VOCAB, MASK, noise.step_generator(1, 5), wrong_share=0.0,
                         edit_share=0.0)
    # no wrong tokens and no edits: every change is a mask
    assert torch.equal(none.xt[none.hit], torch.full_like(none.xt[none.hit], MASK))
    heavy = noise.corrupt(x0, "correct", "uniform", VOCAB, MASK, noise.step_generator(1, 5), wrong_share=0.5,
                          edit_share=1.0)
    visible_wrong = ((heavy.xt != x0) & (heavy.xt != MASK)).sum()
    default = noise.corrupt(x0, "correct", "uniform", VOCAB, MASK, noise.step_generator(1, 5))
    assert visible_wrong > ((default.xt != x0) & (default.xt != MASK)).sum() > 0
