"""Server settings: a typed msgspec Struct with documented defaults.

Clients send them as ``initializationOptions`` and ``workspace/didChangeConfiguration``
(``settings`` may nest them under ``dgLsp``, ``dg-lsp`` or ``dg_lsp``). Keys are camelCase.
An invalid value is reported by name (``window/showMessage``) and its default is used;
the other settings still apply.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

SECTION_KEYS = ("dgLsp", "dg-lsp", "dg_lsp")


class Settings(msgspec.Struct, rename="camel", forbid_unknown_fields=False, frozen=True):
    #: Checkpoint directory (or a repo id already in the local Hugging Face cache).
    #: None: the small model embedded in dg-lsp.
    model: str | None = None
    #: "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:N", "mps".
    device: str = "auto"
    #: "auto" (float32 on CPU, with bf16 matrix products where the CPU has native bf16
    #: GEMMs; bfloat16 on GPU), "float32" (every product in float32), "bfloat16", "float16".
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    #: Prompt layout: "auto" (FIM tokens when the tokenizer has them, else chat template).
    prompt_layout: Literal["auto", "fim", "chat"] = "auto"
    #: Most tokens in one completion (a second canvas continues a long block body).
    max_tokens: int = msgspec.field(default=64)
    #: Prompt budget in tokens for prefix + suffix; 0: the budget the checkpoint was trained
    #: with (``context_tokens`` in its generation_config.json; 192 for the embedded model,
    #: which answers garbage from prompts much longer than it saw), else 1024.
    context_tokens: int = 0
    #: Snippets of other open documents and of files next to this one (same folder), ranked by
    #: the names they share with the lines around the cursor, first in the prompt: "auto" (on
    #: for a checkpoint trained with them, ``cross_file_tokens`` in its config.json, as the
    #: embedded model), "on", "off". ``dg-lsp.showContext`` lists the snippets used.
    cross_file: Literal["auto", "on", "off"] = "auto"
    #: Token budget of those snippets; 0: the checkpoint's, else 128.
    cross_file_tokens: int = 0
    #: Denoising steps per canvas; 0 means the checkpoint's generation_config.json.
    denoising_steps: int = 0
    #: Fraction of a selection re-noised by "Rewrite selection" (0..1).
    rewrite_strength: float = 0.5
    #: Canvas positions per hole for "Fill holes".
    hole_tokens: int = 16
    #: languageIds to serve; empty: every language in grammars/.
    languages: list[str] = msgspec.field(default_factory=list)
    #: Answer textDocument/inlineCompletion (ghost text).
    inline_completion: bool = True
    #: Answer textDocument/completion with infill items.
    completion_items: bool = True
    #: Allow multi-line completions (block bodies).
    multiline: bool = True
    #: Torch threads on the CPU; 0: automatic (1 for checkpoints narrower than 512, whose
    #: steps are dominated by per-call overhead, else all cores).
    threads: int = 0
    #: Encode the context at the cursor after each edit while the model is idle, so the
    #: completion at the next pause only encodes what was typed since.
    prefetch: bool = True
    #: Automatic suggestions (as you type) under this confidence (0..1) are not shown;
    #: invoked ones (Ctrl+Space, Alt+\\) still get the best answer. 0 shows everything. With a
    #: checkpoint that ships a learned gate (``gate.json``, the embedded model does) it reads as the
    #: probability that the suggestion is useful; the default was chosen on dev holes
    #: (docs/memory.md), else it is the model's own confidence (docs/confidence.md).
    min_confidence: float = 0.15
    #: Candidates for an invoked request (cycle with Alt+] in VS Code, the completion menu
    #: elsewhere), denoised together in one batch; automatic requests get one. 1: no alternatives.
    alternatives: int = 3
    #: Candidates for an automatic request (as you type). 1: three denoised candidates cost about
    #: 1.5x one, more than the 1.3x that pays as you type; with the embedded model's causal-draft
    #: answers they are branching drafts decoded together and cost about 1.3x (docs/confidence.md).
    #: Neovim 0.12 only sends automatic requests: set 3 there to cycle with <M-]>.
    automatic_alternatives: int = 1
    #: Seed of the sampler (completions are reproducible for the same context).
    seed: int = 0
    #: Weights tuned on this workspace by ``dg-lsp tune`` / ``dg-lsp.tune``: "auto" (serve them
    #: when the user cache has them for this workspace and the same base model), "off" (the base
    #: model), or a tuned checkpoint's directory. A tuned checkpoint that fails to load falls
    #: back to the base model, with a message.
    tuned: str = "auto"
    #: Minutes of CPU a ``dg-lsp.tune`` from the editor trains for.
    tune_minutes: float = 10.0
    #: Token memory of what you already wrote, mixed into every decoding step (names, calls and
    #: lines repeat within a file and across a project): "auto" (on, with the scopes below),
    #: "off". ``dg-lsp.status`` / ``dg-lsp.showContext`` say what it holds and how much of the
    #: last answer it supplied (docs/memory.md).
    memory: Literal["auto", "off"] = "auto"
    #: Memory scope: the open document (its whole text, as the editor has it).
    memory_document: bool = True
    #: Memory scope: the other open documents.
    memory_open_documents: bool = True
    #: Memory scope: the workspace's source files (the languages in grammars/, .gitignore
    #: honoured; binary, minified, generated and huge files skipped), indexed in the background.
    memory_workspace: bool = True
    #: Most tokens the workspace memory holds (about 12 bytes of memory each).
    memory_workspace_tokens: int = 4_000_000
    #: Run custom model code from a checkpoint. Off: only DiffusionGemma from transformers.
    trust_remote_code: bool = False


DEFAULTS = Settings()
#: The prompt budget when neither the settings nor the checkpoint name one.
DEFAULT_CONTEXT_TOKENS = 1024
#: Settings where 0 means "the checkpoint's" (whatever their range).
ZERO_IS_AUTO = ("context_tokens", "cross_file_tokens")


def size_limit_tokens(s: Settings) -> int:
    """The budget that request size limits (longest line, largest selection) scale with: the
    explicit ``contextTokens``, else ``DEFAULT_CONTEXT_TOKENS`` whatever the checkpoint's."""
    return s.context_tokens or DEFAULT_CONTEXT_TOKENS

_BOUNDS: dict[str, tuple[float, float]] = {
    "max_tokens": (1, 1024),
    "context_tokens": (16, 32768),  # or 0 (the checkpoint's)
    "denoising_steps": (0, 512),
    "rewrite_strength": (0.0, 1.0),
    "hole_tokens": (1, 256),
    "threads": (0, 1024),
    "min_confidence": (0.0, 1.0),
    "alternatives": (1, 8),
    "cross_file_tokens": (16, 4096),  # or 0 (the checkpoint's)
    "tune_minutes": (0.05, 600.0),
    "automatic_alternatives": (1, 8),
    "memory_workspace_tokens": (0, 50_000_000),
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


FIELDS = {_camel(f): f for f in Settings.__struct_fields__}


def unwrap(raw: Any) -> Any:
    """The dg-lsp section of a settings object, wherever the client put it."""
    if isinstance(raw, dict):
        for key in SECTION_KEYS:
            if isinstance(raw.get(key), dict):
                return raw[key]
    return raw


def decode(raw: Any, base: Settings = DEFAULTS) -> tuple[Settings, list[str]]:
    """Settings from ``raw`` over ``base``; returns (settings, problems naming each bad key)."""
    raw = unwrap(raw)
    if raw is None:
        return base, []
    if not isinstance(raw, dict):
        return base, [f"settings must be an object, got {type(raw).__name__}; using defaults"]
    good: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        field = FIELDS.get(key)
        if field is None or value is None:
            continue  # unknown keys are ignored (other tools share the section); null means unset
        try:
            one = msgspec.convert({key: value}, Settings)
        except msgspec.ValidationError as exc:
            problems.append(f"dg-lsp setting {key}={value!r} is invalid ({exc}); using the default {getattr(base, field)!r}")
            continue
        v = getattr(one, field)
        if field in _BOUNDS:
            lo, hi = _BOUNDS[field]
            if not (lo <= v <= hi or (field in ZERO_IS_AUTO and v == 0)):
                problems.append(
                    f"dg-lsp setting {key}={value!r} is out of range [{lo}, {hi}]"
                    + (" (or 0)" if field in ZERO_IS_AUTO else "")
                    + f"; using the default {getattr(base, field)!r}"
                )
                continue
        good[field] = v
    return msgspec.structs.replace(base, **good), problems


def model_key(s: Settings) -> tuple[Any, ...]:
    """The settings that require reloading the model when they change."""
    return (s.model, s.device, s.dtype, s.prompt_layout, s.trust_remote_code, s.threads, s.tuned)
