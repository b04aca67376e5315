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
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import DiffusionGemmaForBlockDiffusion, DynamicCache

from model.checkpoint import save_checkpoint
from model.config import SIZES, make_config
from model.examples import ExampleSampler, Tok, collate


@dataclass
class TrainConfig:
    out: str = "runs/dev"
    corpus: str = "data/corpus"
    tokenizer: str = "data/tokenizer"
    size: str = "mini"
    device: str = "cpu"
    minutes: float = 0.0  # training-time budget, summed over resumes (0: none)
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


# ----------------------------------------------------------------------------- model pieces
def encode_prompt(model, batch: dict) -> DynamicCache:
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    model.model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], past_key_values=cache)
    return cache


def canvas_logits(model, cache, canvas, batch: dict, sc_logits=None) -> torch.Tensor:
    hidden = model.model.decoder(
        decoder_input_ids=canvas,
        past_key_values=cache,
        self_conditioning_logits=sc_logits,
        decoder_attention_mask=batch["decoder_attention_mask"],
        decoder_position_ids=batch["decoder_position_ids"],
    ).last_hidden_state
    logits = model.lm_head(hidden).float()
    cap = model.final_logit_softcapping
    return torch.tanh(logits / cap) * cap if cap else logits


def corrupt(x0: torch.Tensor, vocab: int, gen: torch.Generator) -> torch.Tensor:
    t = torch.rand(x0.shape[0], 1, generator=gen, device=x0.device)
    noise = torch.randint(0, vocab, x0.shape, generator=gen, device=x0.device)
    hit = torch.rand(x0.shape, generator=gen, device=x0.device) < t
    return torch.where(hit, noise, x0)


def loss_weights(x0: torch.Tensor, eos_id: int, eos_weight: float) -> torch.Tensor:
    is_eos = x0 == eos_id
    first = is_eos & (is_eos.long().cumsum(1) == 1)
    w = torch.ones_like(x0, dtype=torch.float)
    w[is_eos & ~first] = eos_weight
    return w


def train_step(model, batch: dict, cfg: TrainConfig, vocab: int, eos_id: int, gen: torch.Generator, use_sc: bool):
    """One forward/backward; returns (loss, canvas tokens)."""
    k = cfg.canvases
    cache = encode_prompt(model, batch)
    if k > 1:
        cache.batch_repeat_interleave(k)
        batch = {n: batch[n].repeat_interleave(k, 0) for n in ("canvas", "decoder_attention_mask", "decoder_position_ids")}
    x0 = batch["canvas"]
    xt = corrupt(x0, vocab, gen)
    sc = None
    if use_sc:
        with torch.no_grad():
            sc = canvas_logits(model, cache, xt, batch).detach()
    logits = canvas_logits(model, cache, xt, batch, sc)
    w = loss_weights(x0, eos_id, cfg.eos_weight)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x0.reshape(-1), reduction="none")
    loss = (ce * w.reshape(-1)).sum() / w.sum()
    loss.backward()
    return loss.detach(), x0.numel()


def use_sc(seed: int, step: int, p: float) -> bool:
    """Self-conditioning on this step? Deterministic per step, so a resumed run matches."""
    return random.Random(seed * 7919 + step).random() < p


def lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, progress)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


# ----------------------------------------------------------------------------- data
_SAMPLER: ExampleSampler | None = None


def _make_batch(args: tuple[int, int, int]):
    seed, step, size = args
    assert _SAMPLER is not None
    return collate(_SAMPLER.batch(seed, step, size), _SAMPLER.tok.pad_id)


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
def train(cfg: TrainConfig, resume: bool = False) -> Path:
    global _SAMPLER
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    state = None
    if resume and (out / "state.pt").exists():
        state = torch.load(out / "state.pt", map_location="cpu", weights_only=False)
        saved = state["cfg"]
        for k in ("size", "corpus", "tokenizer", "seed", "prefix_tokens", "suffix_tokens"):
            setattr(cfg, k, saved[k])
    ensure_data(cfg)
    tok = Tok(cfg.tokenizer)
    canvas_length = SIZES[cfg.size].canvas_length
    # data first: the worker processes fork before any CUDA initialisation
    records = load_records(Path(cfg.corpus), int(cfg.corpus_mb * 1e6))
    _SAMPLER = ExampleSampler(records, tok, canvas_length, cfg.prefix_tokens, cfg.suffix_tokens)
    log(f"{len(records)} train files, {sum(len(r['text']) for r in records) / 1e6:.1f} MB")
    first = state["step"] if state is not None else 0
    steps_iter = ((cfg.seed, s, cfg.batch) for s in range(first, 10**9))
    pool = None
    if cfg.workers > 0:
        pool = mp.get_context("fork").Pool(cfg.workers)
        batches = pool.imap(_make_batch, steps_iter, chunksize=4)
    else:
        batches = map(_make_batch, steps_iter)
    torch.manual_seed(cfg.seed)
    model = DiffusionGemmaForBlockDiffusion(make_config(len(tok), cfg.size)).to(device)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), fused=device.type == "cuda",
    )
    step, train_time = 0, 0.0
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, train_time = state["step"], state["train_time"]
        gen.set_state(state["gen"])
        log(f"resumed from {out / 'state.pt'} at step {step}")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    n_params = sum(p.numel() for n, p in model.named_parameters() if "vision" not in n)
    log(f"size={cfg.size} text params={n_params / 1e6:.2f}M vocab={len(tok)} device={device} "
        f"threads={torch.get_num_threads()}")

    use_amp = device.type == "cuda"
    vocab, eos_id = len(tok), tok.eos_id
    start = time.time()
    last_save = start
    t_log, tok_log, loss_log = time.time(), 0, []
    logf = open(out / "log.jsonl", "a")
    try:
        while True:
            elapsed = train_time + (time.time() - start)  # total training time, across resumes
            progress = step / cfg.steps if cfg.steps else elapsed / (cfg.minutes * 60) if cfg.minutes else 0.0
            if (cfg.steps and step >= cfg.steps) or (cfg.minutes and elapsed >= cfg.minutes * 60) or \
                    (cfg.stop_at and step >= cfg.stop_at):
                break
            lr = lr_at(step, progress, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
            n_prompt = int(batch["attention_mask"].sum())
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss, n_canvas = train_step(model, batch, cfg, vocab, eos_id, gen, use_sc(cfg.seed, step, cfg.self_cond))
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            loss_log.append(loss)
            tok_log += n_prompt + n_canvas
            if step % cfg.log_every == 0:
                dt = time.time() - t_log
                lv = torch.stack(loss_log).mean().item()
                rec = {"step": step, "loss": round(lv, 4), "lr": lr, "tok_s": round(tok_log / dt, 1),
                       "canvas_tok_s": round(cfg.log_every * cfg.batch * cfg.canvases * canvas_length / dt, 1),
                       "time": round(train_time + time.time() - start, 1)}
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
                log(f"step {step} loss {lv:.4f} lr {lr:.2e} tok/s {rec['tok_s']:.0f} canvas tok/s {rec['canvas_tok_s']:.0f}")
                t_log, tok_log, loss_log = time.time(), 0, []
            if time.time() - last_save >= cfg.save_minutes * 60:
                save_state(out, model, opt, step, train_time + time.time() - start, gen, cfg)
                last_save = time.time()
    finally:
        logf.close()
        if pool is not None:
            pool.terminate()
    save_state(out, model, opt, step, train_time + time.time() - start, gen, cfg)
    model.eval()
    ck = save_checkpoint(model, Path(cfg.tokenizer), out / "checkpoint", context_tokens=cfg.prefix_tokens + cfg.suffix_tokens)
    log(f"saved {ck} at step {step}")
    return ck


def save_state(out: Path, model, opt, step: int, train_time: float, gen: torch.Generator, cfg: TrainConfig) -> None:
    tmp = out / "state.pt.tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "train_time": train_time,
                "gen": gen.get_state(), "cfg": asdict(cfg)}, tmp)
    tmp.replace(out / "state.pt")


def export(out: Path) -> Path:
    """Write OUT/checkpoint from OUT/state.pt (e.g. of a run that is still going or was cut off)."""
    state = torch.load(Path(out) / "state.pt", map_location="cpu", weights_only=False)
    cfg = TrainConfig(**state["cfg"])
    model = DiffusionGemmaForBlockDiffusion(make_config(len(Tok(cfg.tokenizer)), cfg.size))
    model.load_state_dict(state["model"])
    ck = save_checkpoint(
        model.eval(), Path(cfg.tokenizer), Path(out) / "checkpoint", context_tokens=cfg.prefix_tokens + cfg.suffix_tokens
    )
    log(f"saved {ck} from step {state['step']}")
    return ck


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f, default in asdict(TrainConfig()).items():
        kw = {"choices": sorted(SIZES)} if f == "size" else {}
        ap.add_argument("--" + f.replace("_", "-"), type=type(default), default=default, **kw)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export", action="store_true", help="only write OUT/checkpoint from OUT/state.pt")
    a = vars(ap.parse_args(argv))
    resume = a.pop("resume")
    if a.pop("export"):
        export(Path(a["out"]))
        return
    train(TrainConfig(**a), resume=resume)


if __name__ == "__main__":
    main()
