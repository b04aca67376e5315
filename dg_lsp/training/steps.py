"""One training step's forward and losses, shared by the long runs (``model/train.py``) and
``dg-lsp tune`` (``dg_lsp.tune``): transformers' modules or the lean forward, the canvas loss
under the chosen noise, and the next-token loss on the encoder. ``cfg`` is anything with the
fields of ``model.train.TrainConfig`` these functions read."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from dg_lsp.training import noise as noise_mod

TrainConfig = Any  # model.train.TrainConfig (or any object with its fields)


# ----------------------------------------------------------------------------- forwards
@dataclass
class HFEncoded:
    cache: DynamicCache
    hidden: torch.Tensor | None
    width: int
    repeated: bool = False


def encode_prompt(model, batch: dict) -> DynamicCache:
    """transformers' encoder over a collated batch (tests compare padded and single forwards)."""
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    model.model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], past_key_values=cache)
    return cache


def canvas_logits(model, cache, canvas, batch: dict, sc_logits=None) -> torch.Tensor:
    hidden = model.model.decoder(
        decoder_input_ids=canvas, past_key_values=cache, self_conditioning_logits=sc_logits,
        decoder_attention_mask=batch["decoder_attention_mask"], decoder_position_ids=batch["decoder_position_ids"],
    ).last_hidden_state
    logits = model.lm_head(hidden).float()
    cap = model.final_logit_softcapping
    return torch.tanh(logits / cap) * cap if cap else logits


class HFForward:
    """transformers' own modules behind the interface of ``dg_lsp.training.lean.LeanForward`` (reference
    and speed baseline: ``--engine hf``)."""

    def __init__(self, model):
        self.model = model

    def encode(self, ids: torch.Tensor, want_hidden: bool = False) -> "HFEncoded":
        mask = torch.ones_like(ids)  # pads sit after every real token: the causal mask suffices
        cache = DynamicCache(config=self.model.config.get_text_config(decoder=True))
        out = self.model.model.encoder(input_ids=ids, attention_mask=mask, past_key_values=cache)
        return HFEncoded(cache, out.last_hidden_state if want_hidden else None, ids.shape[1])

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:  # hidden: already normed by transformers
        z = self.model.lm_head(hidden).float()
        cap = self.model.final_logit_softcapping
        return torch.tanh(z / cap) * cap if cap else z

    def decode(self, canvas, enc, lens, sc_logits=None, repeat: int = 1, hidden: bool = False):
        n, c = canvas.shape
        if repeat > 1:
            if not enc.repeated:  # with gradients, even when the first call is the no-grad self-conditioning pass
                with torch.enable_grad():
                    enc.cache.batch_repeat_interleave(repeat)
                enc.repeated = True
            lens = lens.repeat_interleave(repeat)
        s = enc.width
        dmask = torch.cat([(torch.arange(s)[None, :] < lens[:, None]).long(), torch.ones(n, c, dtype=torch.long)], 1)
        out = self.model.model.decoder(
            decoder_input_ids=canvas, past_key_values=enc.cache, self_conditioning_logits=sc_logits,
            decoder_attention_mask=dmask, decoder_position_ids=lens[:, None] + torch.arange(c)[None, :],
        ).last_hidden_state
        return out if hidden else self.logits(out)

    def weighted_ce(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        from dg_lsp.training.lean import weighted_ce

        return weighted_ce(self.logits(x), target, weight)


def make_forward(model, engine: str, compile: bool = False):
    if engine == "lean":
        from dg_lsp.training.lean import LeanForward

        fwd = LeanForward(model)
        return fwd.compile() if compile else fwd
    if engine == "hf":
        return HFForward(model)
    raise ValueError(f"unknown engine {engine!r}")


def loss_weights(x0: torch.Tensor, eos_id: int, eos_weight: float) -> torch.Tensor:
    is_eos = x0 == eos_id
    first = is_eos & (is_eos.long().cumsum(1) == 1)
    w = torch.ones_like(x0, dtype=torch.float)
    w[is_eos & ~first] = eos_weight
    return w


def encoder_input(batch: dict, with_middle: bool, pad_id: int, eos_id: int) -> tuple[torch.Tensor, list[int]]:
    """The encoder's ids (B, S'): each prompt, then (``with_middle``) its middle and one EOS.

    The encoder is causal, so the prompt's keys/values do not depend on what follows them;
    the canvas reads only the first ``prompt_lens[b]`` of them. The appended middle gives the
    next-token loss the fill-in-the-middle task itself (position ``<|fim_middle|>`` predicts
    the middle's first token). Returns the ids and each row's length."""
    ids, lens = batch["input_ids"], batch["prompt_lens"]
    if not with_middle:
        return ids, lens.tolist()
    rows, out_lens = [], []
    for b in range(ids.shape[0]):
        c = batch["canvas"][b]
        m = int((c != eos_id).cumprod(0).sum())  # middle length (before the first EOS)
        row = torch.cat([ids[b, : lens[b]], c[: min(m + 1, c.shape[0])]])
        rows.append(row)
        out_lens.append(len(row))
    width = max(out_lens)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for b, r in enumerate(rows):
        out[b, : len(r)] = r
    return out, out_lens


def ar_positions(lens: list[int], n_prompt: list[int], k: int, seed: int, step: int, start: int) -> tuple[list[int], list[int]]:
    """(rows, positions) predicting the next token: ``k`` sampled prompt positions per row
    (all when k <= 0) and every appended-middle position. A pure function of (seed, step, row)."""
    rows, pos = [], []
    for b, (n, p) in enumerate(zip(lens, n_prompt)):
        rng = random.Random((seed * 1_000_003 + step) * 65_536 + start + b + 7_777)
        prompt = list(range(0, p - 1))  # p-1 (<|fim_middle|>) predicts the middle: counted below
        if 0 < k < len(prompt):
            prompt = rng.sample(prompt, k)
        chosen = prompt + list(range(p - 1, n - 1))
        rows += [b] * len(chosen)
        pos += chosen
    return rows, pos


@dataclass
class StepTotals:
    """Global denominators of a step's losses (summed over data-parallel ranks)."""

    canvas: float
    ar: float


def step_losses(fwd, batch: dict, cfg: "TrainConfig", tok_ids: dict, step: int, use_sc: bool,
                start: int = 0, total_rows: int | None = None, reduce=None):
    """Forward and backward of one step. Returns (canvas loss, next-token loss, tokens through the model).

    ``start`` / ``total_rows``: this rank's first row and the global batch size (data parallel);
    ``reduce`` sums a tensor over ranks (None: one process)."""
    k = cfg.canvases
    vocab, eos_id, mask_id, pad_id = tok_ids["vocab"], tok_ids["eos"], tok_ids["mask"], tok_ids["pad"]
    want_ar = cfg.ar_weight > 0
    ids, enc_lens = encoder_input(batch, want_ar and cfg.ar_middle, pad_id, eos_id)
    ids = ids.to(batch["canvas"].device)
    lens = batch["prompt_lens"].to(ids.device)
    enc = fwd.encode(ids, want_hidden=want_ar)
    x0 = batch["canvas"].repeat_interleave(k, 0)
    canvas_w = cfg.canvas_weight
    if canvas_w > 0:
        gen = noise_mod.step_generator(cfg.seed, step)
        shares = {"wrong_share": cfg.wrong_share, "edit_share": cfg.edit_share} if cfg.noise == "correct" else {}
        cor = noise_mod.corrupt(x0, cfg.noise, cfg.t_dist, vocab, mask_id, gen, offset=start * k,
                                total=(total_rows or x0.shape[0] // k) * k, **shares)
        sc = None
        if use_sc:
            with torch.no_grad():
                sc = fwd.decode(cor.xt, enc, lens, None, repeat=k).detach()
        h = fwd.decode(cor.xt, enc, lens, sc, repeat=k, hidden=True)
        w = loss_weights(x0, eos_id, cfg.eos_weight)
        if cfg.noise == "mask":  # absorbing: only the masked positions are predicted
            w = w * cor.hit.float()
        num = fwd.weighted_ce(h, x0, w)
        den = w.sum().detach()
    else:  # next-token loss only: the decoder (the canvas) is not run at all
        num = torch.zeros((), device=ids.device)
        den = torch.zeros((), device=ids.device)
    ar_num = torch.zeros((), device=ids.device)
    ar_den = torch.zeros((), device=ids.device)
    if want_ar:
        rows, pos = ar_positions(enc_lens, batch["prompt_lens"].tolist(), cfg.ar_positions, cfg.seed, step, start)
        r, p = torch.tensor(rows, device=ids.device), torch.tensor(pos, device=ids.device)
        ar_num = fwd.weighted_ce(enc.hidden[r, p], ids[r, p + 1], torch.ones(len(rows), device=ids.device))
        ar_den = torch.tensor(float(len(rows)), device=ids.device)
    if reduce is not None:
        den, ar_den = reduce(den.clone()), reduce(ar_den.clone())
    loss = canvas_w * num / den.clamp_min(1.0) + (cfg.ar_weight * ar_num / ar_den.clamp_min(1.0) if want_ar else 0.0)
    loss.backward()
    n_tok = int(sum(enc_lens)) + (x0.numel() * (2 if use_sc else 1) if canvas_w > 0 else 0)
    return (num / den.clamp_min(1.0)).detach(), (ar_num / ar_den.clamp_min(1.0)).detach(), n_tok


def use_sc(seed: int, step: int, p: float) -> bool:
    """Self-conditioning on this step? Deterministic per step, so a resumed run matches."""
    return random.Random(seed * 7919 + step).random() < p


def lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "wsd":
        return cfg.lr
    p = min(1.0, progress)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def bf16_enabled(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.bf16 == "on":
        return True
    if cfg.bf16 == "off":
        return False
    if device.type == "cuda":
        return True
    from dg_lsp.engine.fastpath import cpu_has_bf16

    return device.type == "cpu" and cpu_has_bf16()
