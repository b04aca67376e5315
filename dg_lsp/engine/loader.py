"""Find, validate and load a DiffusionGemma checkpoint, offline and safely.

* Local directory, or a repo id already in the local Hugging Face cache; never the network.
* Weights from safetensors only: a pickle checkpoint (``pytorch_model.bin``) is refused.
* ``trust_remote_code`` stays off unless the user turns it on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dg_lsp.engine.errors import ModelLoadError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.ckpt", "model.pt", "model.pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


def embedded_model_dir() -> Path:
    """The checkpoint shipped with dg-lsp: in the installed wheel, else the source tree."""
    pkg = Path(__file__).resolve().parent.parent
    installed = pkg / "_embedded" / "model"
    if (installed / "config.json").exists():
        return installed
    return pkg.parent / "model"


def resolve_model_dir(model: str | None) -> Path:
    """A local directory for ``model`` (None: the embedded checkpoint)."""
    if not model:
        return embedded_model_dir()
    path = Path(os.path.expanduser(model))
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"model path {path} is a file; expected a checkpoint directory")
        return path
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(model, local_files_only=True))
        except Exception as exc:  # not in the local cache: we never download
            raise ModelLoadError(
                f"model {model!r} is neither a local directory nor in the local Hugging Face cache "
                f"(dg-lsp never downloads; fetch it yourself and pass its path): {exc}"
            ) from None
    raise ModelLoadError(f"model directory {path} does not exist")


@dataclass
class CheckpointFiles:
    root: Path
    config: Path
    weights: list[Path]
    generation_config: Path | None


def validate_dir(root: Path) -> CheckpointFiles:
    """Check that ``root`` holds a loadable safetensors checkpoint; name what is wrong."""
    config = root / "config.json"
    if not config.exists():
        raise ModelLoadError(f"{config}: missing (not a checkpoint directory)")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{config}: unreadable JSON: {exc}") from None
    weights = sorted(root.glob("*.safetensors"))
    if not weights:
        pickles = [p.name for p in (root / n for n in PICKLE_WEIGHTS) if p.exists()]
        if pickles:
            raise ModelLoadError(
                f"{root / pickles[0]}: pickle weights are refused (they can run code); "
                "convert the checkpoint to safetensors"
            )
        raise ModelLoadError(f"{root}: no model.safetensors")
    from safetensors import safe_open

    for w in weights:
        try:
            with safe_open(str(w), framework="pt") as f:
                keys = list(f.keys())
                if keys:
                    f.get_slice(keys[-1])  # header parses and the last tensor is addressable
            size = w.stat().st_size
            header_end = _safetensors_data_end(w)
            if header_end > size:
                raise ValueError(f"file is truncated ({size} bytes, header needs {header_end})")
        except Exception as exc:
            if is_out_of_memory(exc):
                raise ModelLoadError(f"{w}: out of memory while mapping the weights ({exc})") from None
            raise ModelLoadError(f"{w}: corrupt safetensors: {exc}") from None
    if not any((root / n).exists() for n in TOKENIZER_FILES):
        raise ModelLoadError(f"{root}: no tokenizer (tokenizer.json or tokenizer_config.json)")
    gen = root / "generation_config.json"
    return CheckpointFiles(root, config, weights, gen if gen.exists() else None)


def _safetensors_data_end(path: Path) -> int:
    """Byte offset where the last tensor of a safetensors file ends (from its header)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return 8 + n + (max(ends) if ends else 0)


def check_tokenizer(root: Path, n_tokens: int, vocab: int) -> None:
    """Refuse a tokenizer that does not belong to the model: more tokens than the model's
    vocabulary, or far fewer (a padded vocabulary is fine; a different tokenizer is not)."""
    tok_file = next((root / n for n in TOKENIZER_FILES if (root / n).exists()), root)
    if n_tokens > vocab:
        raise ModelLoadError(
            f"{tok_file}: tokenizer has {n_tokens} tokens but config.json says vocab_size={vocab} "
            "(tokenizer and model do not belong together)"
        )
    if n_tokens < vocab - max(256, vocab // 16):
        raise ModelLoadError(
            f"{tok_file}: tokenizer has {n_tokens} tokens, far fewer than the model's vocab_size={vocab} "
            "in config.json (tokenizer and model do not belong together)"
        )


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or torch's / the OS's way of saying an allocation failed."""
    if isinstance(exc, MemoryError) or getattr(exc, "errno", None) == 12:
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "cannot allocate memory", "can't allocate memory", "os error 12"))


def pick_device(device: str) -> str:
    import torch

    if device in ("", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
    return device


def pick_dtype(dtype: str, device: str) -> Any:
    import torch

    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype in table:
        return table[dtype]
    # small matrices run fastest in float32 on CPUs; GPUs want bf16
    return torch.float32 if device == "cpu" else torch.bfloat16


def pick_matmul_dtype(dtype: str, device: str) -> Any:
    """The fast path's matrix-product dtype when it differs from the weights' (else None).

    ``auto`` on a CPU with native bf16 GEMMs: bf16 products over float32 activations (about
    twice the float32 GEMM rate; the prompt encode is mostly GEMMs). ``float32`` keeps every
    product in float32; ``DG_LSP_CPU_BF16=0`` does the same for ``auto``.
    """
    import torch

    from dg_lsp.engine.fastpath import cpu_has_bf16

    if dtype not in ("", "auto") or device != "cpu" or os.environ.get("DG_LSP_CPU_BF16", "1") == "0":
        return None
    return torch.bfloat16 if cpu_has_bf16() else None


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    files: CheckpointFiles
    device: str
    dtype: Any
    generation: dict[str, Any]
    matmul_dtype: Any = None  # the fast path's product dtype when not ``dtype`` (pick_matmul_dtype)


def load_checkpoint(
    model: str | None, *, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False
) -> Loaded:
    """Load model + tokenizer + sampler settings. Raises ModelLoadError naming the file and the problem."""
    root = resolve_model_dir(model)
    files = validate_dir(root)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(
            str(root), local_files_only=True, trust_remote_code=trust_remote_code
        )
    except Exception as exc:
        raise ModelLoadError(f"{root}: tokenizer failed to load: {exc}") from None
    config = json.loads(files.config.read_text(encoding="utf-8"))
    generation = read_generation(files)
    try:
        if config.get("model_type") == "diffusion_gemma":
            from transformers import DiffusionGemmaForBlockDiffusion as cls
        elif trust_remote_code:
            from transformers import AutoModel as cls  # type: ignore[assignment]
        else:
            raise ModelLoadError(
                f"{files.config}: model_type {config.get('model_type')!r} is not diffusion_gemma "
                "(custom code runs only with the trustRemoteCode setting on)"
            )
        extra: dict[str, Any] = {}
        gen = {k: v for k, v in generation.items() if k not in ENGINE_GENERATION_KEYS}
        if len(gen) < len(generation) and hasattr(cls, "generation_config_class"):
            # transformers' DiffusionGemma generation config refuses keys it does not know
            extra["generation_config"] = cls.generation_config_class.from_dict(gen)
        net = cls.from_pretrained(
            str(root),
            local_files_only=True,
            use_safetensors=True,
            dtype=torch_dtype,
            trust_remote_code=trust_remote_code,
            **extra,
        )
    except ModelLoadError:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise ModelLoadError(f"{files.weights[0]}: out of memory while loading the weights ({exc})") from None
        raise ModelLoadError(f"{files.weights[0]}: weights do not load with {files.config.name}: {exc}") from None
    try:
        net.eval().to(dev)
    except Exception as exc:
        if is_out_of_memory(exc):
            raise ModelLoadError(f"{files.weights[0]}: out of memory moving the model to {dev} ({exc})") from None
        raise
    vocab = net.config.get_text_config().vocab_size
    check_tokenizer(root, len(tokenizer), vocab)
    return Loaded(net, tokenizer, files, dev, torch_dtype, generation, pick_matmul_dtype(dtype, dev))


# generation_config.json keys read by our engine only (``SamplerSettings.from_generation_config``);
# transformers' loader is handed the file without them
ENGINE_GENERATION_KEYS = ("canvas_init", "draft", "draft_strength", "draft_cut", "draft_short_cut")


def read_generation(files: CheckpointFiles) -> dict[str, Any]:
    """The checkpoint's generation_config.json ({} when it has none)."""
    if files.generation_config is None:
        return {}
    try:
        return json.loads(files.generation_config.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"{files.generation_config}: unreadable JSON: {exc}") from None
