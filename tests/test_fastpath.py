"""The fast decoder step agrees with transformers' DiffusionGemma decoder.

Random-weight models of several shapes, built here: full and sliding attention layers,
grouped-query attention, few experts (dense path) and many experts (routed path), and a
head size for full attention that differs from the sliding one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion, DynamicCache

from dg_lsp.engine import fastpath
from dg_lsp.training.config import MINIMAL_VISION

SHAPES = {
    "mini": dict(layer_types=["full_attention"] * 3, num_attention_heads=2, num_key_value_heads=1,
                 num_experts=2, top_k_experts=1),
    "gqa-topk2": dict(layer_types=["full_attention"] * 4, num_attention_heads=4, num_key_value_heads=2,
                      num_experts=4, top_k_experts=2, global_head_dim=32),
    "many-experts": dict(layer_types=["full_attention"] * 2, num_attention_heads=2, num_key_value_heads=2,
                         num_experts=fastpath.DENSE_EXPERTS_MAX + 4, top_k_experts=2),
}


def build(shape: str) -> DiffusionGemmaForBlockDiffusion:
    text = dict(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=len(SHAPES[shape]["layer_types"]),
        head_dim=16, global_head_dim=16, moe_intermediate_size=32, max_position_embeddings=1024,
        final_logit_softcapping=30.0, pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )
    text.update(SHAPES[shape])
    cfg = DiffusionGemmaConfig(text_config=text, vision_config=dict(MINIMAL_VISION), canvas_length=8,
                               boi_token_id=509, eoi_token_id=510, image_token_id=511)
    torch.manual_seed(0)
    model = DiffusionGemmaForBlockDiffusion(cfg).eval()
    with torch.no_grad():  # random routers and layer scalars, so every branch carries signal
        for name, p in model.named_parameters():
            if "per_expert_scale" in name or name.endswith("router.scale"):
                p.uniform_(0.5, 1.5)
        for name, b in model.named_buffers():
            if name.endswith("layer_scalar"):
                b.uniform_(0.5, 1.5)
    return model


def reference(model, kv, canvas, start, self_cond):
    dec = model.model.decoder
    pos = torch.arange(start, start + canvas.shape[1]).unsqueeze(0)
    hidden = dec(decoder_input_ids=canvas, past_key_values=kv, self_conditioning_logits=self_cond,
                 decoder_position_ids=pos).last_hidden_state
    logits = model.lm_head(hidden).float()
    cap = model.config.get_text_config().final_logit_softcapping
    return torch.tanh(logits / cap) * cap


@pytest.mark.parametrize("shape", sorted(SHAPES))
@torch.inference_mode()
def test_fast_model_matches_transformers(shape: str):
    model = build(shape)
    fm = fastpath.FastModel.from_transformers(model)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(3, 500, (1, 40), generator=g)

    # encoder: keys/values written in two pieces (a cached head, then the rest) equal transformers'
    kv = DynamicCache(config=model.config.get_text_config(decoder=True))
    model.model.encoder(input_ids=prompt, past_key_values=kv, use_cache=True)
    cache = fm.new_cache()
    fm.encode(prompt[0, :25].tolist(), cache)
    fm.encode(prompt[0, 25:].tolist(), cache)
    assert cache.length == 40
    for i in range(len(fm.layers)):
        torch.testing.assert_close(cache.keys[i][:, :, :40], kv.layers[i].keys, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(cache.values[i][:, :, :40], kv.layers[i].values, atol=1e-4, rtol=1e-4)

    # decoder: a first step, then one self-conditioned on it (temperature-scaled logits)
    step = fm.step_fn(cache, 8)
    canvas = torch.randint(0, 512, (1, 8), generator=g)
    first_ref = reference(model, kv, canvas, 40, None)
    first = step(canvas, None)
    torch.testing.assert_close(first, first_ref, atol=1e-4, rtol=1e-4)
    canvas2 = torch.randint(0, 512, (1, 8), generator=g)
    second_ref = reference(model, kv, canvas2, 40, first_ref / 0.5)
    second = step(canvas2, first / 0.5)
    torch.testing.assert_close(second, second_ref, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(first, second)  # the canvas and self-conditioning really changed it

    # the full model forward (encoder + decoder in one call) agrees too
    full = model(input_ids=prompt, decoder_input_ids=canvas,
                 past_key_values=DynamicCache(config=model.config.get_text_config(decoder=True))).logits
    torch.testing.assert_close(first, full.float(), atol=1e-4, rtol=1e-4)

    # cropping the cache and encoding a different tail gives the fresh result
    fm.encode([7, 8, 9], cache)
    cache.crop(40)
    torch.testing.assert_close(fm.step_fn(cache, 8)(canvas, None), first_ref, atol=1e-4, rtol=1e-4)


def test_sliding_window_checkpoints_use_transformers():
    model = build("mini")
    cfg = model.config.to_dict()
    cfg["text_config"]["layer_types"] = ["sliding_attention", "full_attention", "full_attention"]
    assert "sliding" in fastpath.unsupported(cfg)


def test_native_load_matches_transformers_load():
    """The embedded checkpoint loaded without transformers: same tokens, same logits."""
    from conftest import EMBEDDED
    from dg_lsp.engine import native
    from dg_lsp.engine.loader import load_checkpoint

    nat = native.load(str(EMBEDDED), device="cpu")
    ref = load_checkpoint(str(EMBEDDED), device="cpu")
    assert nat is not None and nat.model is None
    text = "def f(x):\n    return x  # ünïcode \U0001f600\n\tif a:\n"
    ids = ref.tokenizer.encode(text, add_special_tokens=False)
    assert nat.tokenizer.encode(text) == ids
    assert nat.tokenizer.decode(ids) == ref.tokenizer.decode(ids, skip_special_tokens=True)
    assert nat.tokenizer.eos_token_id == ref.tokenizer.eos_token_id
    assert set(nat.tokenizer.all_special_ids) == set(ref.tokenizer.all_special_ids)
    assert len(nat.tokenizer) == len(ref.tokenizer)
    assert nat.matmul_dtype == ref.matmul_dtype  # both loaders pick the same products for "auto"
    ref_fast = fastpath.FastModel.from_transformers(ref.model, ref.matmul_dtype)
    canvas = torch.randint(0, 8000, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        outs = []
        for fm in (nat.fast, ref_fast):
            cache = fm.new_cache()
            fm.encode(ids, cache)
            outs.append(fm.step_fn(cache, 16)(canvas, None))
    torch.testing.assert_close(outs[0], outs[1])


@torch.inference_mode()
def test_bf16_products_track_float32():
    """bf16 matrix products over float32 activations (``auto`` on CPUs with bf16 GEMMs): the
    embedded model's distribution over a half-masked canvas after real code barely moves."""
    from conftest import EMBEDDED
    from dg_lsp.engine.loader import load_checkpoint

    ref = load_checkpoint(str(EMBEDDED), device="cpu", dtype="float32")
    ids = ref.tokenizer.encode(Path(fastpath.__file__).read_text()[:2000], add_special_tokens=False)[:180]
    full = fastpath.FastModel.from_transformers(ref.model)
    mixed = fastpath.FastModel.from_transformers(ref.model, torch.bfloat16)
    assert mixed.layers[0].qkv.dtype == mixed.lm_head.dtype == torch.bfloat16 and mixed.embed.dtype == torch.float32
    canvas = torch.full((1, 32), 6)  # <mask>
    canvas[0, ::2] = torch.randint(10, 8000, (16,), generator=torch.Generator().manual_seed(0))
    outs = []
    for fm in (full, mixed):
        cache = fm.new_cache()
        fm.encode(ids, cache)
        assert cache.keys[0].dtype == torch.float32
        outs.append(fm.step_fn(cache, 32)(canvas, None))
    assert not torch.equal(outs[0], outs[1])  # the products really ran in bf16
    total_variation = (outs[0].softmax(-1) - outs[1].softmax(-1)).abs().sum(-1) / 2  # (1, 32)
    assert total_variation.max() < 0.05, total_variation.max()
    assert (outs[0].argmax(-1) == outs[1].argmax(-1)).float().mean() >= 0.9


def test_bf16_products_see_few_shapes():
    """Row counts are padded to a few sizes (oneDNN keeps memory per shape it has seen), and
    the padding changes no row of the result."""
    assert len({fastpath._row_bucket(n) for n in range(1, 257)}) == 16
    assert all(n <= fastpath._row_bucket(n) < n + 16 for n in range(1, 257))
    g = torch.Generator().manual_seed(0)
    w = torch.randn(40, 24, generator=g).to(torch.bfloat16)
    for rows in (1, 7, 16, 33, 300):
        x = torch.randn(1, rows, 24, generator=g)
        out = fastpath._lin(x, w)
        assert out.shape == (1, rows, 40) and out.dtype == torch.float32
        torch.testing.assert_close(out, F.linear(x.to(torch.bfloat16), w).float(), atol=1e-2, rtol=1e-2)


def test_matmul_dtype_choice(monkeypatch):
    """bf16 products only for dtype auto on a CPU that has bf16 GEMMs, and never when turned off."""
    from dg_lsp.engine.loader import pick_matmul_dtype

    assert pick_matmul_dtype("float32", "cpu") is None and pick_matmul_dtype("auto", "cuda") is None
    assert pick_matmul_dtype("auto", "cpu") == (torch.bfloat16 if fastpath.cpu_has_bf16() else None)
    monkeypatch.setenv("DG_LSP_CPU_BF16", "0")
    assert pick_matmul_dtype("auto", "cpu") is None


def test_engine_can_turn_the_fast_path_off(monkeypatch):
    from conftest import TINY
    from dg_lsp.engine import Engine

    monkeypatch.setenv("DG_LSP_FASTPATH", "0")
    assert Engine.load(str(TINY)).describe()["fast_path"] is False
    monkeypatch.delenv("DG_LSP_FASTPATH")
    assert Engine.load(str(TINY)).describe()["fast_path"] is True


def test_native_tokenizer_batch_decode_matches_transformers():
    from conftest import TINY
    from dg_lsp.engine import native
    from dg_lsp.engine.loader import load_checkpoint

    nat = native.load(str(TINY), device="cpu")
    ref = load_checkpoint(str(TINY), device="cpu")
    batch = [[i] for i in range(len(ref.tokenizer))]
    assert nat.tokenizer.batch_decode(batch) == ref.tokenizer.batch_decode(
        batch, skip_special_tokens=True, clean_up_tokenization_spaces=False
    )


@torch.inference_mode()
def test_peaked_self_conditioning_skips_most_of_the_vocabulary(monkeypatch):
    """A peaked self-conditioning signal sums only the tokens holding its mass, from plain
    logits or from the sampler's restricted distribution; the logits equal those of the full
    product (forced by allowing no sparse share)."""
    from dg_lsp.engine.sampler import SelfCond, draw, log_softmax_clamped

    model = build("mini")
    fm = fastpath.FastModel.from_transformers(model)
    g = torch.Generator().manual_seed(3)
    cache = fm.new_cache()
    fm.encode(torch.randint(3, 500, (30,), generator=g).tolist(), cache)
    step = fm.step_fn(cache, 8)
    canvas = torch.randint(0, 512, (1, 8), generator=g)
    base = step(canvas, None)
    peaked = base.scatter(-1, torch.randint(0, 512, (1, 8, 1), generator=g), 60.0)  # one token far ahead
    for logits, sparse in ((peaked * 0.5, True), (base, False)):
        logp, probs = log_softmax_clamped(logits)
        blocks = (probs.view(8, -1, fastpath.SPARSE_BLOCK).amax(-1) > fastpath.SPARSE_FLOOR).float().mean()
        assert bool(blocks <= fastpath.SPARSE_MAX_SHARE) == sparse
        fast = step(canvas, logp)
        with monkeypatch.context() as m:
            m.setattr(fastpath, "SPARSE_MAX_SHARE", -1.0)
            torch.testing.assert_close(step(canvas, SelfCond(dense=logp)), fast, atol=1e-5, rtol=1e-5)
    # the sampler's own restricted distribution (a 1,024-token vocabulary, so it restricts)
    big = torch.randn(1, 8, 1024, generator=g) * 3
    big[0, torch.arange(8), torch.randint(0, 1024, (8,), generator=g)] += 40.0
    fm2 = fastpath.FastModel.from_transformers(build_vocab(1024))
    cache2 = fm2.new_cache()
    fm2.encode(list(range(3, 40)), cache2)
    step2 = fm2.step_fn(cache2, 8)
    d = draw(big, 0.05, torch.Generator().manual_seed(0))
    assert d.self_cond.blocks is not None and d.self_cond.blocks[0].numel() < 8 * 1024 // 64
    torch.testing.assert_close(step2(canvas, d.self_cond), step2(canvas, SelfCond(dense=d.self_cond.logits)))


def build_vocab(vocab: int) -> DiffusionGemmaForBlockDiffusion:
    text = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, head_dim=16,
                global_head_dim=16, moe_intermediate_size=32, layer_types=["full_attention"] * 2,
                num_attention_heads=2, num_key_value_heads=1, num_experts=2, top_k_experts=1,
                pad_token_id=0, eos_token_id=1, bos_token_id=2)
    cfg = DiffusionGemmaConfig(text_config=text, vision_config=dict(MINIMAL_VISION), canvas_length=8,
                               boi_token_id=vocab - 3, eoi_token_id=vocab - 2, image_token_id=vocab - 1)
    torch.manual_seed(0)
    return DiffusionGemmaForBlockDiffusion(cfg).eval()


def test_blocked_argmax_is_torch_argmax():
    from dg_lsp.engine.sampler import first_argmax as argmax

    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 16, 8192, generator=g)
    z[0, 0, 100] = z[0, 0, 5000] = 50.0  # a tie: the first one wins, as in torch
    z[1, 2, :] = float("-inf")
    z[1, 2, 4097] = 0.0
    z[2, 3, :] = 1.0  # all equal
    assert torch.equal(argmax(z), z.argmax(dim=-1))
    assert argmax(z)[0, 0] == 100 and argmax(z)[2, 3] == 0
    small = torch.randn(2, 100, generator=g)
    assert torch.equal(argmax(small), small.argmax(dim=-1))
