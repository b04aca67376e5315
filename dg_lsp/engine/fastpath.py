"""A lean DiffusionGemma forward for small checkpoints: transformers' math, less per-call work.

transformers' modules rebuild everything on every call: rotary tables, attention masks,
the concatenation of the prompt cache with the canvas, expert routing loops, output
records. For a small checkpoint on a CPU that overhead is most of a denoising step, and
importing transformers is most of the server's cold start. ``FastModel`` holds the same
weights (taken from a loaded transformers model, or read straight from safetensors by
``native.py``) and runs:

* ``encode``: the causal encoder over new prompt tokens, writing their keys/values into a
  ``KVCache`` (preallocated per layer; cropping is setting a length). The last layer only
  needs its keys/values, so its attention output and MLPs are skipped.
* ``draft``: greedy next-token decoding with the causal encoder after the prompt (every
  layer, final norm, tied head), for a canvas that starts from the model's own draft.
* ``step``: the bidirectional decoder over a canvas, whose keys/values go into a slot right
  after the prompt in the same buffers (no concatenation), with rotary tables made once
  per request, fused q/k/v, gate/up and expert projections, and few experts run densely.

``tests/test_fastpath.py`` checks encoder caches and decoder logits against transformers on
random models of several shapes. ``unsupported()`` names what this path does not cover
(sliding-window layers, clipped linears, attention biases, other rotary types); the engine
then runs transformers' modules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from dg_lsp.engine.errors import Cancelled

# Experts computed densely (every token through every expert) up to this count; above it
# the chosen experts run per expert.
DENSE_EXPERTS_MAX = 8
ROPE_TYPES = ("default", "proportional")
ACTIVATIONS = ("gelu_pytorch_tanh",)
# Draft tokens decoded between two cancellation checks.
DRAFT_CHECK = 8
# Positions per chunk of the vocabulary-wide head in ``score_rows`` (64 x 8,192 floats: 2 MB).
SCORE_CHUNK = 64


def unsupported(config: Mapping[str, Any]) -> str | None:
    """None if the fast path runs this DiffusionGemma config (a config.json dict), else why not."""
    text = config.get("text_config") or {}
    if config.get("model_type") != "diffusion_gemma":
        return f"model_type {config.get('model_type')!r}"
    types = text.get("layer_types") or []
    if not types or any(t != "full_attention" for t in types):
        return "sliding-window layers"
    if text.get("attention_bias") or text.get("use_clipped_linears"):
        return "attention bias or clipped linears"
    if text.get("use_bidirectional_attention") not in (None, "vision"):
        return "bidirectional encoder"
    if text.get("hidden_activation", "gelu_pytorch_tanh") not in ACTIVATIONS:
        return f"activation {text.get('hidden_activation')!r}"
    rope = (text.get("rope_parameters") or {}).get("full_attention") or {}
    if rope.get("rope_type", "default") not in ROPE_TYPES:
        return f"rotary type {rope.get('rope_type')!r}"
    if not text.get("num_experts") or not text.get("top_k_experts"):
        return "no experts"
    return None


def _rms(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _row_bucket(rows: int) -> int:
    """Rows padded to: 16s up to 256 (an encode chunk), then 64s, then 256s."""
    step = 16 if rows <= 256 else 64 if rows <= 1024 else 256
    return -(-rows // step) * step


def _lin(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w.T`` in ``w``'s dtype, returned in ``x``'s (bf16 matmuls, float32 activations).

    oneDNN, which runs torch's bf16 products on CPUs, keeps about 0.35 MB per distinct matrix
    shape it has seen, for good: prompt chunks of every length from 1 to 256 rows grew a
    server past 1 GB. Padding the rows to a few bucket sizes bounds that (16 sizes per weight
    up to 256 rows), for at most 15 zero rows of work."""
    if w.dtype == x.dtype:
        return F.linear(x, w)
    rows = x.shape[-2]
    pad = _row_bucket(rows) - rows
    xb = x.to(w.dtype)
    if pad:
        return F.linear(F.pad(xb, (0, 0, 0, pad)), w)[..., :rows, :].to(x.dtype)
    return F.linear(xb, w).to(x.dtype)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX), read from
    ``/proc/cpuinfo`` (Linux x86; elsewhere False). oneDNN then runs a bf16 GEMM at about twice
    the float32 rate: a 799-token encode of the embedded model 30 -> 21 ms on one thread."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def inv_freq(rope: Mapping[str, Any], head_dim: int) -> torch.Tensor:
    """Rotary inverse frequencies as transformers computes them (default and proportional)."""
    base = float(rope.get("rope_theta", 10000.0))
    partial = float(rope.get("partial_rotary_factor", 1.0))
    if rope.get("rope_type", "default") == "proportional":
        angles = int(partial * head_dim // 2)
        rotated = 1.0 / (base ** (torch.arange(0, 2 * angles, 2, dtype=torch.int64).float() / head_dim))
        freq = torch.cat((rotated, torch.zeros(head_dim // 2 - angles)))
        return freq / float(rope.get("factor", 1.0))
    dim = int(head_dim * partial)
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


class KVCache:
    """Keys/values of the encoded prompt, per layer, in buffers with room to grow.

    ``length`` tokens are valid; a decoder step writes the canvas right after them
    without changing ``length``.
    """

    def __init__(self, shapes: list[tuple[int, int]], dtype: torch.dtype, device: str | torch.device):
        self.shapes = shapes  # per layer (kv heads, head dim)
        self.dtype, self.device = dtype, device
        self.length = 0
        self.capacity = 0
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.reserve(256)

    def reserve(self, n: int) -> None:
        """Make room for ``n`` tokens (prompt plus canvas), keeping what is cached."""
        if n <= self.capacity:
            return
        cap = max(n, int(self.capacity * 1.5), 256)
        keys, values = [], []
        for i, (h, d) in enumerate(self.shapes):
            k = torch.empty(1, h, cap, d, dtype=self.dtype, device=self.device)
            v = torch.empty_like(k)
            if self.length:
                k[:, :, : self.length] = self.keys[i][:, :, : self.length]
                v[:, :, : self.length] = self.values[i][:, :, : self.length]
            keys.append(k)
            values.append(v)
        self.keys, self.values, self.capacity = keys, values, cap

    def crop(self, n: int) -> None:
        self.length = max(0, min(n, self.length))


@dataclass
class _Layer:
    """Weights of one layer, pre-arranged so a layer is few tensor operations.

    Norms whose output feeds a projection are folded into it: ``rms(x) * w`` then ``W`` is
    ``rms(x)`` then ``W * w``. The three norms of the feed-forward input (dense MLP, experts,
    router) share one ``rms(x)``, so their projections are one matrix.
    """

    qkv: torch.Tensor  # (Hq*d + Hkv*d [+ Hkv*d], D): q_proj, k_proj, v_proj, input norm folded in
    has_v: bool
    head_dim: int
    n_heads: int
    n_kv: int
    head_norm: torch.Tensor  # (Hq + Hkv, d): q_norm per query head, k_norm per key head
    rot_sign: torch.Tensor  # (d,): -1 on the first half, +1 on the second (rotate_half as a roll)
    o: torch.Tensor
    post_attention: torch.Tensor
    # (2I [+ 2E*Ie] + E + pad, D): MLP gate, MLP up, [experts' gates, experts' ups,] router,
    # zero rows up to a multiple of 16 (MKL's GEMM: 799 x 128 x 1026 took 4.5 ms, x 1040 2.9 ms)
    ffn_in: torch.Tensor
    router_at: int  # first router row of ffn_in
    intermediate: int  # I
    down: torch.Tensor  # (D, I)
    n_experts: int
    expert_inner: int  # Ie
    top_k: int
    per_expert_scale: torch.Tensor  # (E,)
    dense: bool  # experts computed for every token (few experts), their projections in ffn_in
    experts_down: torch.Tensor  # dense: (D, E*Ie); routed: (E, D, Ie)
    experts_gate_up: torch.Tensor | None  # routed only: (E, 2*Ie, D), pre-norm folded in
    coef_table: torch.Tensor | None  # dense top-1: (E, E*Ie), row e = e's scale on e's block
    post_ffn: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # norms of MLP, experts, their sum
    enc_scalar: torch.Tensor | None  # None when 1
    dec_scalar: torch.Tensor | None


class FastModel:
    """Encoder and decoder of a DiffusionGemma checkpoint over a ``KVCache``.

    ``matmul_dtype`` (bf16 on a CPU with native bf16 GEMMs): the projection weights are kept
    in it and every matrix product runs in it, while activations, norms, attention and the
    prompt cache stay in the tensors' dtype (float32), as under training's bf16 autocast.
    """

    def __init__(
        self, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], matmul_dtype: torch.dtype | None = None
    ):
        reason = unsupported(config)
        if reason:
            raise ValueError(f"fast path does not cover this checkpoint: {reason}")
        text = config["text_config"]
        self.eps = float(text.get("rms_norm_eps", 1e-6))
        self.softcap = text.get("final_logit_softcapping", 30.0)
        self.top_k = int(text["top_k_experts"])
        t = tensors
        # text parameters, each shared tensor once (buffers such as layer scalars excluded)
        unique = {v.data_ptr(): v for k, v in t.items() if not k.endswith("layer_scalar")}
        self.n_parameters = sum(v.numel() for v in unique.values())
        dec = "model.decoder."
        self.embed = t[dec + "embed_tokens.weight"]  # (V, D)
        self.vocab_size, self.hidden = self.embed.shape
        self.embed_scale = float(torch.tensor(self.hidden**0.5, dtype=self.embed.dtype))
        self.final_norm = t[dec + "norm.weight"]
        sc = dec + "self_conditioning."
        self.sc_gate_up = torch.cat([t[sc + "gate_proj.weight"], t[sc + "up_proj.weight"]], 0) * t[sc + "pre_norm.weight"]
        self.sc_down = t[sc + "down_proj.weight"]
        self.lm_head = t.get("lm_head.weight", self.embed)
        self._tied_head = self.lm_head.data_ptr() == self.embed.data_ptr()
        self._draft_cache: tuple[list[_Layer], torch.Tensor] | None = None
        n_layers = len(text["layer_types"])
        self.layers = [self._layer(t, i) for i in range(n_layers)]
        rope = (text.get("rope_parameters") or {}).get("full_attention") or {}
        self.inv_freq = inv_freq(rope, self.layers[0].head_dim).to(self.embed.device)
        self.dtype, self.device = self.embed.dtype, self.embed.device
        self.matmul_dtype = matmul_dtype or self.dtype
        if self.matmul_dtype != self.dtype:
            self._convert_projections(self.matmul_dtype)

    def _convert_projections(self, dt: torch.dtype) -> None:
        """Keep every projection (not embeddings, norms or scales) in ``dt``."""
        self.sc_gate_up, self.sc_down, self.lm_head = (w.to(dt) for w in (self.sc_gate_up, self.sc_down, self.lm_head))
        for ly in self.layers:
            ly.qkv, ly.o, ly.ffn_in, ly.down, ly.experts_down = (
                w.to(dt) for w in (ly.qkv, ly.o, ly.ffn_in, ly.down, ly.experts_down)
            )
            if ly.experts_gate_up is not None:
                ly.experts_gate_up = ly.experts_gate_up.to(dt)

    @classmethod
    def from_transformers(cls, model: Any, matmul_dtype: torch.dtype | None = None) -> "FastModel":
        state = {k: v.detach() for k, v in model.state_dict().items() if "vision" not in k}
        return cls(model.config.to_dict(), state, matmul_dtype)

    def _layer(self, t: Mapping[str, torch.Tensor], i: int) -> _Layer:
        p = f"model.decoder.layers.{i}."
        w = lambda name: t[p + name + ".weight"]  # noqa: E731
        q, k = w("self_attn.q_proj"), w("self_attn.k_proj")
        has_v = p + "self_attn.v_proj.weight" in t
        d = w("self_attn.q_norm").shape[0]
        hidden = q.shape[1]
        n_heads, n_kv = q.shape[0] // d, k.shape[0] // d
        qkv = torch.cat([q, k, w("self_attn.v_proj")] if has_v else [q, k], 0) * w("input_layernorm")
        head_norm = torch.cat([w("self_attn.q_norm").expand(n_heads, d), w("self_attn.k_norm").expand(n_kv, d)])
        rot_sign = torch.cat([-torch.ones(d // 2), torch.ones(d - d // 2)]).to(q.dtype).to(q.device)
        gate, up = w("mlp.gate_proj"), w("mlp.up_proj")
        pre1, pre2 = w("pre_feedforward_layernorm"), w("pre_feedforward_layernorm_2")
        experts_gu = t[p + "experts.gate_up_proj"]  # (E, 2*Ie, D): each expert's gate rows, then up rows
        experts_down = t[p + "experts.down_proj"]  # (E, D, Ie)
        n_exp, _, inner = experts_down.shape
        dense = n_exp <= DENSE_EXPERTS_MAX
        router = t[p + "router.proj.weight"] * (t[p + "router.scale"] * hidden**-0.5)  # (E, D)
        pes = t[p + "router.per_expert_scale"]
        parts = [gate * pre1, up * pre1]
        if dense:
            parts += [experts_gu[:, :inner].reshape(-1, hidden) * pre2, experts_gu[:, inner:].reshape(-1, hidden) * pre2]
        one = torch.ones(1, dtype=q.dtype, device=q.device)
        coef_table = None
        if dense and self.top_k == 1:  # the weight of the one chosen expert is 1, times its scale
            coef_table = torch.block_diag(*[pes[e].expand(1, inner) for e in range(n_exp)])
        scalar = lambda key: None if bool((t.get(key, one) == 1).all()) else t[key]  # noqa: E731
        return _Layer(
            qkv=qkv,
            has_v=has_v,
            head_dim=d,
            n_heads=n_heads,
            n_kv=n_kv,
            head_norm=head_norm,
            rot_sign=rot_sign,
            o=w("self_attn.o_proj"),
            post_attention=w("post_attention_layernorm"),
            ffn_in=torch.cat(parts + [router, router.new_zeros(-(sum(len(x) for x in parts) + n_exp) % 16, hidden)], 0),
            router_at=sum(len(x) for x in parts),
            intermediate=gate.shape[0],
            down=w("mlp.down_proj"),
            n_experts=n_exp,
            expert_inner=inner,
            top_k=self.top_k,
            per_expert_scale=pes,
            dense=dense,
            experts_down=experts_down.permute(1, 0, 2).reshape(hidden, -1) if dense else experts_down,
            experts_gate_up=None if dense else experts_gu * pre2,
            coef_table=coef_table,
            post_ffn=(w("post_feedforward_layernorm_1"), w("post_feedforward_layernorm_2"), w("post_feedforward_layernorm")),
            enc_scalar=scalar(f"model.encoder.language_model.layers.{i}.layer_scalar"),
            dec_scalar=scalar(p + "layer_scalar"),
        )

    # ------------------------------------------------------------------ cache
    def new_cache(self) -> KVCache:
        return KVCache([(ly.n_kv, ly.head_dim) for ly in self.layers], self.dtype, self.device)

    def rope(self, start: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin (1, n, 1, d) for positions start..start+n."""
        pos = torch.arange(start, start + n, device=self.device, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(self.dtype)[None, :, None], emb.sin().to(self.dtype)[None, :, None]

    # ------------------------------------------------------------------ encoder
    def encode(self, ids: list[int], cache: KVCache) -> None:
        """Run the causal encoder over ``ids`` after the ``cache.length`` cached tokens."""
        if not ids:
            return
        start, n = cache.length, len(ids)
        cache.reserve(start + n)
        x = F.embedding(torch.tensor([ids], device=self.device), self.embed) * self.embed_scale  # (1, n, D)
        cos, sin = self.rope(start, n)
        # query i (position start+i) sees keys 0..start+i; from the start of the cache that is the
        # plain causal mask, which the attention kernel applies without materialising it
        causal = start == 0
        mask = None if causal else torch.ones(n, start + n, dtype=torch.bool, device=self.device).tril_(diagonal=start)
        last = len(self.layers) - 1
        for i, ly in enumerate(self.layers):
            q, k, v = self._qkv(ly, x, cos, sin)
            cache.keys[i][:, :, start : start + n] = k
            cache.values[i][:, :, start : start + n] = v
            if i == last:  # only its keys/values are needed
                break
            att = F.scaled_dot_product_attention(
                q, cache.keys[i][:, :, : start + n], cache.values[i][:, :, : start + n],
                attn_mask=mask, is_causal=causal, scale=1.0, enable_gqa=ly.n_heads != ly.n_kv,
            )
            x = self._after_attention(ly, x, att, ly.enc_scalar)
        cache.length = start + n

    # ------------------------------------------------------------------ causal draft
    def _draft_layers(self) -> tuple[list[_Layer], torch.Tensor]:
        """Layers and head for one-token steps: the projections in the activations' dtype.

        With bf16 products a one-row product pays oneDNN's set-up each call (25-35 us for the
        embedded model's matrices, 4-11 us as float32), about half a draft token's time; the
        float32 copies (4 bytes per projection weight, of the bf16 ones) are made on the first
        draft only; a tied head is the embedding itself."""
        if self._draft_cache is None:
            if self.matmul_dtype == self.dtype:
                self._draft_cache = (self.layers, self.lm_head)
            else:
                own = lambda w: None if w is None else w.to(self.dtype)  # noqa: E731
                layers = [
                    replace(ly, qkv=own(ly.qkv), o=own(ly.o), ffn_in=own(ly.ffn_in), down=own(ly.down),
                            experts_down=own(ly.experts_down), experts_gate_up=own(ly.experts_gate_up))
                    for ly in self.layers
                ]
                self._draft_cache = (layers, self.embed if self._tied_head else own(self.lm_head))
        return self._draft_cache

    def _draft_logits(self, x: torch.Tensor, head: torch.Tensor, banned: torch.Tensor | None) -> torch.Tensor:
        """Next-token logits (R, V) float32 of the final hidden states ``x`` (R, 1, D): final norm,
        head, soft cap; ``banned`` ids at -inf."""
        z = _lin(_rms(x, self.final_norm, self.eps), head).float()[:, 0]
        if self.softcap:
            z = softcap(z, float(self.softcap))
        if banned is not None and banned.numel():
            z[:, banned] = float("-inf")
        return z

    @torch.inference_mode()
    def draft(
        self,
        cache: KVCache,
        last_id: int,
        n: int,
        *,
        banned: torch.Tensor | None = None,
        eos_ids: Sequence[int] = (),
        should_stop: Callable[[], bool] | None = None,
        min_prob: float = 0.0,
        memory: Any = None,
        stop: Callable[[list[int], float], bool] | None = None,
    ) -> tuple[list[int], list[float]]:
        """Greedy next-token decoding with the causal encoder after the encoded prompt.

        ``cache`` holds the prompt, whose last token is ``last_id`` (``<|fim_middle|>``). Up to
        ``n`` tokens are decoded, each the argmax (``banned`` ids excluded) of final norm, tied
        head and soft-capping over the final hidden state of the position before it; decoding
        stops after a token in ``eos_ids`` (returned), or after the token at which the running
        product of the probabilities falls under ``min_prob`` (returned: a caller that cuts there
        needs no more). Returns (ids, each one's probability). ``memory``: a
        ``dg_lsp.memory.Cursor`` that mixes the memories into each token's distribution (the
        argmax and the probabilities returned are the mixed ones) and is advanced by each token.
        ``stop(ids, running)``: also stop after a token for which it says so (the caller's cut).

        ``encode`` skips the last layer's attention and MLPs, so the prompt's last position is
        run again here through every layer; it reads its own cached keys/values instead of
        rewriting them, so the prompt cache stays bit-exact. Draft tokens' keys/values are
        written after ``cache.length``, where a canvas goes, and ``cache.length`` is the
        prompt's length again on return (also when ``should_stop`` cancels, checked every
        ``DRAFT_CHECK`` tokens)."""
        start = cache.length
        if n <= 0 or start == 0:
            return [], []
        cache.reserve(start + n)
        cos, sin = self.rope(start - 1, n)
        layers, head = self._draft_layers()
        eos = set(int(i) for i in eos_ids)
        ids: list[int] = []
        probs: list[float] = []
        running = 1.0
        tok = torch.tensor([[int(last_id)]], device=self.device)
        try:
            for j in range(n):
                if j and should_stop is not None and j % DRAFT_CHECK == 0 and should_stop():
                    raise Cancelled("cancelled while drafting")
                p = start - 1 + j  # this token's position
                x = F.embedding(tok, self.embed) * self.embed_scale  # (1, 1, D)
                c, s = cos[:, j : j + 1], sin[:, j : j + 1]
                for i, ly in enumerate(layers):
                    q, k, v = self._qkv(ly, x, c, s)
                    kb, vb = cache.keys[i], cache.values[i]
                    if j:  # the prompt's last keys/values (j == 0) are cached already
                        kb[:, :, p : p + 1] = k
                        vb[:, :, p : p + 1] = v
                    att = F.scaled_dot_product_attention(
                        q, kb[:, :, : p + 1], vb[:, :, : p + 1], scale=1.0, enable_gqa=ly.n_heads != ly.n_kv
                    )  # one query: it sees every key up to its own
                    x = self._after_attention(ly, x, att, ly.enc_scalar)
                z = self._draft_logits(x, head, banned)[0]  # (V,)
                if memory is None:
                    best, idx = z.max(dim=-1)
                    prob = float(1.0 / (z - best).exp_().sum())
                else:
                    prob, idx = _mixed_best(z, memory, banned)
                tok = idx.view(1, 1)
                t = int(idx)
                ids.append(t)
                probs.append(prob)
                running *= probs[-1]
                if t in eos or running < min_prob or (stop is not None and stop(ids, running)):
                    break
        finally:
            cache.crop(start)
        return ids, probs

    @torch.inference_mode()
    def draft_branches(
        self,
        cache: KVCache,
        last_id: int,
        n: int,
        k: int,
        *,
        banned: torch.Tensor | None = None,
        eos_ids: Sequence[int] = (),
        should_stop: Callable[[], bool] | None = None,
        min_prob: float = 0.0,
        memory: Any = None,
        stop: Callable[[list[int], float], bool] | None = None,
    ) -> list[tuple[list[int], list[float]]]:
        """Up to ``k`` greedy drafts that branch at their first token, decoded together (one
        forward pass of ``k`` rows per token): the first is ``draft``'s (the argmax first token),
        the others start with the next most likely first tokens that are not EOS (an empty
        middle is not an alternative), each then greedy. Returns (ids, probabilities) per row,
        each up to ``n`` tokens, ending after an EOS or after the token at which its running
        product of probabilities falls under ``min_prob``.

        The prompt's keys/values are read from ``cache`` and never written: each row's draft
        keys/values live in tensors of its own, so ``cache`` is unchanged on return. ``memory``:
        as for ``draft``, forked per row (each row's cursor is ``memory.forks[b]`` afterwards)."""
        start = cache.length
        if n <= 0 or start == 0 or k <= 0:
            return []
        cos, sin = self.rope(start - 1, n)
        layers, head = self._draft_layers()
        eos = set(int(i) for i in eos_ids)

        # the first token: the prompt's last position through every layer, reading its own cache
        p0 = start - 1
        x = F.embedding(torch.tensor([[int(last_id)]], device=self.device), self.embed) * self.embed_scale
        for i, ly in enumerate(layers):
            q, _, _ = self._qkv(ly, x, cos[:, :1], sin[:, :1])
            att = F.scaled_dot_product_attention(q, cache.keys[i][:, :, : p0 + 1], cache.values[i][:, :, : p0 + 1],
                                                 scale=1.0, enable_gqa=ly.n_heads != ly.n_kv)
            x = self._after_attention(ly, x, att, ly.enc_scalar)
        z = self._draft_logits(x, head, banned)[0]
        prob = (z - z.max()).exp_()
        prob /= prob.sum()
        if memory is not None:
            prob = _zero_banned(memory.mix(prob), banned)
        order = torch.argsort(prob, descending=True)[: k + len(eos)].tolist()
        firsts = [order[0]] + [t for t in order[1:] if t not in eos][: k - 1]
        rows = [([t], [float(prob[t])]) for t in firsts]
        cursors = []
        if memory is not None:
            for t in firsts:
                c = memory.fork()
                c.push(t)
                cursors.append(c)
            memory.forks = cursors
        running = [float(prob[t]) for t in firsts]
        live = [t not in eos and running[b] >= min_prob and not (stop is not None and stop(rows[b][0], running[b]))
                for b, t in enumerate(firsts)]
        if n == 1 or not any(live):
            return rows
        r = len(rows)
        # each row's draft keys/values, after the shared prompt ones (expanded, not copied)
        dk = [torch.empty(r, ly.n_kv, n, ly.head_dim, dtype=cache.keys[i].dtype, device=self.device)
              for i, ly in enumerate(layers)]
        dv = [torch.empty_like(t) for t in dk]
        tok = torch.tensor([[t] for t in firsts], device=self.device)  # (R, 1)
        for j in range(1, n):
            if should_stop is not None and j % DRAFT_CHECK == 0 and should_stop():
                raise Cancelled("cancelled while drafting")
            x = F.embedding(tok, self.embed) * self.embed_scale  # (R, 1, D)
            c, s_ = cos[:, j : j + 1], sin[:, j : j + 1]
            for i, ly in enumerate(layers):
                q, kk, vv = self._qkv(ly, x, c, s_)
                dk[i][:, :, j - 1 : j] = kk
                dv[i][:, :, j - 1 : j] = vv
                keys = torch.cat([cache.keys[i][:, :, :start].expand(r, -1, -1, -1), dk[i][:, :, :j]], dim=2)
                vals = torch.cat([cache.values[i][:, :, :start].expand(r, -1, -1, -1), dv[i][:, :, :j]], dim=2)
                att = F.scaled_dot_product_attention(q, keys, vals, scale=1.0, enable_gqa=ly.n_heads != ly.n_kv)
                x = self._after_attention(ly, x, att, ly.enc_scalar)
            z = self._draft_logits(x, head, banned)  # (R, V)
            if memory is None:
                best, idx = z.max(dim=-1)
                probs = 1.0 / (z - best[:, None]).exp_().sum(dim=-1)
            else:
                pairs = [_mixed_best(z[b], cursors[b], banned, push=False) if live[b] else (0.0, z[b].argmax())
                         for b in range(r)]
                probs = [p for p, _ in pairs]
                idx = torch.stack([i for _, i in pairs])
            for b in range(r):
                if live[b]:
                    t = int(idx[b])
                    if memory is not None:
                        cursors[b].push(t)
                    rows[b][0].append(t)
                    rows[b][1].append(float(probs[b]))
                    running[b] *= float(probs[b])
                    live[b] = t not in eos and running[b] >= min_prob and \
                        not (stop is not None and stop(rows[b][0], running[b]))
            if not any(live):
                break
            tok = idx.view(r, 1)
        return rows

    @torch.inference_mode()
    def score_rows(
        self,
        cache: KVCache,
        last_id: int | Sequence[int],
        rows: Sequence[Sequence[int]],
        *,
        at: Sequence[int] | None = None,
        banned: torch.Tensor | None = None,
        top: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Teacher-forced causal scores of ``rows`` (token sequences), each read as what follows
        the tokens in ``cache``, all rows in one forward pass of the encoder: row r's token j is
        predicted from the cached tokens and row r's tokens before j, as ``draft`` predicts it
        (final norm, head, soft cap, ``banned`` ids at -inf).

        Row r follows the first ``at[r]`` cached tokens (default: all of them), the last of
        which is ``last_id`` (or ``last_id[r]``): e.g. the prompt (whose last token is
        ``<|fim_middle|>``), or the prompt and the first tokens of a middle encoded after it,
        so rows that share a start with that middle are scored from where they differ.

        Returns (logprobs (R, L) float32: log p of each row's token j, 0 past a row's end;
        L = the longest row), and with ``top`` > 0 the ``top`` most likely tokens at each
        position (R, L, top) and their log-probabilities (R, L, top). ``cache`` is read, never
        written (each row's keys/values live in tensors of its own)."""
        r = len(rows)
        n = max((len(x) for x in rows), default=0)
        ats = [cache.length] * r if at is None else [int(x) for x in at]
        lasts = [int(last_id)] * r if isinstance(last_id, int) else [int(x) for x in last_id]
        if r == 0 or n == 0 or min(ats, default=0) <= 0:
            return torch.zeros(r, n), None, None
        layers, head = self._draft_layers() if r * n <= 8 else (self.layers, self.lm_head)
        # inputs: the last token each row follows, then the row's tokens but its last (padded with it)
        inp = torch.tensor([[lasts[b]] * n for b in range(r)], dtype=torch.long, device=self.device)
        tgt = torch.zeros(r, n, dtype=torch.long, device=self.device)
        valid = torch.zeros(r, n, dtype=torch.bool, device=self.device)
        for b, row in enumerate(rows):
            row = [int(t) for t in row]
            if row:
                inp[b, 1 : len(row)] = torch.tensor(row[:-1], device=self.device)
                tgt[b, : len(row)] = torch.tensor(row, device=self.device)
                valid[b, : len(row)] = True
        # the token each row follows is run again (its output is not cached): row b's input j
        # sits at position ats[b] - 1 + j and sees the cached tokens before ats[b] - 1 and its own
        # inputs up to j
        lo, c = min(ats) - 1, max(ats) - 1
        cos, sin = self.rope(lo, c - lo + n)
        offs = torch.tensor([[x - 1 - lo + j for j in range(n)] for x in ats], device=self.device)
        cos, sin = cos[0][offs], sin[0][offs]  # (R, n, 1, d)
        seen = torch.arange(c, device=self.device)[None, :] < torch.tensor(ats, device=self.device)[:, None] - 1
        own = torch.ones(n, n, dtype=torch.bool, device=self.device).tril_()
        mask = torch.cat([seen[:, None, :].expand(r, n, c), own.expand(r, n, n)], dim=2)[:, None]  # (R, 1, n, c + n)
        x = F.embedding(inp, self.embed) * self.embed_scale  # (R, n, D)
        for i, ly in enumerate(layers):
            q, k, v = self._qkv(ly, x, cos, sin)
            keys = torch.cat([cache.keys[i][:, :, :c].expand(r, -1, -1, -1), k], dim=2)
            vals = torch.cat([cache.values[i][:, :, :c].expand(r, -1, -1, -1), v], dim=2)
            att = F.scaled_dot_product_attention(q, keys, vals, attn_mask=mask, scale=1.0,
                                                 enable_gqa=ly.n_heads != ly.n_kv)
            x = self._after_attention(ly, x, att, ly.enc_scalar)
        h = _rms(x, self.final_norm, self.eps).reshape(r * n, -1)
        flat_tgt = tgt.reshape(-1)
        lp = torch.empty(r * n, dtype=torch.float32, device=self.device)
        ti = torch.empty(r * n, max(top, 0), dtype=torch.long, device=self.device)
        tv = torch.empty(r * n, max(top, 0), dtype=torch.float32, device=self.device)
        for a in range(0, r * n, SCORE_CHUNK):  # the head by chunks of positions: vocabulary-wide
            b = min(r * n, a + SCORE_CHUNK)  # tensors that stay in cache
            z = _lin(h[a:b], head).float()  # (c, V)
            if self.softcap:
                z = softcap(z, float(self.softcap))
            if banned is not None and banned.numel():
                z[:, banned] = float("-inf")
            lse = torch.logsumexp(z, dim=-1)
            lp[a:b] = z.gather(-1, flat_tgt[a:b, None]).squeeze(-1) - lse
            if top > 0:
                v, i = torch.topk(z, top, dim=-1)
                ti[a:b], tv[a:b] = i, v - lse[:, None]
        lp = torch.where(valid, lp.view(r, n), torch.zeros((), device=self.device))
        if top <= 0:
            return lp, None, None
        return lp, ti.view(r, n, top), tv.view(r, n, top)

    # ------------------------------------------------------------------ decoder
    def step_fn(self, cache: KVCache, length: int, rows: int = 1) -> "FastStep":
        cache.reserve(cache.length + rows * length)
        return FastStep(self, cache, length, rows)

    def _qkv(self, ly: _Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """Queries, keys and values (1, heads, S, d) of ``x`` (1, S, D), normed and rotated."""
        b, s, _ = x.shape
        nq, nk, d = ly.n_heads, ly.n_kv, ly.head_dim
        heads = _rms(_lin(_rms(x, None, self.eps), ly.qkv).view(b, s, -1, d), None, self.eps)
        qk = heads[:, :, : nq + nk] * ly.head_norm  # (1, S, Hq+Hkv, d)
        # rotary: x cos + rotate_half(x) sin, with rotate_half(x) = roll(x, d/2) * (-1 .. +1)
        qk = torch.addcmul(qk * cos, torch.roll(qk, d // 2, dims=-1), sin * ly.rot_sign)
        v = heads[:, :, nq + nk :] if ly.has_v else heads[:, :, nq : nq + nk]  # values: no weight, no rotation
        return qk[:, :, :nq].transpose(1, 2), qk[:, :, nq:].transpose(1, 2), v.transpose(1, 2)

    def _after_attention(
        self, ly: _Layer, x: torch.Tensor, att: torch.Tensor, scalar: torch.Tensor | None
    ) -> torch.Tensor:
        """Output projection, the dense MLP and the experts of one layer (shared by both sides)."""
        eps = self.eps
        b, s, _ = x.shape
        att = att.transpose(1, 2).reshape(b, s, -1)
        x = x + _rms(_lin(att, ly.o), ly.post_attention, eps)
        r = _rms(x, None, eps)
        proj = _lin(r, ly.ffn_in)  # (1, S, 2I [+ 2E*Ie] + E)
        i = ly.intermediate
        h1 = _lin(_gelu(proj[..., :i]) * proj[..., i : 2 * i], ly.down)
        h2 = self._experts(ly, r, proj, proj[..., ly.router_at : ly.router_at + ly.n_experts])
        w1, w2, w = ly.post_ffn
        x = x + _rms(_rms(h1, w1, eps) + _rms(h2, w2, eps), w, eps)
        return x if scalar is None else x * scalar

    def _experts(self, ly: _Layer, r: torch.Tensor, proj: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The experts' output (1, S, D); ``logits`` (1, S, E) are the router's."""
        i, e, inner = ly.intermediate, ly.n_experts, ly.expert_inner
        if ly.coef_table is not None:  # top-1: softmax, top-k and renormalising leave the argmax's 1
            coef = ly.coef_table[logits.argmax(dim=-1)]  # (1, S, E*Ie)
        else:
            probs = logits.softmax(dim=-1, dtype=torch.float32)
            w, idx = torch.topk(probs, k=ly.top_k, dim=-1)
            w = (w / w.sum(dim=-1, keepdim=True)) * ly.per_expert_scale[idx]
            coef = torch.zeros_like(probs).scatter_add_(-1, idx, w).to(r.dtype)  # (1, S, E)
            if not ly.dense:
                return self._routed(ly, r, coef, idx)
            coef = coef.repeat_interleave(inner, dim=-1)
        n = e * inner
        act = _gelu(proj[..., 2 * i : 2 * i + n]) * proj[..., 2 * i + n : 2 * i + 2 * n]  # (1, S, E*Ie)
        return _lin(act * coef, ly.experts_down)

    def _routed(self, ly: _Layer, r: torch.Tensor, coef: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Many experts: each chosen expert runs on its tokens only."""
        flat, coef, idx = r.reshape(-1, r.shape[-1]), coef.reshape(-1, ly.n_experts), idx.reshape(-1, ly.top_k)
        assert ly.experts_gate_up is not None
        out = torch.zeros_like(flat)
        for ex in torch.unique(idx).tolist():
            rows = (idx == ex).any(dim=-1).nonzero().squeeze(-1)
            gate, up = _lin(flat[rows], ly.experts_gate_up[ex]).chunk(2, dim=-1)
            y = _lin(_gelu(gate) * up, ly.experts_down[ex])
            out.index_add_(0, rows, y * coef[rows, ex, None])
        return out.view_as(r)


def _zero_banned(p: torch.Tensor, banned: torch.Tensor | None) -> torch.Tensor:
    if banned is not None and banned.numel():
        p[..., banned] = 0.0
    return p


def _mixed_best(z: torch.Tensor, memory: Any, banned: torch.Tensor | None, push: bool = True):
    """(probability, index tensor) of the most likely token of logits ``z`` (V,) after mixing
    the memories in (``memory``: a ``dg_lsp.memory.Cursor``, advanced by the token if ``push``)."""
    p = (z - z.max()).exp_()
    p /= p.sum()
    p = _zero_banned(memory.mix(p), banned)
    prob, idx = p.max(dim=-1)
    if push:
        memory.push(int(idx))
    return float(prob), idx


# Self-conditioning's soft embedding sum_v p_v embed_v skips vocabulary blocks whose largest
# probability is under SPARSE_FLOOR: at most vocab x floor of the mass (8e-7 for 8,192 tokens),
# below float32 rounding of the full sum. Blocks of SPARSE_BLOCK consecutive tokens; the full
# product runs when more than SPARSE_MAX_SHARE of the blocks are needed.
SPARSE_FLOOR = 1e-10
SPARSE_BLOCK = 64
SPARSE_MAX_SHARE = 0.25
# ... or when more than this many tokens per position count: gathering that many rows of the
# embedding costs more than the full product (48 positions: 0.82 ms sparse vs 0.46 ms at 150 per
# position, 8.2 vs 0.49 ms at 600; 16 positions: even at 147 per position; bf16, 1 thread)
SPARSE_MAX_PER_POSITION = 96


class FastStep:
    """``step(canvas, self_cond) -> logits`` for canvases of one length after the prompt."""

    def __init__(self, fm: FastModel, cache: KVCache, length: int, rows: int = 1):
        """``rows`` canvases of ``length`` at the same positions after the prompt (alternatives):
        run as one sequence of rows x length, each canvas attending to the prompt and itself."""
        self.fm, self.cache, self.length, self.rows = fm, cache, length, rows
        self.start = cache.length
        cos, sin = fm.rope(self.start, length)
        self.cos, self.sin = (cos, sin) if rows == 1 else (cos.repeat(1, rows, 1, 1), sin.repeat(1, rows, 1, 1))
        self.mask = None  # (rows*length, prompt + rows*length) bool: the prompt and its own canvas
        if rows > 1:
            own = torch.block_diag(*[torch.ones(length, length, dtype=torch.bool, device=fm.device)] * rows)
            self.mask = torch.cat([torch.ones(rows * length, self.start, dtype=torch.bool, device=fm.device), own], dim=1)

    def _soft_embedding(self, sc: Any) -> torch.Tensor:
        """sum_v softmax(logits)_v * embed_v * embed_scale (1, L, D).

        At the sampler's low temperatures a position's mass sits on a few tokens; the sum then
        runs over those tokens instead of streaming the whole embedding matrix (4 MB for the
        embedded model, read from memory each step). The sampler hands over its distribution
        restricted to the blocks of the vocabulary that hold the mass (``SelfCond.blocks``);
        plain logits are restricted here the same way.
        """
        fm = self.fm
        blocks = None if isinstance(sc, torch.Tensor) else sc.blocks
        if blocks is not None:
            rows, blk, pb = blocks  # (K,), (K,), (K, B)
            n = sc.length
        else:
            logits = sc if isinstance(sc, torch.Tensor) else sc.logits
            probs = logits.softmax(dim=-1, dtype=torch.float32)
            _, n, v = probs.shape
            if v % SPARSE_BLOCK:
                return (probs.to(fm.dtype) @ fm.embed) * fm.embed_scale
            pv = probs.view(n, v // SPARSE_BLOCK, SPARSE_BLOCK)  # (L, nb, B)
            rows, blk = (pv.amax(dim=-1) > SPARSE_FLOOR).nonzero(as_tuple=True)  # (K,)
            if rows.numel() > SPARSE_MAX_SHARE * n * (v // SPARSE_BLOCK):
                return (probs.to(fm.dtype) @ fm.embed) * fm.embed_scale
            pb = pv[rows, blk]
        k, j = (pb > SPARSE_FLOOR).nonzero(as_tuple=True)  # (M,) the tokens that count
        if k.numel() > SPARSE_MAX_PER_POSITION * n:  # broad distributions (hot alternatives): the full product
            dense = torch.zeros(n, fm.embed.shape[0] // pb.shape[-1], pb.shape[-1], dtype=torch.float32, device=pb.device)
            dense[rows, blk] = pb.float()
            return ((dense.view(n, -1).to(fm.dtype) @ fm.embed) * fm.embed_scale).unsqueeze(0)
        part = F.embedding(blk[k] * pb.shape[-1] + j, fm.embed) * pb[k, j, None].to(fm.dtype)  # (M, D)
        soft = torch.zeros(n, fm.hidden, dtype=fm.dtype, device=pb.device).index_add_(0, rows[k], part)
        return (soft * fm.embed_scale).unsqueeze(0)

    @torch.inference_mode()
    def __call__(self, canvas: torch.Tensor, self_cond: Any) -> torch.Tensor:
        """``canvas`` (rows, L) -> logits (rows, L, V). ``self_cond``: None, logits (rows, L, V),
        or a ``sampler.SelfCond`` (over the rows' positions in order)."""
        fm, cache = self.fm, self.cache
        if cache.length != self.start:
            raise RuntimeError("the prompt cache changed under a running denoising loop")
        if canvas.shape[0] != self.rows:
            raise ValueError(f"expected {self.rows} canvas rows, got {canvas.shape[0]}")
        rows = self.rows
        if rows > 1:
            canvas = canvas.reshape(1, -1)
            if isinstance(self_cond, torch.Tensor):
                self_cond = self_cond.reshape(1, canvas.shape[1], -1)
        eps = fm.eps
        x = F.embedding(canvas, fm.embed) * fm.embed_scale  # (1, rows*L, D)
        if self_cond is not None:
            soft = self._soft_embedding(self_cond)  # (1, L, D)
            gate, up = _lin(_rms(soft, None, eps), fm.sc_gate_up).chunk(2, dim=-1)
            x = x + _lin(_gelu(gate) * up, fm.sc_down)
        x = _rms(x, None, eps)
        p, n = self.start, canvas.shape[1]
        for i, ly in enumerate(fm.layers):
            q, k, v = fm._qkv(ly, x, self.cos, self.sin)
            kb, vb = cache.keys[i], cache.values[i]
            kb[:, :, p : p + n] = k
            vb[:, :, p : p + n] = v
            att = F.scaled_dot_product_attention(
                q, kb[:, :, : p + n], vb[:, :, : p + n], attn_mask=self.mask, scale=1.0,
                enable_gqa=ly.n_heads != ly.n_kv,
            )
            x = fm._after_attention(ly, x, att, ly.dec_scalar)
        x = _rms(x, fm.final_norm, eps)
        logits = _lin(x, fm.lm_head).float()  # (1, rows*L, V)
        if fm.softcap:
            logits = softcap(logits, float(fm.softcap))
        return logits if rows == 1 else logits.view(rows, self.length, -1)


def softcap(logits: torch.Tensor, cap: float) -> torch.Tensor:
    """``tanh(logits / cap) * cap`` as ``cap * (2 sigmoid(2 logits / cap) - 1)``: on CPUs torch's
    sigmoid is vectorised and its tanh is not (0.7 vs 1.1 ms over 32 x 8192 floats here)."""
    return torch.sigmoid(logits * (2.0 / cap)).mul_(2.0 * cap).sub_(cap)
