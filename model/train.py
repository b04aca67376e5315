"""Train the embedded DiffusionGemma infill model (uniform-noise discrete diffusion).

    python -m model.train --out runs/NAME [--size mini] [--device cpu|cuda] [--minutes M]
                          [--steps N] [--batch B] [--canvases K] [--resume]

Each step: a batch of fill-in-the-middle examples (model/examples.py); the prompt is
encoded once into a DynamicCache (with gradients), the cache is repeated for ``K`` noisy
copies of each canvas (more supervised canvas positions per encoded prompt token); each
canvas token is replaced by a uniformly random vocabulary token with probability
t ~ U(0, 1) per copy; on about half the steps the decoder first runs without gradients and
its logits are passed back as self-conditioning; the loss is cross-entropy over the canvas
(EOS padding after the first EOS weighted ``--eos-weight``).

Writes ``OUT/log.jsonl``, a resumable ``OUT/state.pt`` every ``--save-minutes`` and a
checkpoint directory ``OUT/checkpoint`` (bf16 safetensors, files <= 16 MiB) at the end
(``--export`` writes it from the last state.pt of a run that is still going or was cut off).
If the corpus or tokenizer is missing it is built first (python -m model.corpus /
python -m model.tokenizer), so the same command works on a fresh GPU box.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import DiffusionGemmaForBlockDiffusion, DynamicCache

from dg_lsp.engine.prompt import MASK
from model.checkpoint import save_checkpoint
from model.config import SIZES, make_config
from model import noise as noise_mod
from model.examples import ExampleSampler, Tok, collate


@dataclass
class TrainConfig:
    out: str = "runs/dev"
    corpus: str = "data/corpus"
    tokenizer: str = "data/tokenizer"
    size: str = "mini"
    device: str = "cpu"
    minutes: float = 0.0  # training-time budget (wall clock), summed over resumes (0: none)
    cpu_minutes: float = 0.0  # budget in this process's CPU time (all threads), summed over resumes (0: none):
    # equal-compute arms on a machine where other work takes a share of the cores
    steps: int = 0  # schedule length in steps; 0: the schedule follows --minutes
    stop_at: int = 0  # end this invocation at this step without changing the schedule (rehearsals)
    batch: int = 16
    canvases: int = 2
    lr: float = 2e-3
    min_lr_frac: float = 0.1
    warmup: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    self_cond: float = 0.5
    eos_weight: float = 0.25
    prefix_tokens: int = 128
    suffix_tokens: int = 64
    corpus_mb: float = 64.0  # train-split text loaded into memory
    threads: int = 0
    workers: int = 0
    seed: int = 0
    log_every: int = 10
    save_minutes: float = 5.0
    # recipe (docs/training.md says how each was chosen)
    engine: str = "lean"  # lean: model/lean.py over transformers' parameters; hf: transformers' modules
    noise: str = "uniform"  # uniform (DiffusionGemma's) or mask (absorbing <mask>); written to generation_config
    t_dist: str = "uniform"  # noise level: uniform, or high (t = sqrt(u))
    ar_weight: float = 0.0  # weight of the encoder's next-token loss (0: off)
    ar_positions: int = 48  # prompt positions per row it is taken on (0: all)
    ar_middle: bool = True  # also on the middle appended after the prompt (the FIM task, causally)
    compile: bool = True  # lean engine: torch.compile its pieces (needs a C compiler; ~45 s once per process)
    bf16: str = "auto"  # matrix products in bf16: auto (CUDA, or a CPU with AMX / AVX512-BF16), on, off
    schedule: str = "cosine"  # cosine over --steps / --minutes, or wsd: warmup, then constant (resumable forever)
    # share of examples whose prompt starts with snippets of other files of the same package
    # (dg_lsp.context.crossfile), within cross_file_tokens tokens; 0: none (the layout of the embedded model)
    cross_file: float = 0.0
    cross_file_tokens: int = 128
    init_from: str = ""  # --resume without OUT/state.pt: start from this committed compact state (model/resume.py)
    decay_steps: int = 0  # wsd: after the stable phase, this many steps decaying linearly to min_lr_frac,
    # exported as the checkpoint; state.pt keeps the stable weights for the next stint


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
    """transformers' own modules behind the interface of ``model.lean.LeanForward`` (reference
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
        from model.lean import weighted_ce

        return weighted_ce(self.logits(x), target, weight)


def make_forward(model, engine: str, compile: bool = False):
    if engine == "lean":
        from model.lean import LeanForward

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
    gen = noise_mod.step_generator(cfg.seed, step)
    cor = noise_mod.corrupt(x0, cfg.noise, cfg.t_dist, vocab, mask_id, gen, offset=start * k,
                            total=(total_rows or x0.shape[0] // k) * k)
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
    ar_num = torch.zeros((), device=ids.device)
    ar_den = torch.zeros((), device=ids.device)
    if want_ar:
        rows, pos = ar_positions(enc_lens, batch["prompt_lens"].tolist(), cfg.ar_positions, cfg.seed, step, start)
        r, p = torch.tensor(rows, device=ids.device), torch.tensor(pos, device=ids.device)
        ar_num = fwd.weighted_ce(enc.hidden[r, p], ids[r, p + 1], torch.ones(len(rows), device=ids.device))
        ar_den = torch.tensor(float(len(rows)), device=ids.device)
    if reduce is not None:
        den, ar_den = reduce(den.clone()), reduce(ar_den.clone())
    loss = num / den.clamp_min(1.0) + (cfg.ar_weight * ar_num / ar_den.clamp_min(1.0) if want_ar else 0.0)
    loss.backward()
    n_tok = int(sum(enc_lens)) + x0.numel() * (2 if use_sc else 1)
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


# ----------------------------------------------------------------------------- data
_SAMPLER: ExampleSampler | None = None
DECAY_STEP_OFFSET = 10**8  # decay steps draw their batches away from the stable run's


def _make_batch(args: tuple[int, int, int, int]):
    seed, step, size, start = args
    assert _SAMPLER is not None
    return collate(_SAMPLER.batch(seed, step, size, start), _SAMPLER.tok.pad_id)


def load_records(corpus: Path, max_bytes: int) -> list[dict]:
    from model.corpus import iter_corpus

    recs, total = [], 0
    for rec in iter_corpus(corpus, "train"):
        recs.append({"text": rec["text"], "lang": rec["lang"]})
        total += len(rec["text"])
        if max_bytes and total >= max_bytes:
            break
    return recs


def ensure_data(cfg: TrainConfig) -> None:
    corpus, tok = Path(cfg.corpus), Path(cfg.tokenizer)
    if not any(corpus.glob("train-*.jsonl")):
        from model import corpus as corpus_mod

        log(f"building corpus in {corpus}")
        man = corpus_mod.build(corpus)
        (corpus / "manifest.json").write_text(json.dumps(man, indent=1))
    if not (tok / "tokenizer.json").exists():
        from model.tokenizer import corpus_texts, save_tokenizer, train_tokenizer

        log(f"training tokenizer into {tok}")
        save_tokenizer(train_tokenizer(corpus_texts(corpus, 48_000_000)), tok)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- main loop
def _dist():
    """(rank, world size, all-reduce-sum function or None) under torchrun, else (0, 1, None)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and os.environ.get("DG_DDP_BACKEND") != "gloo"
                                else "gloo")

    def reduce(t: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(t)
        return t

    return dist.get_rank(), world, reduce


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train (or resume) ``cfg.out``; returns the exported checkpoint directory.

    Under ``torchrun --nproc_per_node N`` each process takes ``cfg.batch`` rows of a global
    batch of N x ``cfg.batch`` (the same examples and noise a single process would draw for
    that batch), the losses are normalised by the global counts and the gradients summed, so
    N processes step exactly as one process at the N-fold batch. Rank 0 logs and saves.
    """
    global _SAMPLER
    rank, world, reduce = _dist()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (out / "STOP").unlink(missing_ok=True)  # a stop request of an earlier invocation
    device = torch.device(cfg.device if cfg.device != "cuda" or world == 1 else f"cuda:{rank % torch.cuda.device_count()}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    state = None
    compact = None
    if resume and (out / "state.pt").exists():
        state = torch.load(out / "state.pt", map_location="cpu", weights_only=False)
        saved = state["cfg"]
    elif resume and cfg.init_from:
        compact = Path(cfg.init_from)
        saved = json.loads((compact / "state.json").read_text())["cfg"]
    if state is not None or compact is not None:
        for k in ("size", "seed", "prefix_tokens", "suffix_tokens", "noise"):
            if k in saved:
                setattr(cfg, k, saved[k])
        if compact is None:  # paths of the machine that trained; a committed state keeps this run's
            cfg.corpus, cfg.tokenizer = saved["corpus"], saved["tokenizer"]
    if rank == 0:
        ensure_data(cfg)
    if reduce is not None:
        import torch.distributed as dist

        dist.barrier()
    tok = Tok(cfg.tokenizer)
    canvas_length = SIZES[cfg.size].canvas_length
    # data first: the worker processes fork before any CUDA initialisation
    records = load_records(Path(cfg.corpus), int(cfg.corpus_mb * 1e6))
    _SAMPLER = ExampleSampler(records, tok, canvas_length, cfg.prefix_tokens, cfg.suffix_tokens,
                              cross_file=cfg.cross_file, cross_file_tokens=cfg.cross_file_tokens)
    if rank == 0:
        log(f"{len(records)} train files, {sum(len(r['text']) for r in records) / 1e6:.1f} MB")
    if compact is not None:
        from model.resume import load_compact

        torch.manual_seed(cfg.seed)  # what was not saved (the unused vision tower) as the run made it
        probe = DiffusionGemmaForBlockDiffusion(make_config(len(tok), cfg.size))
        state = load_compact(compact, probe)
        del probe
        if rank == 0:
            log(f"starting from the compact state in {compact}")
    first = state["step"] if state is not None else 0
    global_batch = cfg.batch * world
    start_row = rank * cfg.batch

    def batches_from(step0: int):
        it = ((cfg.seed, s, cfg.batch, start_row) for s in range(step0, 10**12))
        if cfg.workers > 0:
            pool = mp.get_context("fork").Pool(cfg.workers)
            return pool, pool.imap(_make_batch, it, chunksize=4)
        return None, map(_make_batch, it)

    pool, batches = batches_from(first)
    torch.manual_seed(cfg.seed)
    model = DiffusionGemmaForBlockDiffusion(make_config(len(tok), cfg.size)).to(device)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), fused=device.type == "cuda",
    )
    step, train_time, tokens_seen, cpu_before = 0, 0.0, 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, train_time = state["step"], state["train_time"]
        tokens_seen = state.get("tokens", 0)
        cpu_before = state.get("cpu_time", 0.0)
        if rank == 0:
            log(f"resumed from {out / 'state.pt'} at step {step}")
    if reduce is not None:  # every rank starts from rank 0's weights
        import torch.distributed as dist

        for p_ in model.parameters():
            dist.broadcast(p_.data, 0)
    fwd = make_forward(model, cfg.engine, compile=cfg.compile and cfg.engine == "lean")
    if rank == 0:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    n_params = sum(p.numel() for n, p in model.named_parameters() if "vision" not in n)
    use_bf16 = bf16_enabled(cfg, device)
    if rank == 0:
        log(f"size={cfg.size} text params={n_params / 1e6:.2f}M vocab={len(tok)} device={device} "
            f"threads={torch.get_num_threads()} engine={cfg.engine} bf16={use_bf16} world={world} "
            f"noise={cfg.noise} t_dist={cfg.t_dist} ar_weight={cfg.ar_weight}")
    vocab = len(tok)
    tok_ids = {"vocab": vocab, "eos": tok.eos_id, "pad": tok.pad_id, "mask": tok.get_vocab()[MASK]}
    start = time.time()
    cpu_start = time.process_time()
    cpu_now = lambda: cpu_before + time.process_time() - cpu_start  # noqa: E731
    last_save = start
    t_log, tok_log, loss_log, ar_log = time.time(), 0, [], []
    logf = open(out / "log.jsonl", "a") if rank == 0 else None

    def one_step(step_id: int, lr: float, batch: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
        for g in opt.param_groups:
            g["lr"] = lr
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            closs, aloss, n_tok = step_losses(fwd, batch, cfg, tok_ids, step_id, use_sc(cfg.seed, step_id, cfg.self_cond),
                                              start=start_row, total_rows=global_batch, reduce=reduce)
        if reduce is not None:  # this rank's share of the global mean -> the global mean
            for p_ in model.parameters():
                if p_.grad is not None:
                    reduce(p_.grad)
            closs, aloss = reduce(closs.clone()), reduce(aloss.clone())
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return closs, aloss, n_tok * world

    try:
        while True:
            elapsed = train_time + (time.time() - start)  # total training time, across resumes
            progress = step / cfg.steps if cfg.steps else elapsed / (cfg.minutes * 60) if cfg.minutes else \
                cpu_now() / (cfg.cpu_minutes * 60) if cfg.cpu_minutes else 0.0
            stop = (cfg.steps and step >= cfg.steps) or (cfg.minutes and elapsed >= cfg.minutes * 60) or \
                (cfg.cpu_minutes and cpu_now() >= cfg.cpu_minutes * 60) or (cfg.stop_at and step >= cfg.stop_at) or \
                (step % 20 == 0 and (out / "STOP").exists())  # `touch OUT/STOP`: end this stint as its budget would
            if reduce is not None:  # every rank stops at the same step
                stop = bool(reduce(torch.tensor(float(bool(stop)))).item())
            if stop:
                break
            closs, aloss, n_tok = one_step(step, lr_at(step, progress, cfg), next(batches))
            step += 1
            tokens_seen += n_tok
            loss_log.append(closs)
            ar_log.append(aloss)
            tok_log += n_tok
            if step % cfg.log_every == 0 and rank == 0:
                dt = time.time() - t_log
                lv = torch.stack(loss_log).mean().item()
                av = torch.stack(ar_log).mean().item()
                rec = {"step": step, "loss": round(lv, 4), "ar_loss": round(av, 4), "lr": lr_at(step - 1, progress, cfg),
                       "tok_s": round(tok_log / dt, 1),
                       "canvas_tok_s": round(cfg.log_every * global_batch * cfg.canvases * canvas_length / dt, 1),
                       "time": round(train_time + time.time() - start, 1), "cpu_time": round(cpu_now(), 1),
                       "tokens": tokens_seen}
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
                log(f"step {step} loss {lv:.4f} ar {av:.4f} lr {rec['lr']:.2e} tok/s {rec['tok_s']:.0f} "
                    f"canvas tok/s {rec['canvas_tok_s']:.0f}")
                t_log, tok_log, loss_log, ar_log = time.time(), 0, [], []
            if time.time() - last_save >= cfg.save_minutes * 60:
                if rank == 0:
                    save_state(out, model, opt, step, train_time + time.time() - start, cfg, tokens_seen, cpu_now())
                last_save = time.time()
        train_time += time.time() - start
        if rank == 0:
            save_state(out, model, opt, step, train_time, cfg, tokens_seen, cpu_now())
        if cfg.schedule == "wsd" and cfg.decay_steps > 0:
            # the shipped copy: a short linear decay from the stable weights (state.pt keeps those)
            if pool is not None:
                pool.terminate()
            pool, batches = batches_from(DECAY_STEP_OFFSET + step)
            for j in range(cfg.decay_steps):
                frac = 1 - (j + 1) / cfg.decay_steps
                lr = cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * frac)
                one_step(DECAY_STEP_OFFSET + step + j, lr, next(batches))
            if rank == 0:
                log(f"decayed {cfg.decay_steps} steps from step {step} for the exported checkpoint")
    finally:
        if logf is not None:
            logf.close()
        if pool is not None:
            pool.terminate()
    model.eval()
    ck = out / "checkpoint"
    if rank == 0:
        ck = save_checkpoint(model, Path(cfg.tokenizer), ck, context_tokens=cfg.prefix_tokens + cfg.suffix_tokens,
                             sampler=sampler_for(cfg), cross_file_tokens=cfg.cross_file_tokens if cfg.cross_file else None)
        log(f"saved {ck} at step {step}")
    return ck


def sampler_for(cfg: TrainConfig) -> dict:
    """Sampler settings written to the checkpoint's generation_config.json."""
    return {"canvas_init": cfg.noise}


def save_state(out: Path, model, opt, step: int, train_time: float, cfg: TrainConfig, tokens: int = 0,
               cpu_time: float = 0.0) -> None:
    tmp = out / "state.pt.tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "train_time": train_time,
                "tokens": tokens, "cpu_time": cpu_time, "cfg": asdict(cfg)}, tmp)
    tmp.replace(out / "state.pt")


def export(out: Path) -> Path:
    """Write OUT/checkpoint from OUT/state.pt (e.g. of a run that is still going or was cut off)."""
    state = torch.load(Path(out) / "state.pt", map_location="cpu", weights_only=False)
    cfg = TrainConfig(**{k: v for k, v in state["cfg"].items() if k in TrainConfig.__dataclass_fields__})
    model = DiffusionGemmaForBlockDiffusion(make_config(len(Tok(cfg.tokenizer)), cfg.size))
    model.load_state_dict(state["model"])
    ck = save_checkpoint(
        model.eval(), Path(cfg.tokenizer), Path(out) / "checkpoint", context_tokens=cfg.prefix_tokens + cfg.suffix_tokens,
        sampler=sampler_for(cfg), cross_file_tokens=cfg.cross_file_tokens if cfg.cross_file else None,
    )
    log(f"saved {ck} from step {state['step']}")
    return ck


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f, default in asdict(TrainConfig()).items():
        kw = {"choices": sorted(SIZES)} if f == "size" else {}
        typ = (lambda v: v.lower() in ("1", "true", "yes", "on")) if isinstance(default, bool) else type(default)
        ap.add_argument("--" + f.replace("_", "-"), type=typ, default=default, **kw)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export", action="store_true", help="only write OUT/checkpoint from OUT/state.pt")
    ap.add_argument("--save-compact", default="", metavar="DIR",
                    help="only write the committable resume state (model/resume.py) of OUT/state.pt to DIR")
    a = vars(ap.parse_args(argv))
    resume = a.pop("resume")
    if a.get("save_compact"):
        from model.resume import save_compact

        log(f"wrote {save_compact(torch.load(Path(a['out']) / 'state.pt', map_location='cpu', weights_only=False), a['save_compact'])}")
        return
    a.pop("save_compact")
    if a.pop("export"):
        export(Path(a["out"]))
        return
    try:
        train(TrainConfig(**a), resume=resume)
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():  # a clean gloo / NCCL shutdown on every rank
            dist.barrier()
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
