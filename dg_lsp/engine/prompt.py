"""The one prompt builder shared by serving (dg_lsp.engine) and training (model/).

Two layouts:

* ``fim`` -- native fill-in-the-middle tokens, suffix first::

      <|fim_suffix|> SUFFIX <|fim_prefix|> PREFIX <|fim_middle|>   [canvas: MIDDLE <eos> <pad>...]

  The suffix comes before the prefix so that typing at the cursor only appends to the
  prompt: the cached keys/values of everything before the cursor stay valid.
  Each piece is tokenized on its own and the ids are concatenated, so the token
  boundaries of the suffix never depend on the prefix.

* ``chat`` -- for instruction-tuned checkpoints without FIM tokens (e.g.
  google/diffusiongemma-26B-A4B-it): the tokenizer's chat template with a user turn
  that shows the code with a hole marker and asks for the missing code only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

# Spellings of the FIM control tokens we recognise, in order of preference.
FIM_TOKEN_SETS: tuple[tuple[str, str, str], ...] = (
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),  # CodeGemma / Qwen / ours
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),  # StarCoder / SantaCoder
    ("<PRE>", "<SUF>", "<MID>"),  # CodeLlama
)

# Special tokens of the embedded tokenizer, in id order (0..5).
PAD, EOS, BOS = "<pad>", "<eos>", "<bos>"
FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE = FIM_TOKEN_SETS[0]
MASK = "<mask>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, EOS, BOS, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE, MASK)

HOLE = "<|CURSOR|>"
CHAT_INSTRUCTION = (
    "Complete the {language} code at the marker {hole}. Reply with only the code that "
    "replaces the marker, no explanation and no code fence.\n\n{prefix}{hole}{suffix}"
)

CHAT_CONTEXT = "Related code from other files of the project:\n\n{context}\n"

Layout = Literal["fim", "chat"]


@dataclass(frozen=True)
class FimTokens:
    prefix: int
    suffix: int
    middle: int


@dataclass
class Prompt:
    """Token ids of a prompt, split so the engine can reuse a cached head."""

    ids: list[int]
    layout: Layout
    # ids[:stable_len] do not depend on the text right before the cursor (suffix part):
    # a request whose stable part matches the cache only needs to encode the rest.
    stable_len: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


def fim_tokens(tokenizer: Any) -> FimTokens | None:
    """The FIM token ids of ``tokenizer``, or None when it has none."""
    vocab = tokenizer.get_vocab()
    for pre, suf, mid in FIM_TOKEN_SETS:
        if pre in vocab and suf in vocab and mid in vocab:
            return FimTokens(vocab[pre], vocab[suf], vocab[mid])
    return None


def choose_layout(tokenizer: Any, requested: str = "auto") -> Layout:
    """``fim`` when the tokenizer has FIM tokens, else ``chat`` when it has a chat template."""
    if requested in ("fim", "chat"):
        return requested  # type: ignore[return-value]
    if fim_tokens(tokenizer) is not None:
        return "fim"
    if getattr(tokenizer, "chat_template", None):
        return "chat"
    raise ValueError("tokenizer has neither fill-in-the-middle tokens nor a chat template")


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without any special tokens added."""
    if not text:
        return []
    return list(tokenizer.encode(text, add_special_tokens=False))


def build_prompt(
    tokenizer: Any,
    prefix: str,
    suffix: str,
    *,
    layout: Layout = "fim",
    language: str = "code",
    prefix_ids: Sequence[int] | None = None,
    suffix_ids: Sequence[int] | None = None,
    context: str = "",
    context_ids: Sequence[int] | None = None,
) -> Prompt:
    """Build the prompt for filling the hole between ``prefix`` and ``suffix``.

    ``prefix_ids`` / ``suffix_ids`` / ``context_ids`` may carry already-tokenized pieces
    (training tokenizes once and slices); they must equal ``encode_text`` of the strings.
    ``context``: code from other files of the project (``dg_lsp.context.crossfile.render``),
    before everything else, so it stays in the prompt cache while the user types::

        CONTEXT <|fim_suffix|> SUFFIX <|fim_prefix|> PREFIX <|fim_middle|>
    """
    if layout == "fim":
        fim = fim_tokens(tokenizer)
        if fim is None:
            raise ValueError("layout 'fim' needs a tokenizer with fill-in-the-middle tokens")
        c_ids = list(context_ids) if context_ids is not None else encode_text(tokenizer, context)
        s_ids = list(suffix_ids) if suffix_ids is not None else encode_text(tokenizer, suffix)
        p_ids = list(prefix_ids) if prefix_ids is not None else encode_text(tokenizer, prefix)
        head = [*c_ids, fim.suffix, *s_ids, fim.prefix]
        ids = head + p_ids + [fim.middle]
        return Prompt(ids=ids, layout="fim", stable_len=len(head))
    if layout == "chat":
        content = CHAT_INSTRUCTION.format(language=language, hole=HOLE, prefix=prefix, suffix=suffix)
        if context:
            content = CHAT_CONTEXT.format(context=context) + content
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=True, add_generation_prompt=True
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        if ids and isinstance(ids[0], list):
            ids = ids[0]
        return Prompt(ids=[int(i) for i in ids], layout="chat", stable_len=0)
    raise ValueError(f"unknown prompt layout {layout!r}")


def canvas_target(tokenizer: Any, middle: str, canvas_length: int, eos_id: int, pad_id: int) -> list[int]:
    """Training target for the canvas: the middle, one EOS, then EOS padding.

    The model learns to fill unused canvas positions with EOS, which is how the
    sampler finds the end of a middle of unknown length. Middles longer than the
    canvas are cut (no EOS: the middle continues in a second canvas).
    """
    del pad_id  # padding is EOS on the canvas, as DiffusionGemma's sampler assumes
    ids = encode_text(tokenizer, middle)[:canvas_length]
    return ids + [eos_id] * (canvas_length - len(ids))
