"""DiffusionGemma configurations for the embedded model and for tests.

Sizes are named; ``make_config`` builds a transformers ``DiffusionGemmaConfig`` with a
minimal vision tower (mandatory in transformers, ~17k parameters, never used) and all
layers on full attention so the prompt cache can be cropped and extended per keystroke.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transformers import DiffusionGemmaConfig

from dg_lsp.engine.prompt import BOS, EOS, PAD, SPECIAL_TOKENS


@dataclass(frozen=True)
class ModelSize:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    experts: int = 2
    top_k: int = 1
    moe_intermediate: int = 64
    canvas_length: int = 32
    max_positions: int = 4096


SIZES: dict[str, ModelSize] = {
    # tests: builds and runs in well under a second
    "tiny": ModelSize(hidden=64, layers=2, heads=2, kv_heads=1, head_dim=32, intermediate=128, moe_intermediate=32),
    # embedded default candidates (model/README.md: a decoder step costs about 13 / 21 / 21 ms
    # on 2 CPU cores for mini / small / base-like shapes; the vocabulary projection and the
    # self-conditioning product over 8192 entries are a large part of it)
    "mini": ModelSize(hidden=128, layers=4, heads=2, kv_heads=1, head_dim=64, intermediate=384, moe_intermediate=64),
    "small": ModelSize(hidden=256, layers=4, heads=4, kv_heads=2, head_dim=64, intermediate=768, moe_intermediate=128),
    "base": ModelSize(hidden=384, layers=6, heads=6, kv_heads=2, head_dim=64, intermediate=1152, moe_intermediate=192),
}

MINIMAL_VISION = dict(
    model_type="gemma4_vision",
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=1,
    num_attention_heads=1,
    num_key_value_heads=1,
    head_dim=16,
    position_embedding_size=64,
)


def make_config(vocab_size: int, size: ModelSize | str = "small") -> DiffusionGemmaConfig:
    s = SIZES[size] if isinstance(size, str) else size
    ids = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    text = dict(
        vocab_size=vocab_size,
        hidden_size=s.hidden,
        intermediate_size=s.intermediate,
        num_hidden_layers=s.layers,
        num_attention_heads=s.heads,
        num_key_value_heads=s.kv_heads,
        head_dim=s.head_dim,
        global_head_dim=s.head_dim,
        max_position_embeddings=s.max_positions,
        layer_types=["full_attention"] * s.layers,
        num_experts=s.experts,
        top_k_experts=s.top_k,
        moe_intermediate_size=s.moe_intermediate,
        pad_token_id=ids[PAD],
        eos_token_id=ids[EOS],
        bos_token_id=ids[BOS],
        tie_word_embeddings=True,
    )
    cfg = DiffusionGemmaConfig(
        text_config=text,
        vision_config=dict(MINIMAL_VISION),
        canvas_length=s.canvas_length,
        # the vision special ids must be inside the vocabulary; they are never used
        boi_token_id=vocab_size - 3,
        eoi_token_id=vocab_size - 2,
        image_token_id=vocab_size - 1,
    )
    return cfg


def size_dict(size: str) -> dict:
    return asdict(SIZES[size])
