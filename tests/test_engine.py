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


def test_mask_checkpoint_starts_from_and_remasks_to_mask(tmp_path):
    """A checkpoint trained with absorbing noise (generation_config canvas_init "mask") is sampled
    from an all-<mask> canvas, and positions the sampler rejects go back to <mask>."""
    ck = tmp_path / "mask-ck"
    shutil.copytree(TINY, ck)
    gen = json.loads((ck / "generation_config.json").read_text())
    gen.update(canvas_init="mask", max_denoising_steps=4)
    gen["sampler_config"] = {"_cls_name": "EntropyBoundSamplerConfig", "entropy_bound": 0.0}
    (ck / "generation_config.json").write_text(json.dumps(gen))
    eng = Engine.load(str(ck), device="cpu", dtype="float32")
    mask = eng.tokenizer.get_vocab()["<mask>"]
    assert eng.mask_id == mask and eng.settings.canvas_init == "mask"
    seen: list[torch.Tensor] = []
    real = eng._step_fn

    def spy(kv, start):
        step = real(kv, start)

        def call(canvas, sc):
            seen.append(canvas.clone())
            return step(canvas, sc)

        return call

    eng._step_fn = spy  # type: ignore[method-assign]
    res = eng.infill("def f(x):\n    return ", "\n", canvas_length=8, max_new_tokens=8)
    assert bool((seen[0] == mask).all())  # the starting canvas
    # entropy bound 0: one position accepted per step, the other seven masked again
    assert len(seen) >= 2 and int((seen[1] == mask).sum()) == 7
    assert mask not in res.token_ids
    # a uniform checkpoint starts from random tokens, never from <mask>
    assert Engine.load(str(TINY), device="cpu", dtype="float32").mask_id is None


# ---------------------------------------------------------------- causal draft
def _tiny_with(tmp_path, name: str, **gen_update):
    ck = tmp_path / name
    shutil.copytree(TINY, ck)
    gen = json.loads((ck / "generation_config.json").read_text())
    gen.update(gen_update)
    (ck / "generation_config.json").write_text(json.dumps(gen))
    return ck


@pytest.fixture(scope="module")
def sharp_checkpoint(tmp_path_factory):
    """The tiny checkpoint with a random final norm scaled up (logits in the soft cap's bend)
    and encoder layer scalars unlike the decoder's (1): what the tiny one leaves at identity."""
    from safetensors.torch import load_file, save_file

    ck = tmp_path_factory.mktemp("draft") / "sharp"
    shutil.copytree(TINY, ck)
    tensors = load_file(str(ck / "model.safetensors"))
    g = torch.Generator().manual_seed(0)
    norm = tensors["model.decoder.norm.weight"]
    tensors["model.decoder.norm.weight"] = (torch.rand(norm.shape, generator=g) * 400 + 50).to(norm.dtype)
    for k, v in tensors.items():
        if k.startswith("model.encoder.language_model.layers.") and k.endswith("layer_scalar"):
            tensors[k] = torch.full_like(v, 0.75)
    save_file(tensors, str(ck / "model.safetensors"), metadata={"format": "pt"})
    return ck


def test_draft_is_the_encoders_greedy_decode(sharp_checkpoint):
    """FastModel.draft equals transformers' encoder run over prompt + draft: at every position
    from <|fim_middle|> on, the argmax (control tokens excluded) of the soft-capped tied head over
    the final-normed hidden state is the next draft token, at the probability reported."""
    engine = Engine.load(str(sharp_checkpoint), device="cpu", dtype="float32")
    model = load_checkpoint(str(sharp_checkpoint), device="cpu", dtype="float32").model
    prompt = engine.prompt("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n")
    engine.cache.reset()
    kv, _ = engine.cache.prepare(prompt.ids, "cpu")
    n_prompt = len(prompt.ids)
    ids, probs = engine.fast.draft(kv, prompt.ids[-1], 12, banned=engine.banned, eos_ids=engine.eos_ids)
    assert 1 <= len(ids) <= 12 and len(probs) == len(ids) and kv.length == n_prompt
    assert len(ids) == 12 or ids[-1] in engine.eos_ids  # it stops only at an EOS
    with torch.inference_mode():
        hidden = model.model.encoder(input_ids=torch.tensor([prompt.ids + ids[:-1]])).last_hidden_state
        raw = model.lm_head(hidden).float()
        cap = model.config.get_text_config().final_logit_softcapping
        z = torch.tanh(raw / cap) * cap
        z[..., engine.banned] = raw[..., engine.banned] = float("-inf")
        ref = z[0, n_prompt - 1 :]
    assert ids == ref.argmax(-1).tolist()
    torch.testing.assert_close(torch.tensor(probs), ref.softmax(-1).amax(-1), atol=1e-4, rtol=1e-4)
    assert not set(engine.banned.tolist()) & set(ids)
    # the soft cap shapes these probabilities (the plain tiny checkpoint's logits are too small)
    assert (raw[0, n_prompt - 1 :].softmax(-1).amax(-1) - torch.tensor(probs)).abs().max() > 0.01

    # a draft that can only say EOS stops after it
    others = torch.tensor([i for i in range(engine.vocab_size) if i not in engine.eos_ids])
    ids, probs = engine.fast.draft(kv, prompt.ids[-1], 8, banned=others, eos_ids=engine.eos_ids)
    assert ids == [engine.eos_ids[0]] and probs == [pytest.approx(1.0)] and kv.length == n_prompt


def test_draft_with_bf16_products_runs_float32_copies(sharp_checkpoint):
    """With bf16 products (``auto`` on CPUs with bf16 GEMMs) the one-row draft steps multiply by
    float32 copies of the bf16 weights (made on the first draft; a tied head is the embedding):
    the same draft as float32 products, at nearly the same probabilities."""
    from dg_lsp.engine import fastpath

    ref = load_checkpoint(str(sharp_checkpoint), device="cpu", dtype="float32")
    ids = build_prompt(ref.tokenizer, "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n").ids
    drafts = []
    for dt in (None, torch.bfloat16):
        fm = fastpath.FastModel.from_transformers(ref.model, dt)
        cache = fm.new_cache()
        fm.encode(ids, cache)
        keys = cache.keys[-1][:, :, : len(ids)].clone()
        drafts.append(fm.draft(cache, ids[-1], 12))
        assert cache.length == len(ids) and torch.equal(cache.keys[-1][:, :, : len(ids)], keys)
    layers, head = fm._draft_layers()
    assert fm.layers[0].qkv.dtype == torch.bfloat16 and layers[0].qkv.dtype == torch.float32
    assert torch.equal(layers[0].qkv, fm.layers[0].qkv.float()) and head is fm.embed
    (full, p_full), (mixed, p_mixed) = drafts
    assert full == mixed
    torch.testing.assert_close(torch.tensor(p_mixed), torch.tensor(p_full), atol=0.05, rtol=0)


def test_cut_draft_keeps_what_the_model_is_sure_of():
    """The middle of a draft ends at EOS, before the first token where the running product of the
    probabilities falls under the cut ("unsure"), or at the budget; EOS's probability is scored."""
    from dg_lsp.engine.core import cut_draft

    ids, probs = [10, 11, 12, 1, 13], [0.9, 0.5, 0.5, 0.8, 0.9]
    assert cut_draft(ids, probs, 0.0, [1]) == ([10, 11, 12], "eos", [0.9, 0.5, 0.5, 0.8])
    assert cut_draft(ids, probs, 0.3, [1]) == ([10, 11], "unsure", [0.9, 0.5])  # 0.9 * 0.5 = 0.45, * 0.5 < 0.3
    assert cut_draft(ids, probs, 0.95, [1]) == ([], "unsure", [])
    assert cut_draft([10, 11], [0.9, 0.9], 0.5, [1]) == ([10, 11], "", [0.9, 0.9])


def test_draft_answer_is_the_drafts_sure_start(sharp_checkpoint, tmp_path):
    """generation_config draft "answer": no denoising; the middle is the causal draft cut by
    ``cut_draft`` at draft_cut, a cut middle is marked partial and ends the infill; with
    candidates, the alternatives are the same draft cut less strictly (distinct, each a
    continuation of the one before)."""
    import math

    from dg_lsp.engine.core import cut_draft

    ck = tmp_path / "answer"
    shutil.copytree(sharp_checkpoint, ck)
    gen = json.loads((ck / "generation_config.json").read_text())
    gen.update(draft="answer", draft_cut=0.02, draft_short_cut=0.02)  # never extended (below: extended)
    (ck / "generation_config.json").write_text(json.dumps(gen))
    eng = Engine.load(str(ck), device="cpu", dtype="float32")
    assert eng.settings.draft == "answer" and eng.settings.draft_cut == 0.02
    calls = []
    real_step = eng._step_fn
    eng._step_fn = lambda kv, start: calls.append(1) or real_step(kv, start)  # type: ignore[method-assign]
    prefix, suffix = "def f(x):\n    return ", "\n"
    prompt = eng.prompt(prefix, suffix)
    eng.cache.reset()
    kv, _ = eng.cache.prepare(prompt.ids, "cpu")
    ids, probs = eng.fast.draft(kv, prompt.ids[-1], 16, banned=eng.banned, eos_ids=eng.eos_ids)
    res = eng.infill(prefix, suffix, max_new_tokens=16, canvas_length=16)
    kept, why, scored = cut_draft(ids, probs, 0.02, eng.eos_ids)
    assert not calls and res.steps == 0 and "draft" in res.timings
    assert res.token_ids == kept and res.text == eng.decode(kept)
    assert res.partial == (why == "unsure") and res.hit_eos == bool(why)
    if scored:
        assert res.confidence == pytest.approx(math.exp(sum(math.log(p) for p in scored) / len(scored)), rel=1e-5)
    eng.settings.draft_cut = eng.settings.draft_short_cut = 1e-6  # the random model is unsure of everything
    many = eng.infill(prefix, suffix, max_new_tokens=16, canvas_length=16, candidates=3)
    texts = [many.token_ids] + [a.token_ids for a in many.alternatives]
    assert many.token_ids == cut_draft(ids, probs, 1e-6, eng.eos_ids)[0] and not calls
    assert len({tuple(t) for t in texts}) == len(texts) >= 2, texts
    # the alternatives: drafts that branch at the first token, cut the same way
    eng.cache.reset()
    kv, _ = eng.cache.prepare(prompt.ids, "cpu")
    rows = eng.fast.draft_branches(kv, prompt.ids[-1], 16, 3, banned=eng.banned, eos_ids=eng.eos_ids)
    want = []
    for r_ids, r_probs in rows:
        t = cut_draft(r_ids, r_probs, 1e-6, eng.eos_ids)[0]
        if t not in want:
            want.append(t)
    assert texts == want
    # a sure part under 4 characters is extended to draft_short_cut; a longer one is not
    eng.settings.draft_cut, eng.settings.draft_short_cut = 0.999, 0.0
    sure = cut_draft(ids, probs, 0.999, eng.eos_ids)[0]
    assert len(eng.decode(sure).strip()) < 4
    long = eng.infill(prefix, suffix, max_new_tokens=16, canvas_length=16)
    assert long.token_ids == cut_draft(ids, probs, 0.0, eng.eos_ids)[0] and not long.partial
    eng.settings.draft_cut = eng.settings.draft_short_cut = 0.999
    assert eng.infill(prefix, suffix, max_new_tokens=16, canvas_length=16).token_ids == sure


def test_draft_branches_start_with_the_greedy_draft(sharp_checkpoint):
    """FastModel.draft_branches: row 0 is FastModel.draft's greedy draft (same tokens and
    probabilities); the other rows start with the next most likely first tokens, EOS excepted,
    each then greedy (checked against a one-row greedy continuation from that token); the prompt
    cache is left as it was."""
    eng = Engine.load(str(sharp_checkpoint), device="cpu", dtype="float32")
    fm = eng.fast
    prompt = eng.prompt("def f(x):\n    y = x * 2\n    return ", "\n")
    eng.cache.reset()
    kv, _ = eng.cache.prepare(prompt.ids, "cpu")
    keys = [k[:, :, : kv.length].clone() for k in kv.keys]
    ids, probs = fm.draft(kv, prompt.ids[-1], 10, banned=eng.banned, eos_ids=eng.eos_ids)
    rows = fm.draft_branches(kv, prompt.ids[-1], 10, 3, banned=eng.banned, eos_ids=eng.eos_ids)
    assert rows[0][0] == ids
    torch.testing.assert_close(torch.tensor(rows[0][1]), torch.tensor(probs), atol=1e-5, rtol=0)
    assert len(rows) == 3 and len({r[0][0] for r in rows}) == 3
    assert all(r[0][0] not in eng.eos_ids for r in rows[1:])
    for r_ids, _ in rows[1:]:  # greedy after its first token: the one-row draft of prompt + that token
        eng.cache.reset()
        kv2, _ = eng.cache.prepare(prompt.ids + r_ids[:1], "cpu")
        rest, _ = fm.draft(kv2, r_ids[0], 9, banned=eng.banned, eos_ids=eng.eos_ids)
        assert r_ids[1:] == rest
    eng.cache.reset()
    kv, _ = eng.cache.prepare(prompt.ids, "cpu")
    fm.draft_branches(kv, prompt.ids[-1], 10, 3, banned=eng.banned, eos_ids=eng.eos_ids)
    assert all(torch.equal(k[:, :, : kv.length], k0) for k, k0 in zip(kv.keys, keys))


def test_draft_leaves_the_prompt_cache_as_it_was(engine: Engine):
    """After a draft (finished or cancelled) the prompt cache has its length and its exact
    keys/values: a canvas step gives the same logits, and the next keystroke reuses it."""
    from dg_lsp.engine.errors import Cancelled

    prompt = engine.prompt("for i in range(10):\n    ", "\n")
    engine.cache.reset()
    kv, _ = engine.cache.prepare(prompt.ids, "cpu")
    n_prompt = len(prompt.ids)
    keys = [k[:, :, :n_prompt].clone() for k in kv.keys]
    canvas = torch.randint(0, engine.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1))
    before = engine._step_fn(kv, n_prompt)(canvas, None).clone()
    ids, _ = engine.fast.draft(kv, prompt.ids[-1], 40, banned=engine.banned, eos_ids=engine.eos_ids)
    assert kv.length == n_prompt and all(torch.equal(a, b[:, :, :n_prompt]) for a, b in zip(keys, kv.keys))
    assert torch.equal(engine._step_fn(kv, n_prompt)(canvas, None), before)
    with pytest.raises(Cancelled):  # cancelled after DRAFT_CHECK tokens
        engine.fast.draft(kv, prompt.ids[-1], 40, banned=engine.banned, should_stop=lambda: True)
    assert kv.length == n_prompt
    assert torch.equal(engine._step_fn(kv, n_prompt)(canvas, None), before)
    typed = engine.prompt("for i in range(10):\n    p", "\n")
    common = next(i for i, (a, b) in enumerate(zip(prompt.ids, typed.ids)) if a != b)
    _, reused = engine.cache.prepare(typed.ids, "cpu")
    assert reused == common > 0  # the keystroke re-encodes only the tail


def test_draft_strength_renoises_the_least_confident_positions(engine: Engine, monkeypatch):
    """round(strength * L) positions of the draft canvas come from the noise, lowest draft
    probability first; a padding EOS is as confident as the EOS that ended the draft."""
    prompt = engine.prompt("x = ", "\n")
    engine.cache.reset()
    kv, _ = engine.cache.prepare(prompt.ids, "cpu")
    n = 16
    noise = torch.full((1, n), -1, dtype=torch.long)  # not a token: marks the noised positions
    ids, probs = engine.fast.draft(kv, prompt.ids[-1], n, banned=engine.banned, eos_ids=engine.eos_ids)
    assert len(ids) == n  # this random checkpoint drafts no EOS here
    order = sorted(range(n), key=lambda i: probs[i])
    for strength, k in [(0.0, 0), (0.25, 4), (0.5, 8), (0.8, 13), (1.0, 16)]:
        canvas = engine._draft_canvas(kv, prompt.ids[-1], noise, strength)[0]
        noised = set((canvas == -1).nonzero().squeeze(-1).tolist())
        assert noised == set(order[:k]), strength
        assert all(canvas[i] == ids[i] for i in range(n) if i not in noised)
    eos = engine.eos_id
    monkeypatch.setattr(engine.fast, "draft", lambda *a, **k: ([5, 6, eos], [0.9, 0.2, 0.5]))
    canvas = engine._draft_canvas(kv, prompt.ids[-1], torch.full((1, 8), -1, dtype=torch.long), 0.0)
    assert canvas[0].tolist() == [5, 6] + [eos] * 6
    canvas = engine._draft_canvas(kv, prompt.ids[-1], torch.full((1, 8), -1, dtype=torch.long), 0.5)
    assert canvas[0].tolist() == [5, -1, -1, -1, -1, eos, eos, eos]


@pytest.mark.parametrize("canvas_init", ["uniform", "mask"])
def test_infill_starts_from_the_causal_draft(tmp_path, canvas_init):
    """generation_config draft "causal": the first canvas is the draft with draft_strength of it
    re-noised (random tokens, or <mask>), only the first canvas drafts, no control token comes
    out, and draft_strength 1.0 is exactly the noise start of draft "none"."""
    ck = _tiny_with(tmp_path, "draft-ck", draft="causal", draft_strength=0.25, canvas_init=canvas_init,
                    max_denoising_steps=3)
    eng = Engine.load(str(ck), device="cpu", dtype="float32")
    assert eng.settings.draft == "causal" and eng.settings.draft_strength == 0.25
    drafts: list[list[int]] = []
    real_draft = eng.fast.draft

    def spy_draft(*a, **k):
        out = real_draft(*a, **k)
        drafts.append(out[0])
        return out

    eng.fast.draft = spy_draft  # type: ignore[method-assign]
    first: list[torch.Tensor] = []
    real_step = eng._step_fn

    def spy_step(kv, start):
        step = real_step(kv, start)

        def call(canvas, sc):
            if sc is None:  # the first step of each canvas
                first.append(canvas.clone())
            return step(canvas, sc)

        return call

    eng._step_fn = spy_step  # type: ignore[method-assign]
    specials = set(eng.banned.tolist())
    for seed in range(3):
        drafts.clear()
        first.clear()
        res = eng.infill("def f(x):\n    return ", "\n", canvas_length=8, max_new_tokens=16, seed=seed)
        assert len(drafts) == 1 and len(first) == res.canvases and "draft" in res.timings
        start, draft = first[0][0].tolist(), drafts[0]
        draft = draft + [eng.eos_id] * (8 - len(draft))
        same = sum(a == b for a, b in zip(start, draft))
        assert same >= 6  # 2 of 8 re-noised (a random token may happen to equal the draft's)
        if canvas_init == "mask":
            assert start.count(eng.mask_id) == 2 and same == 6
        assert not specials & set(res.token_ids)
        assert res.text == eng.decode(res.token_ids)

    # draft_strength 1.0: the same answer as no draft (the draft runs, its tokens are not used)
    eng.settings.draft_strength = 1.0
    noise_start = eng.infill("def f(x):\n    return ", "\n", canvas_length=8, seed=4)
    eng.settings.draft = "none"
    drafts.clear()
    plain = eng.infill("def f(x):\n    return ", "\n", canvas_length=8, seed=4)
    assert not drafts and "draft" not in plain.timings
    assert noise_start.token_ids == plain.token_ids


def test_draft_setting_is_ignored_without_the_fast_path(tmp_path, monkeypatch, caplog):
    """transformers' forward has no draft: the setting is ignored, logged once (and a checkpoint
    whose generation_config.json holds our keys loads with transformers)."""
    import logging

    from dg_lsp.engine.sampler import SamplerSettings

    assert SamplerSettings.from_generation_config({"draft": "beam", "draft_strength": 2}).draft == "none"
    assert SamplerSettings.from_generation_config({"draft_strength": 2}).draft_strength == 0.5
    # transformers' loader refuses generation_config keys it does not know: it is handed the file without ours
    ck = _tiny_with(tmp_path, "draft-slow", draft="causal", draft_strength=0.3, canvas_init="mask", max_denoising_steps=2)
    monkeypatch.setenv("DG_LSP_FASTPATH", "0")
    eng = Engine.load(str(ck), device="cpu", dtype="float32")
    assert eng.fast is None and eng.model is not None and eng.settings.draft == "causal"
    assert eng.mask_id is not None and eng.model.generation_config.max_denoising_steps == 2
    with caplog.at_level(logging.WARNING, logger="dg_lsp.engine.core"):
        for seed in range(2):
            res = eng.infill("x = ", "\n", canvas_length=8, seed=seed)
            assert "draft" not in res.timings
    assert sum("draft" in r.getMessage() for r in caplog.records) == 1
