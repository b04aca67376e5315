"""Load a checkpoint the fast path covers without importing transformers.

Importing transformers costs seconds (it pulls in torch's compiler and distributed
packages), most of the server's cold start. A checkpoint that ``fastpath`` covers and
whose tokenizer has fill-in-the-middle tokens (the embedded model, anything trained with
``model/train.py``) loads here from the same files, with the same checks as
``loader.load_checkpoint``: safetensors only, every tensor the config implies present and
of the right shape, a tokenizer that fits the vocabulary. Anything else returns None
and the engine loads it with transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dg_lsp.engine import fastpath
from dg_lsp.engine.errors import ModelLoadError
from dg_lsp.engine.loader import (
    Loaded,
    check_tokenizer,
    is_out_of_memory,
    pick_device,
    pick_dtype,
    pick_matmul_dtype,
    read_generation,
    resolve_model_dir,
    validate_dir,
)
from dg_lsp.engine.prompt import FIM_TOKEN_SETS


class NativeTokenizer:
    """The parts of a transformers tokenizer the engine uses, over ``tokenizers`` alone."""

    chat_template = None

    def __init__(self, root: Path):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(root / "tokenizer.json"))
        cfg: dict[str, Any] = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            path = root / name
            if path.exists():
                cfg.update(json.loads(path.read_text(encoding="utf-8")))
        vocab = self.tok.get_vocab(with_added_tokens=True)
        eos = cfg.get("eos_token")
        eos = eos.get("content") if isinstance(eos, dict) else eos
        self.eos_token_id = vocab.get(eos) if eos else None
        self.all_special_ids = sorted(
            i for i, t in self.tok.get_added_tokens_decoder().items() if t.special
        )
        self._vocab = vocab

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def __len__(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True, clean_up_tokenization_spaces: bool = False) -> str:
        del clean_up_tokenization_spaces  # never applied to code
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def batch_decode(
        self, batch: list[list[int]], skip_special_tokens: bool = True, clean_up_tokenization_spaces: bool = False
    ) -> list[str]:
        del clean_up_tokenization_spaces
        return self.tok.decode_batch([list(ids) for ids in batch], skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str | None]:
        return [self.tok.id_to_token(i) for i in ids]


@dataclass
class NativeLoaded(Loaded):
    fast: Any = None  # fastpath.FastModel
    config: dict[str, Any] = field(default_factory=dict)


def _has_fim(root: Path) -> bool:
    path = root / "tokenizer.json"
    if not path.exists():
        return False
    text = path.read_text(encoding="utf-8")
    return any(all(f'"{t}"' in text for t in names) for names in FIM_TOKEN_SETS)


def check_shapes(config: dict[str, Any], fm: "fastpath.FastModel", where: Path) -> None:
    """Raise ModelLoadError when the weights do not have the shapes config.json implies."""
    text = config["text_config"]
    want = {
        "vocab_size": (text.get("vocab_size"), fm.vocab_size),
        "hidden_size": (text.get("hidden_size"), fm.hidden),
        "num_hidden_layers": (text.get("num_hidden_layers", len(text["layer_types"])), len(fm.layers)),
        "num_attention_heads": (text.get("num_attention_heads"), fm.layers[0].n_heads),
        "intermediate_size": (text.get("intermediate_size"), fm.layers[0].intermediate),
        "num_experts": (text.get("num_experts"), fm.layers[0].n_experts),
        "moe_intermediate_size": (text.get("moe_intermediate_size"), fm.layers[0].expert_inner),
    }
    for key, (expected, found) in want.items():
        if expected is not None and int(expected) != int(found):
            raise ModelLoadError(f"{where}: weights do not match config.json: {key} is {expected}, weights have {found}")


def load(model: str | None, *, device: str = "auto", dtype: str = "auto") -> NativeLoaded | None:
    """The checkpoint loaded for the fast path, or None when it needs transformers."""
    root = resolve_model_dir(model)
    files = validate_dir(root)
    config = json.loads(files.config.read_text(encoding="utf-8"))
    if fastpath.unsupported(config) or not _has_fim(root):
        return None
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    matmul_dtype = pick_matmul_dtype(dtype, dev)  # None, or bf16 over float32 weights
    try:
        tokenizer = NativeTokenizer(root)
    except Exception as exc:
        raise ModelLoadError(f"{root / 'tokenizer.json'}: tokenizer failed to load: {exc}") from None
    from safetensors.torch import load_file

    tensors: dict[str, Any] = {}
    try:
        for w in files.weights:
            for k, v in load_file(str(w), device="cpu").items():
                if "vision" not in k:
                    tensors[k] = v.to(dtype=torch_dtype, device=dev)
    except Exception as exc:
        if is_out_of_memory(exc):
            raise ModelLoadError(f"{files.weights[0]}: out of memory while loading the weights") from None
        raise ModelLoadError(f"{files.weights[0]}: weights do not load: {exc}") from None
    try:
        fm = fastpath.FastModel(config, tensors, matmul_dtype)
    except KeyError as exc:
        raise ModelLoadError(f"{files.weights[0]}: weights do not match config.json: missing tensor {exc}") from None
    except (RuntimeError, ValueError, MemoryError) as exc:
        if is_out_of_memory(exc):
            raise ModelLoadError(f"{files.weights[0]}: out of memory while loading the weights") from None
        raise ModelLoadError(f"{files.weights[0]}: weights do not match config.json: {exc}") from None
    check_shapes(config, fm, files.weights[0])
    n_layers = len(fm.layers)
    if any(k.startswith(f"model.decoder.layers.{n_layers}.") for k in tensors):
        raise ModelLoadError(f"{files.weights[0]}: weights have more layers than config.json's {n_layers}")
    check_tokenizer(root, len(tokenizer), fm.vocab_size)
    return NativeLoaded(None, tokenizer, files, dev, torch_dtype, read_generation(files), matmul_dtype, fast=fm, config=config)
