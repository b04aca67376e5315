"""Byte-level BPE tokenizer for the embedded model, trained with `tokenizers`.

Whitespace-friendly: runs of spaces (indentation) and newlines become single tokens,
so an indented line costs few tokens. The special tokens come first, in the order
of ``dg_lsp.engine.prompt.SPECIAL_TOKENS`` (pad=0, eos=1, bos=2, FIM tokens, mask).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from dg_lsp.engine.prompt import BOS, EOS, MASK, PAD, SPECIAL_TOKENS

# Split like GPT-style byte-level BPE, but keep whitespace runs of up to 16 characters
# (indentation) and newline runs as their own pieces.
_SPLIT = Regex(
    r"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z_]+| ?[0-9]{1,3}| ?[^\sA-Za-z_0-9]+|\n+| {1,16}|\t+|\s"""
)

WHITESPACE_SEEDS = [" " * n for n in range(1, 17)] + ["\n" * n for n in range(1, 4)] + ["\t", "\t\t"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192) -> Tokenizer:
    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(_SPLIT, behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    seeds = WHITESPACE_SEEDS * 50

    def it() -> Iterator[str]:
        yield from seeds
        yield from texts

    tok.train_from_iterator(it(), trainer=trainer)
    return tok


def save_tokenizer(tok: Tokenizer, out_dir: Path, model_max_length: int = 4096) -> None:
    """Write tokenizer.json + tokenizer_config.json that AutoTokenizer loads offline."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "pad_token": PAD,
        "eos_token": EOS,
        "bos_token": BOS,
        "mask_token": MASK,
        "additional_special_tokens": [t for t in SPECIAL_TOKENS if t not in (PAD, EOS, BOS, MASK)],
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out_dir / "special_tokens_map.json").write_text(
        json.dumps({"pad_token": PAD, "eos_token": EOS, "bos_token": BOS, "mask_token": MASK}, indent=2) + "\n"
    )


def corpus_texts(corpus: Path, max_bytes: int | None = None, split: str = "train") -> Iterator[str]:
    """Texts of a ``model.corpus`` split, in shard order, up to ``max_bytes``."""
    from model.corpus import iter_corpus

    total = 0
    for rec in iter_corpus(corpus, split):
        total += len(rec["text"])
        yield rec["text"]
        if max_bytes is not None and total >= max_bytes:
            return


def main(argv: list[str] | None = None) -> None:
    """python -m model.tokenizer --corpus data/corpus --out data/tokenizer [--vocab 8192] [--max-mb 48]"""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    ap.add_argument("--out", type=Path, default=Path("data/tokenizer"))
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--max-mb", type=float, default=48.0, help="train on the first N MB of the train split")
    a = ap.parse_args(argv)
    tok = train_tokenizer(corpus_texts(a.corpus, int(a.max_mb * 1e6) if a.max_mb else None), a.vocab)
    save_tokenizer(tok, a.out)
    print(a.out)


if __name__ == "__main__":
    main()
