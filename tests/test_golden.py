"""Golden cases: scripted model proposals through the real completion path.

Each file under ``tests/data/golden/<lang>/`` is one case (format: tests/data/golden/README.md).
The engine is the tiny test checkpoint, but a logits hook replaces its logits with a script:
the proposed tokens score 50 at their canvas positions, EOS 20 everywhere, single-character
closing tokens (brackets, quotes) 10, everything else 0. The constraint hook runs after the
script, so masking, backtracking, repair and post-processing all act on the proposal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pytest
import torch

from conftest import DATA, TINY
from dg_lsp.context import SyntaxDocument, registry
from dg_lsp.engine import Engine
from dg_lsp.engine.prompt import encode_text
from dg_lsp.postprocess import is_valid
from dg_lsp.service import propose
from dg_lsp.settings import DEFAULTS

GOLDEN = DATA / "golden"
CASES = sorted(p for p in GOLDEN.rglob("*") if p.is_file() and p.parent != GOLDEN)
_BLOCK = re.compile(r"<(PROPOSED|EXPECTED|REPAIR|MODE)>(.*?)</\1>", re.S)


@dataclass
class Case:
    text: str  # the document
    offset: int  # cursor
    proposed: str
    expected: str
    replaced: str  # document text after the cursor the completion replaces
    repair: str | None
    mode: str | None


def parse_case(raw: str) -> Case:
    """Strip the markers; the cursor is where ``<PROPOSED>`` was."""
    blocks: dict[str, str] = {}
    out, pos, cursor = [], 0, None
    for m in _BLOCK.finditer(raw):
        out.append(raw[pos : m.start()])
        blocks[m.group(1)] = m.group(2)
        if m.group(1) == "PROPOSED":
            cursor = sum(len(s) for s in out)
        pos = m.end()
    out.append(raw[pos:])
    text = "".join(out)
    assert cursor is not None and "EXPECTED" in blocks, "a case needs <PROPOSED> and <EXPECTED>"
    replaced = ""
    rm = re.search(r"<REPLACED>(.*?)</REPLACED>", text, re.S)
    if rm:
        assert rm.start() == cursor, "<REPLACED> must start at the cursor"
        replaced = rm.group(1)
        text = text[: rm.start()] + replaced + text[rm.end() :]
    return Case(text, cursor, blocks["PROPOSED"], blocks["EXPECTED"], replaced, blocks.get("REPAIR"), blocks.get("MODE"))


class Script:
    """Logits hook that makes the 'model' propose fixed text (and another text when repairing)."""

    def __init__(self, engine: Engine, proposed: str, repair: str | None, spec: Any):
        self.engine = engine
        self.ids = encode_text(engine.tokenizer, proposed)
        self.repair_text = repair
        self.eos = engine.eos_id
        chars = {c for _, c in spec.brackets} | {d for d in spec.strings if len(d) == 1}
        self.closers = sorted({ids[0] for c in chars if len(ids := encode_text(engine.tokenizer, c)) == 1})
        self.script = self.ids
        self.offset = 0

    def begin(self, prev_ids: Sequence[int], final: bool = True, fixed: Any = None, repair: bool = False, **_: Any) -> None:
        self.offset = len(prev_ids)
        self.script = self.ids
        if repair and self.repair_text is not None:
            kept = self.engine.decode(list(prev_ids))
            text = self.repair_text[len(kept) :] if self.repair_text.startswith(kept) else self.repair_text
            self.script, self.offset = encode_text(self.engine.tokenizer, text), 0

    def __call__(self, logits: torch.Tensor, argmax: torch.Tensor) -> None:  # noqa: ARG002
        logits.zero_()
        logits[0, :, self.closers] = 10.0
        logits[0, :, self.eos] = 20.0
        for i in range(logits.shape[1]):
            j = self.offset + i
            if j < len(self.script):
                logits[0, i, self.script[j]] = 50.0


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(str(TINY), device="cpu")


def test_enough_cases() -> None:
    langs = {p.parent.name for p in CASES}
    assert len(CASES) >= 150 and len(langs) >= 10, (len(CASES), sorted(langs))


@pytest.mark.parametrize("path", CASES, ids=[p.relative_to(GOLDEN).as_posix() for p in CASES])
def test_golden(engine: Engine, path: Path) -> None:
    case = parse_case(path.read_text(encoding="utf-8"))
    spec = registry().get(path.parent.name)
    assert spec is not None and spec is registry().for_path(path.name), f"{path.name}: extension of another language"
    doc = SyntaxDocument(spec, case.text)
    script = Script(engine, case.proposed, case.repair, spec)
    p = propose(engine, spec, doc, case.offset, DEFAULTS, invoked=True, hook=script)
    if case.mode is not None:
        assert p.mode == case.mode
    got = case.text[: case.offset] + p.text + case.text[case.offset + p.replace :]
    want = case.text[: case.offset] + case.expected + case.text[case.offset + len(case.replaced) :]
    assert (p.text, p.replace) == (case.expected, len(case.replaced)), f"\n--- got ---\n{got}\n--- want ---\n{want}\n({p.reason})"
    if p.text:
        after = case.text[case.offset + p.replace :]
        assert is_valid(spec, case.text[: case.offset], p.text, after)


def test_repair_re_denoises_from_the_first_new_error(engine: Engine) -> None:
    """The repair pass keeps the tokens before the first new error and denoises the rest again."""
    from dg_lsp.postprocess import Finished
    from dg_lsp.service import Generation

    spec = registry().get("python")
    prefix, suffix = "def main(x):\n    y = ", "\n    return y\n"
    script = Script(engine, "x + foo(1 2)", "x + foo(1, 2)", spec)
    gen = Generation(engine, spec, prefix, suffix, "single", DEFAULTS, None, True, script)
    text, ids = gen.run("", [])
    assert text == "x + foo(1 2)"
    done = gen.repair(text, ids, Finished("", reason="every prefix of the middle breaks the syntax"))
    assert done.text == "x + foo(1, 2)" and done.reason == "repaired"
    assert len(gen.results) == 2 and gen.results[1].steps <= 3
