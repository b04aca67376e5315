"""The trainer's forward: the fast path's math (``dg_lsp/engine/fastpath.py``), batched, with autograd.

transformers' modules rebuild rotary tables and masks, loop over experts and record outputs
on every call; for a 2M-parameter model on a CPU that overhead is most of a training step.
``LeanForward`` runs the same computation over the *parameters of a transformers*
``DiffusionGemmaForBlockDiffusion``: the optimizer, ``state_dict`` and the saved safetensors
are transformers' own, so a checkpoint trained here loads in transformers and in the server
unchanged. ``tests/test_lean.py`` checks loss and gradients against transformers' modules.

Shapes: B rows, S prompt positions (right-padded), C canvas positions, D hidden, H query
heads, G key/value heads, d head size, V vocabulary.

* ``encode(ids, lens)``: the causal encoder over the prompts; returns each layer's keys and
  values (B, G, S, d), and the final hidden states at chosen positions (for a next-token loss).
* ``decode(canvas, kv, lens, sc_logits)``: the bidirectional decoder over canvases that read
  the prompt's keys/values (a canvas of row b sees prompt positions < lens[b]); returns logits.

Matrix products run under ``torch.autocast`` in bf16 when the caller asks (AMX / AVX512-BF16
CPUs, CUDA); norms, softmax and the loss stay float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dg_lsp.engine.fastpath import inv_freq


def _rms(x: torch.Tensor, w: torch.Tensor | None, eps: float) -> torch.Tensor:
    """RMS norm in float32 (its input may be a bf16 product)."""
    return F.rms_norm(x.float(), (x.shape[-1],), None if w is None else w.float(), eps)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def weighted_ce(z: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum(weight * cross-entropy(z, target)) over logits z (..., V) and targets / weights (...)."""
    ce = F.cross_entropy(z.reshape(-1, z.shape[-1]), target.reshape(-1), reduction="none")
    return (ce * weight.reshape(-1)).sum()


@dataclass
class Encoded:
    keys: list[torch.Tensor]  # per layer (B, G, S, d)
    values: list[torch.Tensor]
    hidden: torch.Tensor | None  # (B, S, D) final-normed hidden states when asked for


class LeanForward:
    """Training forward over ``model``'s parameters (a transformers DiffusionGemmaForBlockDiffusion)."""

    def __init__(self, model):
        self.model = model
        text = model.config.get_text_config()
        self.eps = float(text.rms_norm_eps)
        self.softcap = getattr(model, "final_logit_softcapping", None) or getattr(text, "final_logit_softcapping", None)
        self.top_k = int(text.top_k_experts)
        self.dec = model.model.decoder
        self.enc = model.model.encoder.language_model
        self.layers = list(self.dec.layers)
        self.enc_layers = list(self.enc.layers)
        for name, ly in [("decoder", self.layers[0]), ("encoder", self.enc_layers[0])]:
            if getattr(ly.self_attn, "v_proj", None) is not None:
                raise ValueError(f"lean trainer: {name} layers with a v_proj are not covered")
        self.head_dim = self.layers[0].self_attn.q_norm.weight.shape[0]
        rope = (text.rope_parameters or {}).get("full_attention") or {}
        self.inv_freq = inv_freq(rope, self.head_dim)
        self.hidden = text.hidden_size
        self.embed_scale = float(self.hidden**0.5)

    # ------------------------------------------------------------------ pieces
    @property
    def embed(self) -> torch.Tensor:
        return self.dec.embed_tokens.weight  # (V, D), tied with lm_head

    def rope(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin (B, S, 1, d) for integer positions ``pos`` (B, S)."""
        freqs = pos.float()[..., None] * self.inv_freq.to(pos.device)  # (B, S, d/2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[:, :, None], emb.sin()[:, :, None]

    def _qkv(self, ly, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """q (B, H, S, d), k and v (B, G, S, d) of ``x`` (B, S, D)."""
        at = ly.self_attn
        b, s, _ = x.shape
        d = self.head_dim
        nq = at.q_proj.weight.shape[0] // d
        nk = at.k_proj.weight.shape[0] // d
        w = torch.cat([at.q_proj.weight, at.k_proj.weight], 0)
        h = F.linear(_rms(x, ly.input_layernorm.weight, self.eps), w).view(b, s, nq + nk, d)
        h = _rms(h, None, self.eps)  # (B, S, H+G, d) float32
        norm_w = torch.cat([at.q_norm.weight.expand(nq, d), at.k_norm.weight.expand(nk, d)])
        qk = h * norm_w
        half = d // 2
        rot = torch.cat([-qk[..., half:], qk[..., :half]], dim=-1)
        qk = qk * cos + rot * sin
        v = h[:, :, nq:]  # values: the key projection, normed, no weight, no rotation
        return qk[:, :, :nq].transpose(1, 2), qk[:, :, nq:].transpose(1, 2), v.transpose(1, 2)

    def _attend(self, q, k, v, mask=None, causal=False) -> torch.Tensor:
        """Attention (scale 1: q and k are normed) as plain products and a float32 softmax:
        compiled, it is faster than the fused CPU kernel's backward at these lengths."""
        b, h, s, d = q.shape
        g = k.shape[1]
        qg = q.reshape(b, g, (h // g) * s, d)  # the query heads of one key/value head share its keys
        scores = torch.matmul(qg, k.transpose(-1, -2)).float().view(b, g, h // g, s, -1)  # (B, G, H/G, S, T)
        if causal:
            t = k.shape[2]
            mask = torch.ones(s, t, dtype=torch.bool, device=q.device).tril_(t - s)
        if mask is not None:
            if mask.dim() == 4:  # (B, 1, 1|S, T)
                mask = mask[:, :, None]
            scores = scores.masked_fill(~mask, float("-inf"))
        p = scores.softmax(-1).view(b, g, (h // g) * s, -1)
        return torch.matmul(p.to(v.dtype), v).float().view(b, h, s, d)

    def _ffn(self, ly, x: torch.Tensor, att: torch.Tensor, scalar: torch.Tensor) -> torch.Tensor:
        eps = self.eps
        b, s, _ = x.shape
        att = att.transpose(1, 2).reshape(b, s, -1)
        x = x + _rms(F.linear(att, ly.self_attn.o_proj.weight), ly.post_attention_layernorm.weight, eps)
        r = _rms(x, None, eps)
        mlp, ex, ro = ly.mlp, ly.experts, ly.router
        n_exp, _, inner = ex.down_proj.shape
        i = mlp.gate_proj.weight.shape[0]
        pre1, pre2 = ly.pre_feedforward_layernorm.weight, ly.pre_feedforward_layernorm_2.weight
        gu = ex.gate_up_proj  # (E, 2Ie, D)
        w_in = torch.cat([
            mlp.gate_proj.weight * pre1, mlp.up_proj.weight * pre1,
            gu[:, :inner].reshape(-1, self.hidden) * pre2, gu[:, inner:].reshape(-1, self.hidden) * pre2,
        ], 0)
        proj = F.linear(r, w_in)  # (B, S, 2I + 2 E Ie)
        h1 = F.linear(_gelu(proj[..., :i]) * proj[..., i : 2 * i], mlp.down_proj.weight)
        logits = F.linear(r * (ro.scale * self.hidden**-0.5), ro.proj.weight)  # (B, S, E)
        probs = logits.float().softmax(-1)
        top_w, idx = torch.topk(probs, k=self.top_k, dim=-1)
        top_w = top_w / top_w.sum(-1, keepdim=True) * ro.per_expert_scale[idx]
        coef = torch.zeros_like(probs).scatter_add(-1, idx, top_w)  # (B, S, E)
        n = n_exp * inner
        act = _gelu(proj[..., 2 * i : 2 * i + n]) * proj[..., 2 * i + n : 2 * i + 2 * n]  # (B, S, E Ie)
        act = act * coef.to(act.dtype).repeat_interleave(inner, -1)
        h2 = F.linear(act, ex.down_proj.permute(1, 0, 2).reshape(self.hidden, n))
        x = x + _rms(_rms(h1, ly.post_feedforward_layernorm_1.weight, eps) + _rms(h2, ly.post_feedforward_layernorm_2.weight, eps),
                     ly.post_feedforward_layernorm.weight, eps)
        return x * scalar

    def weighted_ce(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """sum(weight * cross-entropy(logits(x), target)) over (..., D) hidden states."""
        return weighted_ce(self.logits(x), target, weight)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Final norm, tied output projection and soft-capping: (..., D) -> (..., V) float32."""
        z = F.linear(_rms(x, self.dec.norm.weight, self.eps), self.embed).float()
        return torch.tanh(z / self.softcap) * self.softcap if self.softcap else z

    # ------------------------------------------------------------------ encoder / decoder
    def encode(self, ids: torch.Tensor, want_hidden: bool = False) -> Encoded:
        """Causal encoder over right-padded prompts ``ids`` (B, S); pads sit after every real
        token, so the causal mask alone keeps them out of the real positions."""
        b, s = ids.shape
        x = F.embedding(ids, self.embed).float() * self.embed_scale
        pos = torch.arange(s, device=ids.device).expand(b, s)
        cos, sin = self.rope(pos)
        keys, values = [], []
        last = len(self.enc_layers) - 1
        for j, ly in enumerate(self.enc_layers):
            q, k, v = self._qkv(ly, x, cos, sin)
            keys.append(k)
            values.append(v)
            if j == last and not want_hidden:
                break
            x = self._ffn(ly, x, self._attend(q, k, v, causal=True), ly.layer_scalar)
        return Encoded(keys, values, x if want_hidden else None)

    def compile(self) -> "LeanForward":
        """Compile the pieces with torch.compile (inductor: fuses the elementwise work around the
        products; about 45 s the first time a process runs them, on this CPU). Compiling the whole
        encoder and decoder as two graphs steps ~15% faster but took over 6 minutes to compile."""
        for name in ("_qkv", "_attend", "_ffn", "weighted_ce", "logits", "_self_cond"):
            setattr(self, name, torch.compile(getattr(self, name), dynamic=True))
        return self

    def _self_cond(self, x: torch.Tensor, sc_logits: torch.Tensor) -> torch.Tensor:
        sc = self.dec.self_conditioning
        soft = sc_logits.float().softmax(-1)
        soft = F.linear(soft, self.embed.t()) * self.embed_scale  # (N, C, D)
        nm = _rms(soft, sc.pre_norm.weight, self.eps)
        return x + F.linear(_gelu(F.linear(nm, sc.gate_proj.weight)) * F.linear(nm, sc.up_proj.weight), sc.down_proj.weight)

    def decode(self, canvas: torch.Tensor, enc: Encoded, lens: torch.Tensor, sc_logits: torch.Tensor | None = None,
               repeat: int = 1, hidden: bool = False) -> torch.Tensor:
        """Logits (B*repeat, C, V) of canvases (B*repeat, C) (with ``hidden``, the final hidden
        states (B*repeat, C, D) before the output norm); row r reads prompt row r // repeat."""
        n, c = canvas.shape
        eps = self.eps
        if repeat > 1:
            lens = lens.repeat_interleave(repeat)
        x = F.embedding(canvas, self.embed).float() * self.embed_scale
        if sc_logits is not None:
            x = self._self_cond(x, sc_logits)
        x = _rms(x, None, eps)
        s = enc.keys[0].shape[2]
        pos = lens[:, None] + torch.arange(c, device=canvas.device)[None, :]
        cos, sin = self.rope(pos)
        # (N, 1, 1, S + C): the row's real prompt keys, then every canvas key
        see = torch.cat([torch.arange(s, device=canvas.device)[None, :] < lens[:, None],
                         torch.ones(n, c, dtype=torch.bool, device=canvas.device)], 1)[:, None, None, :]
        for j, ly in enumerate(self.layers):
            q, k, v = self._qkv(ly, x, cos, sin)
            pk, pv = enc.keys[j], enc.values[j]
            if repeat > 1:
                pk, pv = pk.repeat_interleave(repeat, 0), pv.repeat_interleave(repeat, 0)
            att = self._attend(q, torch.cat([pk, k], 2), torch.cat([pv, v], 2), mask=see)
            x = self._ffn(ly, x, att, ly.layer_scalar)
        return x if hidden else self.logits(x)
