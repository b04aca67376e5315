"""The engine on real (tiny, random-weight) checkpoints: loading, safety, cache, sampler."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import DynamicCache

from conftest import ROOT, TINY
from dg_lsp.engine import Engine, ModelLoadError
from dg_lsp.engine.loader import load_checkpoint
from dg_lsp.engine.prompt import build_prompt


@pytest.fixture(scope="module")
def engine() -> Engine:
    # float32 products, so logits compare with transformers' float32 model to 1e-4 (the bf16
    # products "auto" picks on some CPUs are checked in test_fastpath)
    return Engine.load(str(TINY), device="cpu", dtype="float32")


def test_cached_encode_matches_fresh_encode(engine: Engine):
    """Re-encoding only the changed tail gives the same canvas logits as encoding from scratch."""
    a = engine.prompt("def f(x):\n    return x", "\n")
    b = engine.prompt("def f(x):\n    return x + 1", "\n")
    engine.cache.reset()
    engine.cache.prepare(a.ids, "cpu")
    kv, reused = engine.cache.prepare(b.ids, "cpu")
    assert reused >= a.stable_len and reused < len(b.ids)
    canvas = torch.randint(0, engine.vocab_size, (1, 8), generator=torch.Generator().manual_seed(0))
    cached = engine._step_fn(kv, len(b.ids))(canvas, None)
    model = engine.model or load_checkpoint(str(TINY), device="cpu").model  # transformers' reference
    with torch.inference_mode():
        fresh = model(
            input_ids=torch.tensor([b.ids]),
            decoder_input_ids=canvas,
            past_key_values=DynamicCache(config=model.config.get_text_config(decoder=True)),
        ).logits
    torch.testing.assert_close(cached, fresh, atol=1e-4, rtol=1e-4)


def test_same_seed_same_answer(engine: Engine):
    r1 = engine.infill("x = ", "\n", seed=5)
    r2 = engine.infill("x = ", "\n", seed=5)
    assert r1.token_ids == r2.token_ids and r1.steps >= 1


def test_no_control_tokens_in_middles(engine: Engine):
    specials = set(engine.banned.tolist())
    for seed in range(5):
        res = engine.infill("def f():\n    ", "\n", seed=seed)
        assert not specials & set(res.token_ids)


def test_fill_holes_keeps_fixed_text(engine: Engine):
    filled = engine.fill_holes("def f(a):\n", ["    b = ", "\n    return ", "\n"], "", hole_tokens=4)
    assert len(filled) == 2 and all(isinstance(f, str) for f in filled)


def test_prompt_is_suffix_first(engine: Engine):
    p = build_prompt(engine.tokenizer, "PREFIX", "SUFFIX")
    text = engine.tokenizer.decode(p.ids)
    assert text.index("SUFFIX") < text.index("PREFIX")


def test_pickle_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "pickled"
    shutil.copytree(TINY, bad)
    (bad / "model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, bad / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pickle"):
        Engine.load(str(bad))


def test_config_and_weights_disagree(tmp_path):
    bad = tmp_path / "mismatch"
    shutil.copytree(TINY, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["text_config"]["hidden_size"] *= 2
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        Engine.load(str(bad))


def test_missing_tokenizer(tmp_path):
    bad = tmp_path / "notok"
    shutil.copytree(TINY, bad)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (bad / name).unlink()
    with pytest.raises(ModelLoadError, match="tokenizer"):
        Engine.load(str(bad))


def test_hub_id_not_in_cache_is_not_downloaded(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError, match="never downloads"):
        Engine.load("google/diffusiongemma-26B-A4B-it")


def test_decoded_middles_hold_no_junk(engine: Engine):
    import re

    junk = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f]")
    for seed in range(8):
        assert not junk.search(engine.infill("def f():\n    ", "\n", seed=seed).text)
        assert not junk.search(engine.rewrite("x = ", "foo(1)", "\n", seed=seed).text)


def test_sample_categorical_matches_the_distribution():
    """Inverse-CDF sampling draws each token at its probability and never a zero one."""
    from dg_lsp.engine.sampler import sample_categorical

    g = torch.Generator()
    g.manual_seed(0)
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3]]).repeat(100_000, 1)
    counts = torch.bincount(sample_categorical(probs, g), minlength=4).float() / probs.shape[0]
    assert counts[1] == 0
    assert torch.allclose(counts, probs[0], atol=0.01)


def test_line_token_cache_equals_whole_text_tokenization(engine: Engine):
    """Tokenizing line by line through the cache gives exactly the tokenizer's ids."""
    from dg_lsp.engine.prompt import encode_text
    from dg_lsp.engine.tokencache import LineTokenCache

    assert engine.tokens.by_line  # our byte-level BPE splits newline runs into their own pieces
    src = (ROOT / "dg_lsp" / "engine" / "core.py").read_text(encoding="utf-8")
    texts = [src[:3000], src[1000:2500] + "\r\n\r\n  tail", "\n\n\n", "no newline", "é\n\n😀 x\n"]
    for text in texts * 2:  # the second round is served from the cache
        assert engine.tokens.encode(text) == encode_text(engine.tokenizer, text)
    assert len(engine.tokens.lines) > 10

    # a tokenizer whose pieces cross line ends is detected and tokenized whole
    merged = LineTokenCache(lambda t: [len(t)])  # one "token" per text: not additive over lines
    assert not merged.by_line and merged.encode("a\nb\n") == [4]


def test_self_conditioning_on_raw_or_scaled_logits(engine: Engine):
    """The two self-conditioning signals both run, and they differ after the first step."""
    from dg_lsp.engine.sampler import SamplerSettings, denoise

    seen: dict[str, list[torch.Tensor]] = {}
    for mode in ("scaled", "raw"):
        calls: list[torch.Tensor] = []

        def step(canvas, self_cond, calls=calls):
            calls.append(None if self_cond is None else self_cond.logits.clone())
            return torch.randn(1, canvas.shape[1], 64, generator=torch.Generator().manual_seed(len(calls)))

        settings = SamplerSettings(max_steps=3, t_max=0.5, t_min=0.5, confidence_threshold=-1.0, self_conditioning=mode)
        denoise(step, torch.zeros(1, 4, dtype=torch.long), settings, vocab_size=64, generator=torch.Generator().manual_seed(0))
        seen[mode] = calls
    assert seen["scaled"][0] is None and seen["raw"][0] is None
    raw, scaled = seen["raw"][1], seen["scaled"][1]
    # raw: the logits themselves; scaled: log-probabilities at temperature 0.5 (twice as sharp)
    torch.testing.assert_close(torch.log_softmax(raw / 0.5, -1), scaled)


def test_restricted_draw_equals_the_dense_one():
    """The sampler looks only at vocabulary blocks near each row's maximum: the same tokens
    (same uniform numbers), the same argmax and entropy as over the whole vocabulary."""
    from dg_lsp.engine.sampler import draw, draw_dense

    g = torch.Generator().manual_seed(0)
    for temperature in (1.0, 0.1, 0.01):
        z = torch.randn(1, 16, 8192, generator=g) * 4
        z[0, 3, 17] = z[0, 3, 4000] = 30.0  # a tie across blocks
        z[0, 5, :] = float("-inf")
        z[0, 5, 8191] = 1.0  # one token left
        for seed in range(5):
            a = draw(z, temperature, torch.Generator().manual_seed(seed))
            b = draw_dense(z, temperature, torch.Generator().manual_seed(seed))
            assert torch.equal(a.sampled, b.sampled) and torch.equal(a.top, b.top)
            torch.testing.assert_close(a.entropy, b.entropy, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(a.self_cond.logits, b.self_cond.logits)
        assert a.sampled[0, 5] == 8191 and a.top[0, 3] == 17
        if temperature == 0.01:
            assert a.self_cond.blocks[0].numel() < 16 * 128 // 4  # it did restrict


@pytest.mark.parametrize("value,expected", [(64, 64), ("64", None), (-5, None), (True, None)])
def test_checkpoint_prompt_budget_from_config(tmp_path, value, expected):
    """config.json's context_tokens (the training prompt budget) is read when it is a positive
    integer; anything else is ignored (the server then uses 1024)."""
    from dg_lsp.service import prompt_budget
    from dg_lsp.settings import DEFAULTS, Settings

    ck = tmp_path / "ck"
    shutil.copytree(TINY, ck)
    cfg = json.loads((ck / "config.json").read_text())
    cfg["context_tokens"] = value
    (ck / "config.json").write_text(json.dumps(cfg))
    engine = Engine.load(str(ck), device="cpu")
    assert engine.context_tokens == expected and engine.describe()["context_tokens"] == expected
    assert prompt_budget(DEFAULTS, engine) == (expected or 1024)
    assert prompt_budget(Settings(context_tokens=300), engine) == 300
