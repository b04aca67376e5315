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
* ``step``: the bidirectional decoder over a canvas, whose keys/values go into a slot right
  after the prompt in the same buffers (no concatenation), with rotary tables made once
  per request, fused q/k/v, gate/up and expert projections, and few experts run densely.

``tests/test_fastpath.py`` checks encoder caches and decoder logits against transformers on
random models of several shapes. ``unsupported()`` names what this path does not cover
(sliding-window layers, clipped linears, attention biases, other rotary types); the engine
then runs transformers' modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F

# Experts computed densely (every token through every expert) up to this count; above it
# the chosen experts run per expert.
DENSE_EXPERTS_MAX = 8
ROPE_TYPES = ("default", "proportional")
ACTIVATIONS = ("gelu_pytorch_tanh",)


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


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x (1, S, H, d); cos/sin (1, S, 1, d)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


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
    """Weights of one layer, pre-arranged."""

    qkv: torch.Tensor  # (Hq*d + Hkv*d [+ Hkv*d], D): q_proj, k_proj, v_proj when present
    n_q: int
    n_k: int
    has_v: bool
    head_dim: int
    n_heads: int
    n_kv: int
    q_norm: torch.Tensor
    k_norm: torch.Tensor
    o: torch.Tensor
    norms: dict[str, torch.Tensor]
    gate_up: torch.Tensor  # (2*I, D)
    down: torch.Tensor
    router_proj: torch.Tensor  # (E, D)
    router_scale: torch.Tensor  # (D,) times D**-0.5
    per_expert_scale: torch.Tensor
    top_k: int
    experts_gate_up: torch.Tensor  # (E, 2*Ie, D)
    experts_down: torch.Tensor  # (E, D, Ie)
    dense: bool
    enc_scalar: torch.Tensor
    dec_scalar: torch.Tensor


_NORMS = (
    "input_layernorm",
    "post_attention_layernorm",
    "pre_feedforward_layernorm",
    "post_feedforward_layernorm",
    "post_feedforward_layernorm_1",
    "post_feedforward_layernorm_2",
    "pre_feedforward_layernorm_2",
)


class FastModel:
    """Encoder and decoder of a DiffusionGemma checkpoint over a ``KVCache``."""

    def __init__(self, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]):
        reason = unsupported(config)
        if reason:
            raise ValueError(f"fast path does not cover this checkpoint: {reason}")
        text = config["text_config"]
        self.eps = float(text.get("rms_norm_eps", 1e-6))
        self.softcap = text.get("final_logit_softcapping", 30.0)
        self.top_k = int(text["top_k_experts"])
        t = tensors
        dec = "model.decoder."
        self.embed = t[dec + "embed_tokens.weight"]  # (V, D)
        self.vocab_size, self.hidden = self.embed.shape
        self.embed_scale = float(torch.tensor(self.hidden**0.5, dtype=self.embed.dtype))
        self.final_norm = t[dec + "norm.weight"]
        sc = dec + "self_conditioning."
        self.sc_pre = t[sc + "pre_norm.weight"]
        self.sc_gate_up = torch.cat([t[sc + "gate_proj.weight"], t[sc + "up_proj.weight"]], 0)
        self.sc_down = t[sc + "down_proj.weight"]
        self.lm_head = t.get("lm_head.weight", self.embed)
        n_layers = len(text["layer_types"])
        self.layers = [self._layer(t, i) for i in range(n_layers)]
        rope = (text.get("rope_parameters") or {}).get("full_attention") or {}
        self.inv_freq = inv_freq(rope, self.layers[0].head_dim).to(self.embed.device)
        self.dtype, self.device = self.embed.dtype, self.embed.device
        # text parameters, each shared tensor once (buffers such as layer scalars excluded)
        unique = {t.data_ptr(): t for k, t in tensors.items() if not k.endswith("layer_scalar")}
        self.n_parameters = sum(t.numel() for t in unique.values())

    @classmethod
    def from_transformers(cls, model: Any) -> "FastModel":
        state = {k: v.detach() for k, v in model.state_dict().items() if "vision" not in k}
        return cls(model.config.to_dict(), state)

    def _layer(self, t: Mapping[str, torch.Tensor], i: int) -> _Layer:
        p = f"model.decoder.layers.{i}."
        parts = [t[p + "self_attn.q_proj.weight"], t[p + "self_attn.k_proj.weight"]]
        has_v = p + "self_attn.v_proj.weight" in t
        if has_v:
            parts.append(t[p + "self_attn.v_proj.weight"])
        d = t[p + "self_attn.q_norm.weight"].shape[0]
        hidden = parts[0].shape[1]
        experts_gu = t[p + "experts.gate_up_proj"]
        one = torch.ones(1, dtype=parts[0].dtype, device=parts[0].device)
        return _Layer(
            qkv=torch.cat(parts, 0),
            n_q=parts[0].shape[0],
            n_k=parts[1].shape[0],
            has_v=has_v,
            head_dim=d,
            n_heads=parts[0].shape[0] // d,
            n_kv=parts[1].shape[0] // d,
            q_norm=t[p + "self_attn.q_norm.weight"],
            k_norm=t[p + "self_attn.k_norm.weight"],
            o=t[p + "self_attn.o_proj.weight"],
            norms={name: t[p + name + ".weight"] for name in _NORMS},
            gate_up=torch.cat([t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"]], 0),
            down=t[p + "mlp.down_proj.weight"],
            router_proj=t[p + "router.proj.weight"],
            router_scale=t[p + "router.scale"] * hidden**-0.5,
            per_expert_scale=t[p + "router.per_expert_scale"],
            top_k=self.top_k,
            experts_gate_up=experts_gu,
            experts_down=t[p + "experts.down_proj"],
            dense=experts_gu.shape[0] <= DENSE_EXPERTS_MAX,
            enc_scalar=t.get(f"model.encoder.language_model.layers.{i}.layer_scalar", one),
            dec_scalar=t.get(p + "layer_scalar", one),
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
            h = _rms(x, ly.norms["input_layernorm"], self.eps)
            q, k, v = self._qkv(ly, h, cos, sin, need_q=i < last)
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

    # ------------------------------------------------------------------ decoder
    def step_fn(self, cache: KVCache, length: int) -> "FastStep":
        cache.reserve(cache.length + length)
        return FastStep(self, cache, length)

    def _qkv(self, ly: _Layer, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, need_q: bool = True):
        b, s, _ = h.shape
        d = ly.head_dim
        proj = F.linear(h, ly.qkv)
        k_raw = proj[..., ly.n_q : ly.n_q + ly.n_k].view(b, s, ly.n_kv, d)
        v_raw = proj[..., ly.n_q + ly.n_k :].view(b, s, ly.n_kv, d) if ly.has_v else k_raw
        k = _rotate(_rms(k_raw, ly.k_norm, self.eps), cos, sin).transpose(1, 2)
        v = _rms(v_raw, None, self.eps).transpose(1, 2)
        q = None
        if need_q:
            q = proj[..., : ly.n_q].view(b, s, ly.n_heads, d)
            q = _rotate(_rms(q, ly.q_norm, self.eps), cos, sin).transpose(1, 2)
        return q, k, v

    def _after_attention(self, ly: _Layer, x: torch.Tensor, att: torch.Tensor, scalar: torch.Tensor) -> torch.Tensor:
        """Output projection, the dense MLP and the experts of one layer (shared by both sides)."""
        eps, n = self.eps, ly.norms
        b, s, _ = x.shape
        att = att.transpose(1, 2).reshape(b, s, -1)
        x = x + _rms(F.linear(att, ly.o), n["post_attention_layernorm"], eps)
        residual = x
        gate, up = F.linear(_rms(x, n["pre_feedforward_layernorm"], eps), ly.gate_up).chunk(2, dim=-1)
        h1 = _rms(F.linear(_gelu(gate) * up, ly.down), n["post_feedforward_layernorm_1"], eps)
        flat = residual.reshape(-1, residual.shape[-1])  # (T, D)
        weights, index = self._route(ly, flat)
        h2 = self._experts(ly, _rms(flat, n["pre_feedforward_layernorm_2"], eps), weights, index)
        h2 = _rms(h2.reshape(residual.shape), n["post_feedforward_layernorm_2"], eps)
        x = residual + _rms(h1 + h2, n["post_feedforward_layernorm"], eps)
        return x * scalar

    def _route(self, ly: _Layer, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = _rms(flat, None, self.eps) * ly.router_scale
        probs = F.linear(h, ly.router_proj).softmax(dim=-1, dtype=torch.float32)  # (T, E)
        w, idx = torch.topk(probs, k=ly.top_k, dim=-1)
        w = w / w.sum(dim=-1, keepdim=True)
        return w * ly.per_expert_scale[idx], idx

    def _experts(self, ly: _Layer, h: torch.Tensor, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        e, _, inner = ly.experts_down.shape
        t = h.shape[0]
        coef = torch.zeros(t, e, dtype=w.dtype, device=h.device).scatter_add_(1, idx, w).to(h.dtype)  # (T, E)
        if ly.dense:
            gu = F.linear(h, ly.experts_gate_up.reshape(-1, h.shape[-1])).view(t, e, 2, inner)  # (T, E, 2, Ie)
            act = _gelu(gu[:, :, 0]) * gu[:, :, 1]  # (T, E, Ie)
            out = torch.einsum("tei,edi->ted", act, ly.experts_down)  # (T, E, D)
            return (out * coef.unsqueeze(-1)).sum(1)
        out = torch.zeros_like(h)
        for ex in torch.unique(idx).tolist():
            rows = (idx == ex).any(dim=-1).nonzero().squeeze(-1)
            gate, up = F.linear(h[rows], ly.experts_gate_up[ex]).chunk(2, dim=-1)
            y = F.linear(_gelu(gate) * up, ly.experts_down[ex])
            out.index_add_(0, rows, y * coef[rows, ex, None])
        return out


class FastStep:
    """``step(canvas, self_cond_logits) -> logits`` for canvases of one length after the prompt."""

    def __init__(self, fm: FastModel, cache: KVCache, length: int):
        self.fm, self.cache, self.length = fm, cache, length
        self.start = cache.length
        self.cos, self.sin = fm.rope(self.start, length)

    @torch.inference_mode()
    def __call__(self, canvas: torch.Tensor, self_cond: torch.Tensor | None) -> torch.Tensor:
        fm, cache = self.fm, self.cache
        if cache.length != self.start:
            raise RuntimeError("the prompt cache changed under a running denoising loop")
        eps = fm.eps
        x = F.embedding(canvas, fm.embed) * fm.embed_scale  # (1, L, D)
        if self_cond is not None:
            probs = self_cond.softmax(dim=-1, dtype=torch.float32).to(fm.dtype)  # (1, L, V)
            soft = (probs @ fm.embed) * fm.embed_scale  # (1, L, D)
            gate, up = F.linear(_rms(soft, fm.sc_pre, eps), fm.sc_gate_up).chunk(2, dim=-1)
            x = x + F.linear(_gelu(gate) * up, fm.sc_down)
        x = _rms(x, None, eps)
        p, n = self.start, canvas.shape[1]
        for i, ly in enumerate(fm.layers):
            h = _rms(x, ly.norms["input_layernorm"], eps)
            q, k, v = fm._qkv(ly, h, self.cos, self.sin)
            kb, vb = cache.keys[i], cache.values[i]
            kb[:, :, p : p + n] = k
            vb[:, :, p : p + n] = v
            att = F.scaled_dot_product_attention(
                q, kb[:, :, : p + n], vb[:, :, : p + n], scale=1.0, enable_gqa=ly.n_heads != ly.n_kv
            )
            x = fm._after_attention(ly, x, att, ly.dec_scalar)
        x = _rms(x, fm.final_norm, eps)
        logits = F.linear(x, fm.lm_head).float()  # (1, L, V)
        if fm.softcap:
            logits = softcap(logits, float(fm.softcap))
        return logits


def softcap(logits: torch.Tensor, cap: float) -> torch.Tensor:
    """``tanh(logits / cap) * cap`` as ``cap * (2 sigmoid(2 logits / cap) - 1)``: on CPUs torch's
    sigmoid is vectorised and its tanh is not (0.7 vs 1.1 ms over 32 x 8192 floats here)."""
    return torch.sigmoid(logits * (2.0 / cap)).mul_(2.0 * cap).sub_(cap)
