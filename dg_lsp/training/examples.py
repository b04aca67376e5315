"""Fill-in-the-middle training examples, cut at character level from corpus files.

A middle is one of: the rest of a line, one to a few whole lines, a tree-sitter node
(a call's arguments, a block body, a condition, a statement; Python files) or a random
span. Prefix and suffix are cut to a token budget (``truncate_context``, also used by the
evaluation) and the prompt is exactly ``dg_lsp.engine.prompt.build_prompt``'s; the canvas
target is ``canvas_target`` (middle then EOS padding).
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import torch

from dg_lsp.context import crossfile
from dg_lsp.engine.prompt import EOS, PAD, build_prompt, canvas_target

KINDS = ("rest_of_line", "lines", "node", "span", "empty")
KIND_WEIGHTS = (0.25, 0.30, 0.25, 0.17, 0.03)

# tree-sitter node types whose text makes a good middle
NODE_TYPES = {
    "argument_list", "parameters", "block", "return_statement", "expression_statement",
    "assignment", "comparison_operator", "boolean_operator", "call", "subscript",
    "list_comprehension", "string", "binary_operator", "if_statement", "for_statement",
    "list", "dictionary", "tuple", "lambda", "conditional_expression",
}
CONDITION_PARENTS = {"if_statement", "elif_clause", "while_statement"}
CROSS_FILE_SOURCES = 4  # other files of the package an example's snippets come from


class Tok:
    """Thin wrapper over a ``tokenizers.Tokenizer`` with the calls ``build_prompt`` makes.

    Same ids as ``PreTrainedTokenizerFast`` loaded from the same tokenizer.json (the server's
    tokenizer), without its per-call Python overhead.
    """

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer

        path = Path(path)
        self.path = path
        self.tk = Tokenizer.from_file(str(path / "tokenizer.json" if path.is_dir() else path))
        self._vocab = self.tk.get_vocab()
        self.pad_id, self.eos_id = self._vocab[PAD], self._vocab[EOS]

    def get_vocab(self) -> dict[str, int]:
        return self._vocab

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.tk.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tk.decode(list(ids), skip_special_tokens=True)

    def __len__(self) -> int:
        return self.tk.get_vocab_size()


@dataclass
class Example:
    prefix: str
    middle: str
    suffix: str
    kind: str
    prompt_ids: list[int]
    canvas_ids: list[int]
    context: str = ""  # cross-file snippets at the head of the prompt


def truncate_context(tok: Any, prefix: str, suffix: str, prefix_tokens: int, suffix_tokens: int) -> tuple[str, str]:
    """Keep about the last ``prefix_tokens`` tokens of the prefix and the first
    ``suffix_tokens`` of the suffix, cut at character level on token boundaries."""
    # a token is at least one char and rarely more than 16: pre-cut so long files stay cheap
    prefix = prefix[-16 * prefix_tokens:] if prefix_tokens > 0 else ""
    suffix = suffix[: 16 * suffix_tokens] if suffix_tokens > 0 else ""
    if prefix_tokens >= 0 and len(prefix) > prefix_tokens:
        ids = tok.encode(prefix, add_special_tokens=False)
        if len(ids) > prefix_tokens:
            keep = tok.decode(ids[len(ids) - prefix_tokens:]) if prefix_tokens else ""
            prefix = prefix[len(prefix) - len(keep):] if prefix.endswith(keep) else keep.lstrip("\ufffd")
    if suffix_tokens >= 0 and len(suffix) > suffix_tokens:
        ids = tok.encode(suffix, add_special_tokens=False)
        if len(ids) > suffix_tokens:
            keep = tok.decode(ids[:suffix_tokens]) if suffix_tokens else ""
            suffix = suffix[: len(keep)] if suffix.startswith(keep) else keep.rstrip("\ufffd")
    return prefix, suffix


def make_example(tok: Any, prefix: str, middle: str, suffix: str, canvas_length: int,
                 prefix_tokens: int = 128, suffix_tokens: int = 64, kind: str = "given",
                 sources: Sequence[tuple[str, str]] = (), cross_file_tokens: int = 0) -> Example:
    """``sources``: other files of the project, (path, text): their best snippets for this cursor
    go first in the prompt (``dg_lsp.context.crossfile``, as the server picks them)."""
    prefix, suffix = truncate_context(tok, prefix, suffix, prefix_tokens, suffix_tokens)
    context = ""
    if sources and cross_file_tokens > 0:
        context, _ = crossfile.context_for(prefix, suffix, sources, lambda t: len(tok.encode(t)), cross_file_tokens)
    prompt = build_prompt(tok, prefix, suffix, layout="fim", context=context)
    vocab = tok.get_vocab()
    canvas = canvas_target(tok, middle, canvas_length, vocab[EOS], vocab[PAD])
    return Example(prefix, middle, suffix, kind, prompt.ids, canvas, context)


@lru_cache(maxsize=1)
def _python_parser():
    import tree_sitter_python
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_python.language()))


def _node_spans(data: bytes) -> list[tuple[int, int]]:
    """Byte spans of candidate middle nodes in a Python file."""
    tree = _python_parser().parse(data)
    spans: list[tuple[int, int]] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        n = node.end_byte - node.start_byte
        if 1 <= n <= 240 and not node.has_error:
            if node.type in NODE_TYPES:
                spans.append((node.start_byte, node.end_byte))
            elif node.parent is not None and node.parent.type in CONDITION_PARENTS and \
                    node.parent.child_by_field_name("condition") == node:
                spans.append((node.start_byte, node.end_byte))
        if node.end_byte - node.start_byte > 8:
            stack.extend(node.children)
    return spans


def cut_middle(text: str, lang: str, rng: random.Random) -> tuple[str, str, str, str]:
    """(prefix, middle, suffix, kind) cut from ``text``."""
    kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
    if kind == "node" and lang != "python":
        kind = "lines"
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    nonblank = [i for i, l in enumerate(lines) if l.strip()]
    if not nonblank:
        kind = "span"
    if kind == "node":
        # parse a window of whole lines around a random line: cheap, and nodes with a
        # parse error (cut at the window's edges) are never chosen
        i = rng.choice(nonblank)
        a, b = starts[max(0, i - 40)], starts[min(len(lines), i + 40)]
        data = text[a:b].encode("utf-8")
        spans = _node_spans(data)
        if spans:
            s, e = rng.choice(spans)
            head = data[:s].decode("utf-8", "replace")
            mid = data[s:e].decode("utf-8", "replace")
            return text[: a + len(head)], mid, text[a + len(head) + len(mid):], kind
        kind = "lines"
    if kind == "rest_of_line":
        i = rng.choice(nonblank)
        line = lines[i].rstrip("\r\n")
        indent = len(line) - len(line.lstrip())
        cut = rng.randint(indent, max(indent, len(line) - 1))
        s, e = starts[i] + cut, starts[i] + len(line)
    elif kind == "lines":
        i = rng.choice(nonblank)
        k = rng.choices((1, 2, 3, 4), (0.55, 0.25, 0.12, 0.08))[0]
        s, e = starts[i], starts[min(len(lines), i + k)]
    elif kind == "empty":
        s = e = rng.randint(0, len(text))
    else:  # span
        s = rng.randint(0, max(0, len(text) - 1))
        e = min(len(text), s + 1 + int(rng.expovariate(1 / 40)))
    return text[:s], text[s:e], text[e:], kind


class ExampleSampler:
    """Draws examples from a list of corpus records, files weighted by their length."""

    def __init__(self, records: list[dict], tok: Any, canvas_length: int,
                 prefix_tokens: int = 128, suffix_tokens: int = 64, max_middle_chars: int | None = None,
                 cross_file: float = 0.0, cross_file_tokens: int = 128, cross_file_batches: bool = False):
        """``cross_file``: the share of examples whose prompt starts with snippets of up to
        ``CROSS_FILE_SOURCES`` other files of the same package (record ``source``); with
        ``cross_file_batches`` the share of whole batches (every row of a step, on every rank), so
        the other batches are not padded to a cross-file prompt's length."""
        self.records = records
        self.cross_file, self.cross_file_tokens = cross_file, cross_file_tokens
        self.cross_file_batches = cross_file_batches
        self.by_source: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            self.by_source.setdefault(r.get("source", ""), []).append(i)
        self.tok = tok
        self.canvas_length = canvas_length
        self.prefix_tokens, self.suffix_tokens = prefix_tokens, suffix_tokens
        self.max_middle_chars = max_middle_chars or 5 * canvas_length
        self.cum: list[int] = []
        total = 0
        for r in records:
            total += len(r["text"])
            self.cum.append(total)

    def sample(self, rng: random.Random, cross: bool | None = None) -> Example:
        """One example; ``cross`` (None: drawn with probability ``cross_file``) says whether its
        prompt gets cross-file snippets."""
        for _ in range(8):
            k = bisect.bisect_right(self.cum, rng.randrange(self.cum[-1]))
            rec = self.records[k]
            prefix, middle, suffix, kind = cut_middle(rec["text"], rec.get("lang", "python"), rng)
            if len(middle) <= self.max_middle_chars:
                break
        sources: list[tuple[str, str]] = []
        if self.cross_file > 0 and (rng.random() < self.cross_file if cross is None else cross):
            others = [i for i in self.by_source.get(rec.get("source", ""), []) if i != k]
            for i in rng.sample(others, min(CROSS_FILE_SOURCES, len(others))):
                sources.append((self.records[i].get("path", ""), self.records[i]["text"]))
        return make_example(self.tok, prefix, middle, suffix, self.canvas_length,
                            self.prefix_tokens, self.suffix_tokens, kind, sources, self.cross_file_tokens)

    def batch(self, seed: int, step: int, size: int, start: int = 0) -> list[Example]:
        """Examples ``start .. start+size`` of step ``step``: each a pure function of
        (seed, step, index), so a data-parallel rank draws just its share of a global batch."""
        base = (seed * 1_000_003 + step) * 65_536
        cross = None
        if self.cross_file_batches and self.cross_file > 0:
            cross = random.Random(base - 1).random() < self.cross_file
        return [self.sample(random.Random(base + i), cross) for i in range(start, start + size)]


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad the prompts; masks and positions as the model needs them.

    Prompt positions are 0..len-1 (as the server encodes one prompt); the canvas of each row
    starts at that row's prompt length, and the decoder ignores the pad keys in the cache.
    """
    lens = torch.tensor([len(e.prompt_ids) for e in examples])
    width = int(lens.max())
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e.prompt_ids)] = torch.tensor(e.prompt_ids)
    mask = (torch.arange(width)[None, :] < lens[:, None]).long()
    canvas = torch.tensor([e.canvas_ids for e in examples], dtype=torch.long)
    c = canvas.shape[1]
    return {
        "prompt_lens": lens,
        "input_ids": ids,
        "attention_mask": mask,
        "canvas": canvas,
        "decoder_attention_mask": torch.cat([mask, torch.ones(len(examples), c, dtype=torch.long)], 1),
        "decoder_position_ids": lens[:, None] + torch.arange(c)[None, :],
    }
