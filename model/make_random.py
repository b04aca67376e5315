"""Build a randomly initialised DiffusionGemma checkpoint with a real tokenizer.

    python -m model.make_random OUT_DIR [--size small] [--vocab 8192] [--corpus-mb 4]

The tokenizer is trained on Python source found on this machine (the standard library)
in seconds; the weights are random. Tests use ``--size tiny``; it is also the floor the
model card compares the trained checkpoint against.
"""

from __future__ import annotations

import argparse
import sysconfig
from pathlib import Path
from typing import Iterator

import torch
from transformers import DiffusionGemmaForBlockDiffusion

from dg_lsp.training.checkpoint import save_checkpoint
from dg_lsp.training.config import SIZES, make_config
from model.tokenizer import save_tokenizer, train_tokenizer


def stdlib_texts(max_bytes: int) -> Iterator[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    total = 0
    for path in sorted(root.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        total += len(text)
        yield text
        if total >= max_bytes:
            return


def build(out_dir: Path, size: str = "small", vocab: int = 8192, corpus_mb: float = 4.0, seed: int = 0) -> Path:
    out_dir = Path(out_dir)
    tok = train_tokenizer(stdlib_texts(int(corpus_mb * 1e6)), vocab_size=vocab)
    save_tokenizer(tok, out_dir)
    torch.manual_seed(seed)
    model = DiffusionGemmaForBlockDiffusion(make_config(tok.get_vocab_size(), size))
    return save_checkpoint(model, out_dir, out_dir)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--size", default="small", choices=sorted(SIZES))
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--corpus-mb", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(build(a.out_dir, a.size, a.vocab, a.corpus_mb, a.seed))


if __name__ == "__main__":
    main()
