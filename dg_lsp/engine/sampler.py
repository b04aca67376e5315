"""Our denoising loop: DiffusionGemma's entropy-bounded sampler, step by step.

Per step (``r`` = steps remaining, from ``max_steps`` down to 1):

1. logits = denoiser(canvas, self-conditioning logits)              # (1, L, V)
2. constraints mask impossible tokens (control tokens; ``logits_hook``: infeasible closers,
   EOS inside an open bracket or string -- see ``dg_lsp.engine.constraints``)
3. temperature t(r) from t_max to t_min; sample a token per position
4. accept the lowest-entropy positions while sum(entropy) - max(entropy) <= entropy_bound;
   frozen positions (fixed text between holes) are always accepted; ``accept_hook`` may
   reject sampled tokens that are infeasible after the accepted ones before them
5. re-noise the rest: uniformly random tokens, or ``<mask>`` for a checkpoint trained with
   absorbing noise (``canvas_init: "mask"`` in its generation_config.json)
6. stop when the argmax canvas was stable for ``stability_threshold`` steps and the mean
   entropy is under ``confidence_threshold``; check cancellation before each step

The result is the argmax canvas of the last step, as in transformers' ``generate()``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from dg_lsp.engine.errors import Cancelled
from dg_lsp.engine.schedule import temperature

NEG_INF = float("-inf")


@dataclass
class SamplerSettings:
    max_steps: int = 8
    entropy_bound: float = 1.0
    t_max: float = 0.8
    t_min: float = 0.2
    stability_threshold: int = 1
    confidence_threshold: float = 0.05
    # what the next step is self-conditioned on: "scaled", the temperature-scaled logits (as
    # transformers' generate() does, what DiffusionGemma checkpoints expect), or "raw", the
    # logits at temperature 1 (what model/train.py trains with). On the embedded model both
    # score the same (HumanEval single-line, 400 tasks: pass@1 0.3%, syntax 20.7% each;
    # ``python -m model.eval --sampler self_conditioning=raw``), so transformers' choice stays.
    self_conditioning: str = "scaled"
    # what a canvas starts from and rejected positions return to: "uniform" (random tokens, as
    # DiffusionGemma is trained) or "mask" (the <mask> token; checkpoints trained with absorbing noise)
    canvas_init: str = "uniform"
    # what an infill's first canvas starts from: "none", the noise above; "causal", the causal
    # encoder's own greedy draft (``FastModel.draft``; fast path only, a checkpoint whose encoder
    # was trained with a next-token loss), EOS-padded after its end, with the ``draft_strength``
    # share of its positions (least confident first) replaced by the noise. draft_strength 1.0
    # still drafts (the same latency) but starts from exactly the noise canvas of "none".
    # "answer": the infill's middle is the draft itself, no denoising (``Engine.infill``), cut
    # before the first token at which the running product of its tokens' probabilities falls
    # under ``draft_cut`` (what the model is unsure of is left to the user). A checkpoint whose
    # canvas denoiser has learned less than its causal encoder (the embedded model: held-out
    # useful 7% vs 0.5%, docs/training.md) serves this way; rewrite and fill-holes still denoise.
    # A sure part shorter than ``dg_lsp.confidence.MIN_SHOWN_CHARS`` (4) characters (``"``, ``(``: not worth a Tab)
    # is extended to where the running product falls under ``draft_short_cut`` instead (held-out
    # useful 7.3% -> 9.5%, docs/training.md section 6); equal to ``draft_cut``: never extended.
    draft: str = "none"
    draft_strength: float = 0.5
    draft_cut: float = 0.1
    draft_short_cut: float = 0.01

    @classmethod
    def from_generation_config(cls, gen: dict[str, Any]) -> "SamplerSettings":
        s = cls()
        sampler = gen.get("sampler_config") or {}
        if gen.get("max_denoising_steps"):
            s.max_steps = int(gen["max_denoising_steps"])
        if isinstance(sampler, dict) and sampler.get("entropy_bound"):
            s.entropy_bound = float(sampler["entropy_bound"])
        for key in ("t_max", "t_min", "confidence_threshold"):
            if gen.get(key) is not None:
                setattr(s, key, float(gen[key]))
        if gen.get("stability_threshold") is not None:
            s.stability_threshold = int(gen["stability_threshold"])
        if gen.get("canvas_init") in ("uniform", "mask"):
            s.canvas_init = str(gen["canvas_init"])
        if gen.get("draft") in ("none", "causal", "answer"):
            s.draft = str(gen["draft"])
        for key in ("draft_strength", "draft_cut", "draft_short_cut"):
            v = gen.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0:
                setattr(s, key, float(v))
        return s


# exp() of float32 below about -87 underflows, and torch's vectorised exp falls back to a
# slow path there (10-20x over 32 x 8192 logits at low temperature, measured on this CPU)
LOG_FLOOR = -87.0


def log_softmax_clamped(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log-probabilities and probabilities of logits ``z`` (..., V), ``-inf`` allowed.

    Differences to the maximum are clamped at ``LOG_FLOOR`` before ``exp``: a token more
    than e^87 times less likely than the best one gets probability ~1e-38 instead of a
    smaller number or 0 (``sample_categorical`` never draws those), and every value stays
    finite, so the entropy needs no nan handling.
    """
    d = (z - z.amax(dim=-1, keepdim=True)).clamp_(min=LOG_FLOOR)
    probs = d.exp()
    total = probs.sum(dim=-1, keepdim=True)
    probs.div_(total)
    return d.sub_(total.log_()), probs


def sample_categorical(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw per row of ``probs`` (..., V), by inverse CDF: one uniform number per row.

    Same distribution as ``torch.multinomial(probs, 1)``, at a fraction of its cost over a
    large vocabulary (one cumulative sum instead of multinomial's per-row set-up).
    """
    flat = probs.reshape(-1, probs.shape[-1])  # (N, V)
    cdf = flat.cumsum(dim=-1)
    u = torch.rand(flat.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype)
    # at least 1e-30 of the mass: clamped (~1e-38) entries before the first real one are never drawn
    u = u.clamp_(min=1e-30) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=flat.shape[-1] - 1).squeeze(-1)


def first_argmax(z: torch.Tensor) -> torch.Tensor:
    """``z.argmax(-1)`` (first maximum), by blocks of 64: torch's CPU argmax over a long last
    dimension runs scalar (about 220 us over 16 x 8,192 here), its max-reduction vectorised."""
    v = z.shape[-1]
    if v % 64 or v < 1024:
        return z.argmax(dim=-1)
    blocks = z.view(*z.shape[:-1], v // 64, 64)
    best = blocks.amax(dim=-1).argmax(dim=-1)  # (...,) first block holding the maximum
    inner = blocks.gather(-2, best[..., None, None].expand(*best.shape, 1, 64)).squeeze(-2).argmax(dim=-1)
    return best * 64 + inner


@dataclass
class SelfCond:
    """What the next step is conditioned on: the logits (1, L, V) whose softmax it is, or,
    from the sampler, that softmax restricted to the vocabulary blocks holding its mass
    (``blocks``: row, block index and (K, BLOCK) probabilities); ``logits`` then builds the
    full log-probabilities only for a step that asks for them (transformers' decoder)."""

    dense: torch.Tensor | None = None
    blocks: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    make_dense: Callable[[], torch.Tensor] | None = None
    length: int = 0  # canvas positions (L)

    @property
    def logits(self) -> torch.Tensor:
        if self.dense is None:
            assert self.make_dense is not None
            self.dense = self.make_dense()
        return self.dense


BLOCK = 64  # vocabulary block of the restricted sampler
# The restricted sampler drops tokens whose probability is under e^-24 (4e-11) of the best
# one's: at most 3e-7 of the mass for an 8,192-token vocabulary, under float32's rounding of 1.
CUTOFF = 24.0


@dataclass
class Draw:
    sampled: torch.Tensor  # (1, L) one draw per position
    top: torch.Tensor  # (1, L) argmax
    entropy: torch.Tensor  # (1, L)
    self_cond: SelfCond  # the tempered distribution, for the next step


def draw(z: torch.Tensor, temperature: float, generator: torch.Generator) -> Draw:
    """Sample softmax(z / temperature) (1, L, V) once per position, with its argmax and entropy.

    Equal, up to float rounding, to ``log_softmax_clamped`` + ``sample_categorical`` over the
    whole vocabulary (``draw_dense``), without a pass over it per operation: only blocks of
    ``BLOCK`` tokens whose best logit is within ``CUTOFF * temperature`` of the row's maximum
    are looked at. Every other token is less than e^-24 as likely as the best one; all of
    them together hold under 1e-6 of the mass for vocabularies up to 26,000 tokens. At the
    sampler's temperatures (0.1 to 0.01 for the embedded model) that leaves a few blocks per
    position, and the work no longer grows with the vocabulary.
    """
    _, n, v = z.shape
    if v % BLOCK or v < 16 * BLOCK:
        return draw_dense(z, temperature, generator)
    inv_t = 1.0 / temperature
    zb = z.view(n, v // BLOCK, BLOCK)
    bmax = zb.amax(dim=-1)  # (L, nb)
    m = bmax.amax(dim=-1)  # (L,)
    rows, blk = (bmax > (m - CUTOFF * temperature).unsqueeze(-1)).nonzero(as_tuple=True)  # (K,)
    if rows.numel() > bmax.numel() // 4:  # a flat distribution: the full pass is cheaper
        return draw_dense(z, temperature, generator)
    d = ((zb[rows, blk] - m[rows, None]) * inv_t).clamp_(min=LOG_FLOOR)  # (K, B) log-weights, max 0
    e = d.exp()
    total = torch.zeros(n, dtype=e.dtype, device=z.device).index_add_(0, rows, e.sum(dim=-1))  # (L,)
    probs = e / total[rows, None]
    ed = torch.zeros_like(total).index_add_(0, rows, (e * d).sum(dim=-1))
    entropy = (total.log() - ed / total).unsqueeze(0)  # -sum p log p, p = e / total
    # inverse CDF over the candidates, row after row in vocabulary order: one uniform per row
    cdf = e.reshape(-1).double().cumsum(dim=0)
    row_end = total.double().cumsum(dim=0)
    u = torch.rand(n, 1, generator=generator, device=z.device, dtype=torch.float32)
    target = row_end - total.double() + u.squeeze(-1).double().clamp(min=1e-30) * total.double()
    first = torch.searchsorted(rows, torch.arange(n, device=z.device)) * BLOCK  # each row's first entry
    last = torch.searchsorted(rows, torch.arange(n, device=z.device), right=True) * BLOCK - 1
    at = torch.minimum(torch.maximum(torch.searchsorted(cdf, target, right=True), first), last)
    sampled = (blk[at // BLOCK] * BLOCK + at % BLOCK).unsqueeze(0)
    top = first_argmax(z)

    def dense() -> torch.Tensor:
        zs = z * inv_t
        return log_softmax_clamped(zs)[0]

    return Draw(sampled, top, entropy, SelfCond(blocks=(rows, blk, probs), make_dense=dense, length=n))


def draw_dense(z: torch.Tensor, temperature: float, generator: torch.Generator) -> Draw:
    """``draw`` over the whole vocabulary (any size; the reference for the restricted one)."""
    zs = z * (1.0 / temperature)
    logp, probs = log_softmax_clamped(zs)  # (1, L, V) each
    sampled = sample_categorical(probs, generator).view(z.shape[:-1])
    entropy = -torch.linalg.vecdot(probs, logp)  # (1, L)
    # softmax(logp) == softmax(zs): the same signal as the scaled logits
    return Draw(sampled, first_argmax(zs), entropy, SelfCond(dense=logp))


# (canvas (1, L) long, self-conditioning or None) -> logits (1, L, V) float32
def noise(shape: tuple[int, ...], vocab_size: int, generator: torch.Generator, device: Any,
          mask_id: int | None = None) -> torch.Tensor:
    """Noise tokens: uniformly random over the vocabulary, or all ``mask_id`` (absorbing noise)."""
    if mask_id is not None:
        return torch.full(shape, mask_id, dtype=torch.long, device=device)
    return torch.randint(0, vocab_size, shape, generator=generator, device=device)


DenoiseFn = Callable[[torch.Tensor, "SelfCond | None"], torch.Tensor]
# (logits (1, L, V), argmax-so-far canvas (1, L)) -> None, edits logits in place
LogitsHook = Callable[[torch.Tensor, torch.Tensor], None]
# (sampled canvas (1, L), accepted positions (1, L) bool) -> accepted positions; may only un-accept
AcceptHook = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class DenoiseResult:
    canvas: torch.Tensor  # (K, L) argmax canvases of the last step
    steps: int
    step_ms: list[float] = field(default_factory=list)
    stopped_early: bool = False
    # (K, L) log-probability, at temperature 1 after constraints, of each final token at the last step
    token_logprobs: torch.Tensor | None = None
    first_logprobs: torch.Tensor | None = None  # the same under the first step's logits


def denoise(
    step_fn: DenoiseFn,
    canvas: torch.Tensor,
    settings: SamplerSettings,
    *,
    vocab_size: int,
    generator: torch.Generator,
    frozen: torch.Tensor | None = None,
    banned: torch.Tensor | None = None,
    logits_hook: LogitsHook | None = None,
    accept_hook: AcceptHook | None = None,
    should_stop: Callable[[], bool] | None = None,
    mask_id: int | None = None,
    row_temperature: Sequence[float] | None = None,
    lead_rows: int | None = None,
) -> DenoiseResult:
    """Denoise ``canvas`` (K, L): K canvases of the same prompt (alternatives) in one forward
    pass per step; ``step_fn`` takes and returns K rows. ``frozen`` (K, L) bool marks positions
    kept as given. ``mask_id``: rejected positions become this token instead of uniform noise.
    ``row_temperature`` (K factors): row k samples at ``factor_k`` times the schedule's
    temperature (alternatives drawn hotter than the first row); acceptance is per row, the
    early stop needs every row stable, or the first ``lead_rows`` (the others end where they are).

    ``logits_hook`` edits the logits before sampling (constraints mask infeasible tokens);
    ``accept_hook`` may reject accepted positions (they are re-noised). Without hooks the
    numerics are exactly those of the plain sampler.
    """
    device = canvas.device
    canvas = canvas.clone()
    if frozen is None:
        frozen = torch.zeros_like(canvas, dtype=torch.bool)
    fixed_tokens = canvas.clone()
    max_steps = max(1, settings.max_steps)
    history: list[torch.Tensor] = []
    argmax = canvas.clone()
    self_cond: SelfCond | None = None
    result = DenoiseResult(canvas=argmax, steps=0)
    rows, length = canvas.shape
    scale = None  # (1, K*L, 1) inverse temperature factors
    if row_temperature is not None and rows > 1 and any(f != 1.0 for f in row_temperature):
        inv = torch.tensor([1.0 / max(float(f), 1e-3) for f in row_temperature], device=device)
        scale = inv.repeat_interleave(length).view(1, rows * length, 1)
    logits = first_lp = None
    for remaining in range(max_steps, 0, -1):
        if should_stop is not None and should_stop():
            raise Cancelled("cancelled between denoising steps")
        t0 = time.perf_counter()
        logits = step_fn(canvas, self_cond)  # (K, L, V) float32
        if banned is not None:
            logits[..., banned] = NEG_INF
        if logits_hook is not None:
            logits_hook(logits, argmax)
        if first_lp is None:  # how sure the model was from the starting canvas (the confidence signal)
            first_lp = logits.float().log_softmax(-1)
        d = _draw_rows(logits, temperature(remaining, max_steps, settings.t_min, settings.t_max), generator, scale)
        sampled = d.sampled
        new_argmax = torch.where(frozen, fixed_tokens, d.top)
        entropy = torch.where(frozen, torch.zeros_like(d.entropy), d.entropy)
        # entropy-bounded acceptance (frozen positions have zero entropy: always accepted)
        sorted_e, order = torch.sort(entropy, dim=-1)
        keep_sorted = (torch.cumsum(sorted_e, dim=-1) - sorted_e) <= settings.entropy_bound
        accept = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted) | frozen
        sampled = torch.where(frozen, fixed_tokens, sampled)
        if accept_hook is not None:
            accept = accept_hook(sampled, accept) | frozen
        canvas = torch.where(accept, sampled, noise(tuple(canvas.shape), vocab_size, generator, device, mask_id))
        self_cond = SelfCond(dense=logits) if settings.self_conditioning == "raw" else d.self_cond
        result.steps += 1
        result.step_ms.append((time.perf_counter() - t0) * 1000)
        # stable-and-confident early stop
        history.append(new_argmax)
        argmax = new_argmax
        n = settings.stability_threshold
        lead = slice(0, lead_rows)
        stable = n == 0 or (len(history) > n and all(torch.equal(h[lead], new_argmax[lead]) for h in history[-n - 1 : -1]))
        free = ~frozen
        if lead_rows is not None:
            free[lead_rows:] = False
        mean_entropy = entropy[free].mean().item() if bool(free.any()) else 0.0
        if stable and mean_entropy < settings.confidence_threshold:
            result.stopped_early = remaining > 1
            break
    result.canvas = argmax
    if logits is not None:  # how sure the first and the last step were of each final token (temperature 1)
        result.token_logprobs = logits.float().log_softmax(-1).gather(-1, argmax[..., None]).squeeze(-1)
        assert first_lp is not None
        result.first_logprobs = first_lp.gather(-1, argmax[..., None]).squeeze(-1)
    return result


def _draw_rows(logits: torch.Tensor, temp: float, generator: torch.Generator,
               scale: torch.Tensor | None) -> Draw:
    """``draw`` over K canvases (K, L, V): their positions as one row (the restricted sampler
    works per position), results back as (K, L); ``scale`` divides each row's temperature."""
    k, n, v = logits.shape
    if k == 1 and scale is None:
        return draw(logits, temp, generator)
    z = logits.reshape(1, k * n, v)
    if scale is not None:
        z = z * scale
    d = draw(z, temp, generator)
    return Draw(d.sampled.view(k, n), d.top.view(k, n), d.entropy.view(k, n), d.self_cond)
