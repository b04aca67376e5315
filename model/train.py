"""Train the embedded DiffusionGemma infill model (uniform-noise discrete diffusion).

    python -m model.train --out runs/NAME [--size mini] [--device cpu|cuda] [--minutes M]
                          [--steps N] [--batch B] [--canvases K] [--resume]

Each step: a batch of fill-in-the-middle examples (dg_lsp/training/examples.py); the prompt is
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
import multiprocessing as mp
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import DiffusionGemmaForBlockDiffusion

from dg_lsp.engine.prompt import MASK
from dg_lsp.training.checkpoint import save_checkpoint
from dg_lsp.training.config import SIZES, make_config
from dg_lsp.training.examples import ExampleSampler, Tok, collate
from dg_lsp.training.noise import EDIT_SHARE, WRONG_SHARE


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
    engine: str = "lean"  # lean: dg_lsp/training/lean.py over transformers' parameters; hf: transformers' modules
    # uniform (DiffusionGemma's), mask (absorbing <mask>) or correct (mask plus wrong visible tokens
    # and edits to fix: dg_lsp/training/noise.py); written to generation_config as canvas_init
    noise: str = "uniform"
    t_dist: str = "uniform"  # noise level: uniform, or high (t = sqrt(u))
    # ``correct`` noise: the share of visible canvas positions made a random token, and of canvases
    # given one edit of their true middle (issue 26: chosen on dev, docs/canvas.md)
    wrong_share: float = WRONG_SHARE
    edit_share: float = EDIT_SHARE
    ar_weight: float = 0.0  # weight of the encoder's next-token loss (0: off)
    canvas_weight: float = 1.0  # weight of the canvas (denoising) loss; 0: the decoder is not run (next-token only)
    ar_positions: int = 48  # prompt positions per row it is taken on (0: all)
    ar_middle: bool = True  # also on the middle appended after the prompt (the FIM task, causally)
    compile: bool = True  # lean engine: torch.compile its pieces (needs a C compiler; ~45 s once per process)
    bf16: str = "auto"  # matrix products in bf16: auto (CUDA, or a CPU with AMX / AVX512-BF16), on, off
    schedule: str = "cosine"  # cosine over --steps / --minutes, or wsd: warmup, then constant (resumable forever)
    # share of examples whose prompt starts with snippets of other files of the same package
    # (dg_lsp.context.crossfile), within cross_file_tokens tokens; 0: none (the layout of the embedded model)
    cross_file: float = 0.0
    cross_file_tokens: int = 128
    cross_file_batches: bool = False  # cross_file is the share of whole batches, not of rows (less padding)
    init_from: str = ""  # --resume without OUT/state.pt: start from this committed compact state (model/resume.py)
    decay_steps: int = 0  # wsd: after the stable phase, this many steps decaying linearly to min_lr_frac,
    # exported as the checkpoint; state.pt keeps the stable weights for the next stint


from dg_lsp.training.steps import (  # noqa: F401 - also this module's names, as before
    HFEncoded, encode_prompt, canvas_logits, HFForward, make_forward, loss_weights, encoder_input, ar_positions, StepTotals, step_losses, use_sc, lr_at, bf16_enabled,
)


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
            if k == "noise" and saved.get(k) in ("mask", "correct") and cfg.noise in ("mask", "correct"):
                continue  # a mask-noise run may go on with corrections (or back): both start from <mask>
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
                              cross_file=cfg.cross_file, cross_file_tokens=cfg.cross_file_tokens,
                              cross_file_batches=cfg.cross_file_batches)
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
            f"noise={cfg.noise} t_dist={cfg.t_dist} ar_weight={cfg.ar_weight} canvas_weight={cfg.canvas_weight}"
            + (f" wrong_share={cfg.wrong_share} edit_share={cfg.edit_share}" if cfg.noise == "correct" else ""))
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
    return {"canvas_init": "mask" if cfg.noise == "correct" else cfg.noise}


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
