"""Write a DiffusionGemma checkpoint directory the engine (and transformers) can load.

Layout: config.json, generation_config.json, model.safetensors (bf16 by default),
tokenizer.json, tokenizer_config.json, special_tokens_map.json.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import DiffusionGemmaForBlockDiffusion
from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
    DiffusionGemmaGenerationConfig,
    EntropyBoundSamplerConfig,
)

from dg_lsp.engine.prompt import EOS, PAD, SPECIAL_TOKENS

# Sampler settings for the embedded model (model/README.md says how they were chosen).
DEFAULT_SAMPLER = dict(
    max_denoising_steps=8,
    entropy_bound=1.0,
    t_max=0.8,
    t_min=0.2,
    stability_threshold=1,
    confidence_threshold=0.05,
)


def generation_config(canvas_length: int, **overrides) -> DiffusionGemmaGenerationConfig:
    """``canvas_init`` ("uniform" or "mask"): what the model was trained to denoise from, and so
    how the engine starts and re-noises a canvas (an extra key; transformers ignores it)."""
    s = {**DEFAULT_SAMPLER, **overrides}
    ids = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    gen = DiffusionGemmaGenerationConfig(
        max_new_tokens=canvas_length,
        max_denoising_steps=int(s["max_denoising_steps"]),
        sampler_config=EntropyBoundSamplerConfig(entropy_bound=float(s["entropy_bound"])),
        t_max=float(s["t_max"]),
        t_min=float(s["t_min"]),
        stability_threshold=int(s["stability_threshold"]),
        confidence_threshold=float(s["confidence_threshold"]),
        eos_token_id=ids[EOS],
        pad_token_id=ids[PAD],
    )
    if s.get("canvas_init", "uniform") != "uniform":
        gen.canvas_init = s["canvas_init"]  # kept by to_dict() and written to generation_config.json
    return gen


def save_checkpoint(
    model: DiffusionGemmaForBlockDiffusion,
    tokenizer_dir: Path,
    out_dir: Path,
    *,
    dtype: torch.dtype = torch.bfloat16,
    sampler: dict | None = None,
    max_shard_size: str = "16MB",
    context_tokens: int | None = None,
    cross_file_tokens: int | None = None,
) -> Path:
    """Save ``model`` (cast to ``dtype``) with its tokenizer files into ``out_dir``.

    ``context_tokens``: the prefix + suffix tokens of the training prompts, written to
    config.json; the server's default prompt budget for this checkpoint (longer prompts
    put the model where it never was). ``cross_file_tokens``: the budget of the cross-file
    snippets the training prompts carried (``dg_lsp.context.crossfile``), written to config.json:
    the server's ``crossFile: "auto"`` turns them on for such a checkpoint.

    ``max_shard_size`` keeps every file under the limits of a GPU box's file transfer;
    the shipped checkpoint is small enough to be one file at the default.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config = generation_config(model.config.canvas_length, **(sampler or {}))
    if context_tokens:
        model.config.context_tokens = int(context_tokens)
    if cross_file_tokens:
        model.config.cross_file_tokens = int(cross_file_tokens)
    copy = model.to(dtype)
    copy.save_pretrained(out_dir, safe_serialization=True, max_shard_size=max_shard_size)
    model.to(torch.float32)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        src = Path(tokenizer_dir) / name
        if src.exists() and src.resolve() != (out_dir / name).resolve():
            shutil.copyfile(src, out_dir / name)
    return out_dir
