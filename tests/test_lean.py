"""The lean trainer (dg_lsp/training/lean.py) computes transformers' losses and gradients, and
data-parallel training steps as one process at the summed batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import DiffusionGemmaForBlockDiffusion

from dg_lsp.training.config import ModelSize, make_config
from model.train import HFForward, TrainConfig, step_losses
from dg_lsp.training.lean import LeanForward
from test_model import corpus, tok_dir  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 300
SHAPES = {
    "tiny-like": ModelSize(hidden=64, layers=2, heads=2, kv_heads=1, head_dim=32, intermediate=128, moe_intermediate=32),
    # more query heads per key head, top-2 of 3 experts (the routed weights get gradients)
    "gqa-top2": ModelSize(hidden=48, layers=3, heads=4, kv_heads=2, head_dim=16, intermediate=96, experts=3, top_k=2,
                          moe_intermediate=24, canvas_length=8),
}


def _model(size: ModelSize) -> DiffusionGemmaForBlockDiffusion:
    torch.manual_seed(0)
    m = DiffusionGemmaForBlockDiffusion(make_config(VOCAB, size)).float()
    with torch.no_grad():  # norms and scales away from their initial ones, so a missed one shows
        for n, p in m.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.2)
    return m


def _batch(canvas: int) -> dict:
    g = torch.Generator().manual_seed(1)
    lens = torch.tensor([23, 9, 16])
    ids = torch.randint(7, VOCAB, (3, 23), generator=g) * (torch.arange(23)[None] < lens[:, None])
    x0 = torch.randint(7, VOCAB, (3, canvas), generator=g)
    x0[0, 5:] = 1  # a middle that ends: EOS then EOS padding
    return {"input_ids": ids, "prompt_lens": lens, "canvas": x0}


def _grads(model, fwd, cfg, use_sc: bool) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    ids = {"vocab": VOCAB, "eos": 1, "pad": 0, "mask": 6}
    closs, aloss, _ = step_losses(fwd, _batch(model.config.canvas_length), cfg, ids, step=3, use_sc=use_sc)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return closs, aloss, grads


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("recipe", [dict(), dict(noise="mask", ar_weight=0.5, ar_positions=5)])
def test_lean_loss_and_gradients_match_transformers(shape, recipe):
    model = _model(SHAPES[shape])
    cfg = TrainConfig(canvases=2, **recipe)
    for use_sc in (False, True):
        ref = _grads(model, HFForward(model), cfg, use_sc)
        got = _grads(model, LeanForward(model), cfg, use_sc)
        assert torch.allclose(ref[0], got[0], rtol=1e-5), (ref[0], got[0])
        assert torch.allclose(ref[1], got[1], rtol=1e-5), (ref[1], got[1])
        # transformers runs the self-conditioning block on a zero signal when there is none:
        # its parameters get zero gradients there, none here
        assert set(got[2]) <= set(ref[2])
        assert len(got[2]) > 20
        for name, g in ref[2].items():
            mine = got[2].get(name, torch.zeros_like(g))
            scale = g.abs().max().item() + 1e-8
            assert (g - mine).abs().max().item() <= 1e-4 * scale + 1e-7, name


def test_next_token_only_step_runs_no_decoder_and_keeps_the_next_token_gradient():
    """--canvas-weight 0: the loss is the next-token loss alone; the decoder is never called and
    the gradient is the full step's next-token part (the full step minus its canvas-only step)."""
    model = _model(SHAPES["gqa-top2"])
    calls = []

    class Counting(LeanForward):
        def decode(self, *a, **k):
            calls.append(1)
            return super().decode(*a, **k)

    only = TrainConfig(canvases=2, noise="mask", ar_weight=0.5, ar_positions=5, canvas_weight=0.0)
    closs, aloss, g_only = _grads(model, Counting(model), only, True)
    assert calls == [] and float(closs) == 0.0 and float(aloss) > 0
    full = _grads(model, LeanForward(model), TrainConfig(canvases=2, noise="mask", ar_weight=0.5, ar_positions=5), True)
    canvas = _grads(model, LeanForward(model), TrainConfig(canvases=2, noise="mask", ar_weight=0.0), True)
    assert torch.allclose(full[1], aloss)
    for name, g in g_only.items():
        want = full[2][name] - canvas[2].get(name, torch.zeros_like(g))
        assert (g - want).abs().max().item() <= 1e-4 * (want.abs().max().item() + 1e-8) + 1e-6, name
    assert g_only and not any("self_conditioning" in n for n in g_only)  # the decoder-only block


def test_compiled_lean_forward_matches_eager():
    model = _model(SHAPES["tiny-like"])
    cfg = TrainConfig(canvases=2, ar_weight=1.0, ar_positions=4)
    eager = _grads(model, LeanForward(model), cfg, True)
    compiled = _grads(model, LeanForward(model).compile(), cfg, True)
    assert torch.allclose(eager[0], compiled[0], rtol=1e-4)
    for name, g in eager[2].items():
        assert (g - compiled[2][name]).abs().max().item() <= 1e-3 * g.abs().max().item() + 1e-7, name


def _train(args: list[str], out: Path, corpus_dir: Path, tok: Path, nproc: int = 1) -> dict[str, torch.Tensor]:
    common = ["--out", str(out), "--corpus", str(corpus_dir), "--tokenizer", str(tok), "--size", "tiny",
              "--steps", "3", "--canvases", "2", "--warmup", "1", "--lr", "5e-3", "--prefix-tokens", "48",
              "--suffix-tokens", "16", "--compile", "false", "--bf16", "off", "--threads", "1",
              "--ar-weight", "0.5", "--ar-positions", "6", "--log-every", "1"]
    launcher = [sys.executable, "-m", "model.train"] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "-m", "model.train"]
    env = {**os.environ, "DG_DDP_BACKEND": "gloo", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(launcher + common + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return torch.load(out / "state.pt", weights_only=False)["model"], [(r["loss"], r["ar_loss"]) for r in logged]


def test_two_processes_step_as_one_at_the_doubled_batch(corpus, tok_dir, tmp_path):  # noqa: F811
    two, two_loss = _train(["--batch", "3"], tmp_path / "ddp", corpus, tok_dir, nproc=2)
    one, one_loss = _train(["--batch", "6"], tmp_path / "one", corpus, tok_dir)
    half, half_loss = _train(["--batch", "3"], tmp_path / "half", corpus, tok_dir)
    # the same global losses at every step (logged rounded to 4 decimals)...
    assert len(two_loss) == len(one_loss) == 3
    for (a, b), (c, d) in zip(two_loss, one_loss):
        assert abs(a - c) <= 2e-4 and abs(b - d) <= 2e-4, (two_loss, one_loss)
    # ...and the same weights, up to float rounding that Adam's first steps (update ~ lr * sign(g))
    # magnify for parameters whose gradient is near zero; one process at the per-rank batch
    # lands much further away, so the comparison can fail
    assert two.keys() == one.keys()
    worst = max((two[k] - one[k]).abs().max().item() for k in one)
    other = max((half[k] - one[k]).abs().max().item() for k in one)
    assert worst < 1e-3 and other > 10 * worst, (worst, other)
    assert any(abs(a - c) > 1e-3 for (a, _), (c, _) in zip(half_loss, one_loss))
