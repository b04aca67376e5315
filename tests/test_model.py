"""The model/ pipeline at tiny scale (CPU, seconds): tokenizer, examples, training, resume, eval."""

from __future__ import annotations

import json
import random
import sysconfig
from email.message import Message
from pathlib import Path

import pytest
import torch

from dg_lsp.engine.prompt import EOS, PAD, build_prompt, canvas_target
from model.corpus import keep_text, license_of, split_of
from dg_lsp.training.examples import ExampleSampler, Tok, collate, cut_middle, make_example, truncate_context
from model.tokenizer import save_tokenizer, train_tokenizer

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = ["textwrap.py", "bisect.py", "heapq.py", "fnmatch.py", "colorsys.py", "keyword.py"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    with open(root / "train-00000.jsonl", "w", encoding="utf-8") as fh:
        for name in FILES:
            text = (STDLIB / name).read_text(encoding="utf-8")
            fh.write(json.dumps({"source": "stdlib", "path": name, "lang": "python", "text": text}) + "\n")
    (root / "test-00000.jsonl").write_text(json.dumps(
        {"source": "stdlib", "path": "this.py", "lang": "python",
         "text": "def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n"}) + "\n")
    return root


@pytest.fixture(scope="module")
def tok_dir(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok")
    texts = [json.loads(l)["text"] for l in open(corpus / "train-00000.jsonl", encoding="utf-8")]
    save_tokenizer(train_tokenizer(texts, vocab_size=600), out)
    return out


CODE = [
    "def f(x):\n    if x:\n        return 1\n\treturn 2\n",
    "        deeply_indented = {'a': [1, 2, 3]}  # trailing   \n\n\n",
    "naïve = 'λ → ∑ 日本語 😀'\r\nprint(naïve)\n",
    "",
    "   \t \n",
]


def test_tokenizer_round_trips_code(tok_dir):
    from transformers import AutoTokenizer

    tok = Tok(tok_dir)
    fast = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    assert [fast.convert_ids_to_tokens(i) for i in range(7)] == [PAD, EOS, "<bos>", "<|fim_prefix|>",
                                                                   "<|fim_suffix|>", "<|fim_middle|>", "<mask>"]
    for text in CODE:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert fast.encode(text, add_special_tokens=False) == ids
        assert fast.decode(ids, clean_up_tokenization_spaces=False) == text
    # an indentation run is a single token
    assert len(tok.encode("        ")) == 1


def test_examples_use_the_shared_prompt_builder(corpus, tok_dir):
    from transformers import AutoTokenizer

    tok = Tok(tok_dir)
    fast = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    recs = [json.loads(l) for l in open(corpus / "train-00000.jsonl", encoding="utf-8")]
    sampler = ExampleSampler(recs, tok, canvas_length=32, prefix_tokens=40, suffix_tokens=20)
    kinds = set()
    for ex in sampler.batch(seed=0, step=0, size=60):
        kinds.add(ex.kind)
        assert ex.prompt_ids == build_prompt(fast, ex.prefix, ex.suffix, layout="fim").ids
        assert ex.canvas_ids == canvas_target(fast, ex.middle, 32, fast.eos_token_id, fast.pad_token_id)
        assert len(ex.prompt_ids) <= 40 + 20 + 3 + 4  # budget (+ a few tokens of re-tokenization slack)
    assert {"rest_of_line", "lines", "node", "span"} <= kinds
    # deterministic per (seed, step)
    assert [e.middle for e in sampler.batch(0, 5, 4)] == [e.middle for e in sampler.batch(0, 5, 4)]


def test_cut_middle_kinds_partition_the_text():
    text = (STDLIB / "textwrap.py").read_text(encoding="utf-8")
    rng = random.Random(0)
    for _ in range(200):
        prefix, middle, suffix, kind = cut_middle(text, "python", rng)
        assert prefix + middle + suffix == text, kind


def test_truncate_context_keeps_the_text_near_the_cursor(tok_dir):
    tok = Tok(tok_dir)
    prefix = "".join(f"x{i} = {i}\n" for i in range(200))
    suffix = "".join(f"y{i} = {i}\n" for i in range(200))
    p, s = truncate_context(tok, prefix, suffix, 30, 10)
    assert prefix.endswith(p) and suffix.startswith(s)
    assert 25 <= len(tok.encode(p)) <= 31 and 8 <= len(tok.encode(s)) <= 11


def test_padded_batch_matches_single_examples(tok_dir):
    from transformers import DiffusionGemmaForBlockDiffusion, DynamicCache

    from dg_lsp.training.config import make_config
    from model.train import canvas_logits, encode_prompt

    tok = Tok(tok_dir)
    exs = [make_example(tok, "def f(x):\n    return ", "x + 1", "\n", 32),
           make_example(tok, "import os\n" * 30, "print(1)\n", "", 32)]
    torch.manual_seed(0)
    model = DiffusionGemmaForBlockDiffusion(make_config(len(tok), "tiny")).eval()
    batch = collate(exs, tok.pad_id)
    with torch.no_grad():
        logits = canvas_logits(model, encode_prompt(model, batch), batch["canvas"], batch)
        for i, e in enumerate(exs):
            cache = DynamicCache(config=model.config.get_text_config(decoder=True))
            ref = model(input_ids=torch.tensor([e.prompt_ids]), decoder_input_ids=torch.tensor([e.canvas_ids]),
                        past_key_values=cache).logits[0]
            assert torch.allclose(ref, logits[i], atol=1e-4)


def _cfg(corpus, tok_dir, out, **kw):
    from model.train import TrainConfig

    base = dict(out=str(out), corpus=str(corpus), tokenizer=str(tok_dir), size="tiny", steps=40, batch=8,
                canvases=2, lr=5e-3, warmup=5, log_every=1, prefix_tokens=48, suffix_tokens=16, seed=0,
                save_minutes=100.0, compile=False)
    base.update(kw)
    return TrainConfig(**base)


def _log(out: Path) -> list[dict]:
    return [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]


def test_training_decreases_loss_and_writes_a_loadable_checkpoint(corpus, tok_dir, tmp_path):
    from transformers import DiffusionGemmaForBlockDiffusion

    from model.train import train

    ck = train(_cfg(corpus, tok_dir, tmp_path / "run"))
    losses = [r["loss"] for r in _log(tmp_path / "run")]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
    model = DiffusionGemmaForBlockDiffusion.from_pretrained(str(ck), local_files_only=True)
    assert model.config.canvas_length == 32
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "special_tokens_map.json"):
        assert (ck / name).exists(), name
    assert max(p.stat().st_size for p in ck.iterdir()) <= 16 << 20


def test_resume_continues_from_the_saved_step(corpus, tok_dir, tmp_path):
    from model.train import train

    out = tmp_path / "run"
    train(_cfg(corpus, tok_dir, out, steps=9, stop_at=6))
    assert torch.load(out / "state.pt", weights_only=False)["step"] == 6
    train(_cfg(corpus, tok_dir, out, steps=9), resume=True)
    assert [r["step"] for r in _log(out)] == list(range(1, 10))
    assert torch.load(out / "state.pt", weights_only=False)["step"] == 9
    # resuming gives the same result as an uninterrupted run
    train(_cfg(corpus, tok_dir, tmp_path / "straight", steps=9))
    a = torch.load(out / "state.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "straight" / "state.pt", weights_only=False)["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_license_detection_and_filters():
    def meta(**fields) -> Message:
        m = Message()
        for k, v in fields.items():
            for item in v if isinstance(v, list) else [v]:
                m[k.replace("_", "-")] = item
        return m

    assert license_of(meta(License_Expression="MIT"))[0] == "MIT"
    assert license_of(meta(License_Expression="BSD-3-Clause OR GPL-2.0"))[0] == "BSD-3-Clause"
    assert license_of(meta(License_Expression="MPL-2.0"))[0] is None
    assert license_of(meta(Classifier=["License :: OSI Approved :: Apache Software License"]))[0] == "Apache-2.0"
    assert license_of(meta(Classifier=["License :: OSI Approved :: GNU General Public License (GPL)"]))[0] is None
    assert license_of(meta(License="BSD-3-Clause"))[0] == "BSD"
    assert license_of(meta(License="GPLv3"))[0] is None
    assert license_of(meta())[0] is None
    assert keep_text("x = 1\n") is not None
    assert keep_text("var a=" + "1," * 2000 + "\n") is None  # minified
    assert keep_text("# Generated by the protocol buffer compiler.  DO NOT EDIT!\nx = 1\n") is None
    assert split_of("s", "a/b.py") == split_of("s", "a/b.py")
    share = sum(split_of("s", f"f{i}.py") == "test" for i in range(5000)) / 5000
    assert 0.01 < share < 0.03


def test_eval_scoring():
    from model.eval import run_tests, syntax_ok, test_program

    task = {"prompt": "def inc(x):\n", "suffix": "", "test": "def check(f):\n    assert f(1) == 2\n",
            "entry_point": "inc", "canonical_solution": "    return x + 1\n"}
    assert run_tests(test_program(task, "    return x + 1\n"))
    assert not run_tests(test_program(task, "    return x\n"))
    assert not run_tests(test_program(task, "    while True: pass\n"), timeout=2)
    assert syntax_ok(task["prompt"], "    return x + 1\n", "", task["canonical_solution"])
    assert not syntax_ok(task["prompt"], "    return (x +\n", "", task["canonical_solution"])


def test_resume_from_the_committed_compact_state(corpus, tok_dir, tmp_path):
    """A stint on a fresh machine resumes from train_state-style files (float32 weights,
    bf16 Adam moments) where one with runs/ at hand resumes from state.pt."""
    from model.resume import save_compact
    from model.train import train

    kw = dict(steps=9, schedule="wsd", ar_weight=0.5, noise="mask")
    train(_cfg(corpus, tok_dir, tmp_path / "first", stop_at=6, **kw))
    state = torch.load(tmp_path / "first" / "state.pt", weights_only=False)
    compact = save_compact(state, tmp_path / "compact")
    assert (compact / "state.safetensors").stat().st_size < 0.7 * (tmp_path / "first" / "state.pt").stat().st_size
    train(_cfg(corpus, tok_dir, tmp_path / "fresh", init_from=str(compact), **kw), resume=True)
    assert [r["step"] for r in _log(tmp_path / "fresh")] == [7, 8, 9]
    train(_cfg(corpus, tok_dir, tmp_path / "straight", **kw))
    a = torch.load(tmp_path / "fresh" / "state.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "straight" / "state.pt", weights_only=False)["model"]
    worst = max((a[k] - b[k]).abs().max().item() for k in b)
    assert worst < 2e-3, worst  # bf16 moments: the same run up to their rounding
    moved = max((a[k] - state["model"][k]).abs().max().item() for k in b)
    assert moved > 10 * worst  # three more steps moved the weights much further than that
