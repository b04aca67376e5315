"""The engine: prompt cache + denoising over a DiffusionGemma checkpoint.

Three operations, all on one canvas between a prefix and a suffix:

* ``infill``   -- a middle of unknown length: noise canvas, EOS ends the middle; a second
                  canvas continues when the first one has no EOS and more tokens are allowed.
                  With ``draft: "causal"`` the first canvas starts from the causal encoder's
                  greedy draft, partly re-noised (``_draft_canvas``); with ``draft: "answer"``
                  the draft, cut where the model stops being sure, is the middle (``cut_draft``).
* ``rewrite``  -- the selected text, changed only where the model doubts it and a change is much
                  more likely (``dg_lsp.engine.revise``: canvas pseudo-likelihood, causal scoring).
* ``fill_holes`` -- fixed text between holes is frozen on the canvas, the holes are noise:
                  every hole is filled in one pass, each seeing all the others; or, for a
                  checkpoint whose causal draft answers, each hole drafted (``holes``).

One worker thread owns an Engine; it is not thread-safe.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from dg_lsp.confidence import MIN_SHOWN_CHARS, model_confidence
from dg_lsp.engine import fastpath, tokencache
from dg_lsp.engine.errors import Cancelled, EngineError
from dg_lsp.engine.loader import Loaded, load_checkpoint
from dg_lsp.engine.prompt import Layout, Prompt, build_prompt, choose_layout, encode_text
from dg_lsp.engine.sampler import DenoiseFn, DenoiseResult, LogitsHook, SamplerSettings, SelfCond, denoise
from dg_lsp.engine.sampler import noise as sampler_noise


@dataclass
class InfillResult:
    text: str  # the middle, up to (not including) EOS, before post-processing
    token_ids: list[int]
    steps: int
    canvases: int
    hit_eos: bool
    timings: dict[str, float] = field(default_factory=dict)  # ms per phase
    cached_tokens: int = 0  # prompt tokens reused from the cache
    prompt_tokens: int = 0
    # how sure the denoising was (``dg_lsp.confidence.model_confidence`` of ``signals``), 0..1
    confidence: float = 0.0
    signals: "Signals | None" = None
    # other candidates of the same denoising (``candidates`` > 1), in canvas order
    alternatives: list["InfillResult"] = field(default_factory=list)
    # the middle is a start: the model stopped where it was unsure (``draft: "answer"``), so it
    # may leave a statement or bracket open for the user to finish (``dg_lsp.postprocess.finish``)
    partial: bool = False
    # the causal draft answered (``draft: "answer"``): no denoising; its candidates are cuts of
    # one draft in the engine's order of preference, not samples to rank by confidence
    drafted: bool = False
    # what the memories (``dg_lsp.memory``) said of the kept tokens: tokens, supplied (more
    # probability from the memories than from the model), agreed, mean_length; {} without memory
    memory: dict = field(default_factory=dict)


log = logging.getLogger(__name__)

# Alternatives (``candidates`` > 1) sample at this multiple of the first canvas's temperature:
# at the embedded model's near-greedy schedule the same canvas would come out each time.
ALT_TEMPERATURE = 2.0


def _logprob_sums(res: Any, row: int, n: int) -> tuple[float, float, int]:
    """Sums of the first and the last step's log-probabilities of a row's first ``n`` final
    tokens, and their count."""
    last, first = getattr(res, "token_logprobs", None), getattr(res, "first_logprobs", None)
    if last is None or first is None or n <= 0:
        return 0.0, 0.0, 0
    n = min(n, last.shape[1])
    return float(first[row, :n].sum()), float(last[row, :n].sum()), n


@dataclass
class Signals:
    """What the denoising says of how sure it was of a middle (``dg_lsp.confidence`` scores it)."""

    first: float = 0.0  # mean log-probability of the final tokens (and EOS) under the first step
    last: float = 0.0  # the same under the last step
    tokens: int = 0  # tokens those means are over
    steps: int = 0  # denoising steps taken
    max_steps: int = 0  # steps allowed
    hit_eos: bool = False

    def add(self, first_sum: float, last_sum: float, n: int) -> None:
        total = self.tokens + n
        if total:
            self.first = (self.first * self.tokens + first_sum) / total
            self.last = (self.last * self.tokens + last_sum) / total
        self.tokens = total


def quiet_transformers() -> None:
    """No progress bars or info chatter from transformers (its logs go to stderr anyway)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # an older or stripped transformers: nothing to quieten
        pass


# Below this hidden size a denoising step is a few hundred small tensor operations whose
# cost is dispatch, not arithmetic: a second thread only adds synchronisation (a 128-wide
# step: ~6 ms on one thread, ~14 ms on two, on the 2-core test machine; docs/performance.md).
SMALL_HIDDEN = 512


def auto_threads(hidden_size: int) -> int:
    """Torch CPU threads for a checkpoint of this width when the user did not choose."""
    if 0 < hidden_size < SMALL_HIDDEN:
        return 1
    return max(1, os.cpu_count() or 1)


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def fastpath_enabled() -> bool:
    """The fast path runs unless ``DG_LSP_FASTPATH=0`` (then transformers runs every forward)."""
    return os.environ.get("DG_LSP_FASTPATH", "1") != "0"


def keep_freed_memory() -> None:
    """Keep freed blocks in the heap (Linux with glibc; elsewhere a no-op).

    glibc hands blocks over 128 KB back to the system (mmap) and trims the heap top, so each
    denoising step's vocabulary-sized tensors (16 x 8,192 floats: 512 KB) fault their pages
    in again. Raising both thresholds keeps them: a canvas-16 step of the embedded model
    took 10.4 instead of 11.4 ms here (docs/performance.md). Freed memory up to the trim
    threshold stays in the process (counted in its RSS).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: blocks under 32 MB come from the heap
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD: trim the heap top only past 128 MB free
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        pass


_JUNK = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# Prompt tokens encoded between two cancellation checks (about 15 ms for the embedded model).
ENCODE_CHUNK = 256


class PromptCache:
    """Keys/values of the last prompt; a new prompt re-encodes only what changed.

    With the suffix-first FIM layout, typing at the cursor appends to the prompt, so
    the longest common token prefix with the previous prompt is usually almost all of it.
    The keys/values live in a ``fastpath.KVCache`` when the fast path runs the model, else
    in a transformers ``DynamicCache``.
    """

    def __init__(self, model: Any, fast: "fastpath.FastModel | None" = None):
        self.model = model
        self.fast = fast
        self.ids: list[int] = []
        self.kv: Any = None
        self.hits = 0
        self.misses = 0

    def _fresh(self) -> Any:
        if self.fast is not None:
            return self.fast.new_cache()
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config.get_text_config(decoder=True))

    def prepare(
        self, ids: Sequence[int], device: str, should_stop: Callable[[], bool] | None = None
    ) -> tuple[Any, int]:
        """Make the cache hold exactly ``ids``; returns (cache, number of reused tokens).

        New tokens are encoded ``ENCODE_CHUNK`` at a time with ``should_stop`` checked in
        between (raising Cancelled): what was encoded stays cached for the next prompt."""
        common = 0
        if self.kv is not None:
            limit = min(len(self.ids), len(ids))
            while common < limit and self.ids[common] == ids[common]:
                common += 1
        if self.kv is not None and common < len(self.ids):
            try:
                if self.fast is not None:
                    self.kv.crop(common)
                else:
                    self.kv.crop(-(len(self.ids) - common))
            except Exception:  # sliding-window layers past their window cannot roll back
                self.kv, common = None, 0
        if self.kv is None:
            self.kv, common = self._fresh(), 0
        self.ids = list(ids[:common])
        if common > 0:
            self.hits += 1
        else:
            self.misses += 1
        for a in range(common, len(ids), ENCODE_CHUNK):
            if a > common and should_stop is not None and should_stop():
                raise Cancelled("cancelled while encoding the prompt")
            self.extend(ids[a : a + ENCODE_CHUNK], device)
        return self.kv, common

    def extend(self, ids: Sequence[int], device: str) -> None:
        """Encode ``ids`` after what the cache holds."""
        if not ids:
            return
        start = len(self.ids)
        try:
            if self.fast is not None:
                self.fast.encode([int(i) for i in ids], self.kv)
            else:
                input_ids = torch.tensor([list(ids)], dtype=torch.long, device=device)
                pos = torch.arange(start, start + len(ids), device=device).unsqueeze(0)
                self.model.model.encoder(input_ids=input_ids, past_key_values=self.kv, position_ids=pos, use_cache=True)
        except Exception:
            self.kv, self.ids = None, []
            raise
        self.ids.extend(int(i) for i in ids)

    def reset(self) -> None:
        self.ids, self.kv = [], None


def cut_draft(ids: Sequence[int], probs: Sequence[float], cut: float,
              eos_ids: Sequence[int], token_floor: float = 0.0) -> tuple[list[int], str, list[float]]:
    """A causal draft (tokens, each one's probability) as a middle: (tokens kept, why it ends,
    the probabilities its confidence is scored on).

    Kept: the tokens before EOS (why: ``"eos"``), or before the first token at which the running
    product of the probabilities falls under ``cut`` (``"unsure"``: the middle is a start, what
    follows is left to the user), else all of them (``""``: the budget ran out). Scored: the
    kept tokens' probabilities, and EOS's where EOS ended it. ``token_floor``: also cut before a
    token whose own probability is under it (a memory's mixed probabilities: docs/memory.md)."""
    eos = set(int(i) for i in eos_ids)
    acc = 1.0
    for i, (t, p) in enumerate(zip(ids, probs)):
        acc *= p
        if int(t) in eos:
            return list(ids[:i]), "eos", list(probs[: i + 1])
        if acc < cut or p < token_floor:
            return list(ids[:i]), "unsure", list(probs[:i])
    return list(ids), "", list(probs)


class Engine:
    """Load once, then call ``infill`` / ``rewrite`` / ``fill_holes`` from one thread."""

    def __init__(self, loaded: Loaded, *, layout: str = "auto", threads: int = 0, fast: bool = True):
        self.loaded = loaded
        self.model = loaded.model  # None when loaded natively (fast path only)
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.layout: Layout = choose_layout(self.tokenizer, layout)
        self.settings = SamplerSettings.from_generation_config(loaded.generation)
        config = getattr(loaded, "config", None) or json.loads(loaded.files.config.read_text(encoding="utf-8"))
        text_cfg = config.get("text_config") or {}
        self.vocab_size = int(text_cfg["vocab_size"])
        self.canvas_length = int(config.get("canvas_length") or 32)
        # the prompt budget (prefix + suffix tokens) the checkpoint was trained with, if it says
        self.context_tokens: int | None = _positive_int(config.get("context_tokens"))
        # the cross-file snippet budget of its training prompts (0: trained without them)
        self.cross_file_tokens: int = _positive_int(config.get("cross_file_tokens")) or 0
        self.softcap = text_cfg.get("final_logit_softcapping", 30.0)
        self.eos_ids = self._eos_ids()
        self.banned = self._banned_ids()
        # absorbing-noise checkpoints start from, and re-mask to, <mask> (None: uniform noise)
        self.mask_id: int | None = None
        if self.settings.canvas_init == "mask":
            mask = self.tokenizer.get_vocab().get("<mask>")
            if mask is None:
                raise EngineError("generation_config.json says canvas_init 'mask' but the tokenizer has no <mask>")
            self.mask_id = int(mask)
        self.tokens = tokencache.for_tokenizer(self.tokenizer)  # line-cached tokenization
        # the lean forward (same math as transformers; DG_LSP_FASTPATH=0 turns it off)
        self.fast: fastpath.FastModel | None = getattr(loaded, "fast", None)
        if self.fast is None and fast and fastpath_enabled() and fastpath.unsupported(config) is None:
            self.fast = fastpath.FastModel.from_transformers(self.model, loaded.matmul_dtype)
        if self.fast is None and self.model is None:
            raise EngineError("checkpoint loaded without transformers but the fast path is off")
        self.cache = PromptCache(self.model, self.fast)
        self._draft_warned = False
        from dg_lsp import gate

        # the learned show/withhold gate fitted for this checkpoint (its gate.json), or None
        self.gate = gate.load(loaded.files.root)
        if self.device == "cpu":
            keep_freed_memory()
            torch.set_num_threads(threads or auto_threads(int(text_cfg.get("hidden_size", 0))))

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        path: str | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        layout: str = "auto",
        threads: int = 0,
    ) -> "Engine":
        """Load a checkpoint: without transformers when the fast path covers it, else with it."""
        loaded: Loaded | None = None
        if fastpath_enabled() and layout in ("auto", "fim"):
            from dg_lsp.engine import native

            loaded = native.load(path, device=device, dtype=dtype)
        if loaded is None:
            quiet_transformers()
            loaded = load_checkpoint(path, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        return cls(loaded, layout=layout, threads=threads)

    def _eos_ids(self) -> list[int]:
        ids: set[int] = set()
        gen_eos = self.loaded.generation.get("eos_token_id")
        for v in gen_eos if isinstance(gen_eos, list) else [gen_eos]:
            if isinstance(v, int):
                ids.add(v)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        if not ids:
            raise EngineError("checkpoint defines no EOS token")
        return sorted(ids)

    def _banned_ids(self) -> torch.Tensor:
        """Special tokens that never belong in a middle (EOS excepted)."""
        special = set(int(i) for i in getattr(self.tokenizer, "all_special_ids", []))
        vocab = self.tokenizer.get_vocab()
        for name in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<mask>", "<pad>", "<bos>"):
            if name in vocab:
                special.add(vocab[name])
        banned = sorted(i for i in special - set(self.eos_ids) if 0 <= i < self.vocab_size)
        return torch.tensor(banned, dtype=torch.long, device=self.device)

    @property
    def eos_id(self) -> int:
        return self.eos_ids[0]

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.loaded.files.root),
            "device": self.device,
            "dtype": str(self.loaded.dtype).replace("torch.", ""),
            # the fast path's matrix products (bf16 over float32 activations on CPUs with bf16 GEMMs)
            "matmul_dtype": str(self.fast.matmul_dtype if self.fast is not None else self.loaded.dtype).replace("torch.", ""),
            "layout": self.layout,
            "canvas_length": self.canvas_length,
            "context_tokens": self.context_tokens,
            "cross_file_tokens": self.cross_file_tokens,
            "vocab_size": self.vocab_size,
            "parameters": self.fast.n_parameters if self.fast is not None else sum(p.numel() for p in self.model.parameters()),
            "sampler": self.settings.__dict__,
            "threads": torch.get_num_threads(),
            "fast_path": self.fast is not None,
            "gate": self.gate.meta if self.gate is not None else None,
            "transformers": self.model is not None,
        }

    def warmup(self) -> float:
        """One short infill so the first real request does not pay for lazy initialisation; ms."""
        t0 = time.perf_counter()
        self.infill("x = ", "\n", max_new_tokens=8, canvas_length=8, steps=2)
        self.cache.reset()
        return (time.perf_counter() - t0) * 1000

    @torch.inference_mode()
    def prefill(
        self, prefix: str, suffix: str, language: str = "code", should_stop: Callable[[], bool] | None = None,
        context: str = "",
    ) -> int:
        """Encode the prompt for (prefix, suffix) into the prompt cache ahead of a request
        (Cancelled between chunks); returns the tokens it encoded."""
        ids = self.prompt(prefix, suffix, language, context).ids
        _, reused = self.cache.prepare(ids, self.device, should_stop)
        return len(ids) - reused

    # ----------------------------------------------------------------- pieces
    def count_tokens(self, text: str) -> int:
        return len(self.tokens.encode(text))

    def prompt(self, prefix: str, suffix: str, language: str = "code", context: str = "") -> Prompt:
        """``context``: cross-file snippets (``dg_lsp.context.crossfile``), first in the prompt."""
        if self.layout == "fim":  # the same ids build_prompt would make, from the line cache
            return build_prompt(self.tokenizer, prefix, suffix, layout="fim", prefix_ids=self.tokens.encode(prefix),
                                suffix_ids=self.tokens.encode(suffix), context_ids=self.tokens.encode(context))
        return build_prompt(self.tokenizer, prefix, suffix, layout=self.layout, language=language, context=context)

    def _step_fn(self, kv: Any, start: int) -> DenoiseFn:
        """The denoiser for canvases after ``start`` cached prompt tokens."""
        if isinstance(kv, fastpath.KVCache):
            steps: dict[tuple[int, int], fastpath.FastStep] = {}
            fast = self.fast
            assert fast is not None

            def fast_step(canvas: torch.Tensor, self_cond: SelfCond | None) -> torch.Tensor:
                k, n = canvas.shape
                if (k, n) not in steps:
                    steps[k, n] = fast.step_fn(kv, n, rows=k)
                return steps[k, n](canvas, self_cond)

            return fast_step
        return self._reference_step_fn(kv, start)

    def _reference_step_fn(self, kv: Any, start: int) -> DenoiseFn:
        """transformers' ``DiffusionGemmaDecoderModel`` plus the tied head (the reference)."""
        decoder = self.model.model.decoder
        lm_head = self.model.lm_head
        softcap = self.softcap
        positions: dict[int, torch.Tensor] = {}

        def step(canvas: torch.Tensor, self_cond: SelfCond | None) -> torch.Tensor:
            n = canvas.shape[1]
            if n not in positions:
                positions[n] = torch.arange(start, start + n, device=canvas.device).unsqueeze(0)
            sc = None if self_cond is None else self_cond.logits.to(decoder.embed_tokens.weight.dtype)
            hidden = decoder(
                decoder_input_ids=canvas,
                past_key_values=kv,
                self_conditioning_logits=sc,
                decoder_position_ids=positions[n],
            ).last_hidden_state
            logits = lm_head(hidden).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            return logits

        return step

    def _generator(self, seed: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(seed)
        return g

    def _settings(self, steps: int | None) -> SamplerSettings:
        if not steps:
            return self.settings
        s = SamplerSettings(**self.settings.__dict__)
        s.max_steps = steps
        return s

    def _noise(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        """A starting canvas: uniformly random tokens, or all <mask> for an absorbing-noise checkpoint."""
        return sampler_noise(shape, self.vocab_size, gen, self.device, self.mask_id)

    def _can_draft(self, kv: Any) -> bool:
        """The causal draft runs on the fast path only; without it the setting is ignored (logged once)."""
        if self.fast is not None and isinstance(kv, fastpath.KVCache):
            return True
        if not self._draft_warned:
            log.warning("draft 'causal' needs the fast path; starting from noise")
            self._draft_warned = True
        return False

    def _draft_canvas(
        self, kv: "fastpath.KVCache", last_id: int, noise: torch.Tensor, strength: float,
        should_stop: Callable[[], bool] | None = None,
    ) -> torch.Tensor:
        """The first canvas from the causal draft: the draft's tokens, EOS after its end, with
        round(strength * L) positions, least confident first, taken from ``noise`` (1, L).

        A padding EOS counts as sure as the EOS that ended the draft (they are re-noised
        together: where the middle ends is one decision). Ties go to the earlier position."""
        assert self.fast is not None
        n = noise.shape[1]
        ids, probs = self.fast.draft(kv, last_id, n, banned=self.banned, eos_ids=self.eos_ids, should_stop=should_stop)
        if not ids:
            return noise
        pad = n - len(ids)
        start = torch.tensor([ids + [self.eos_id] * pad], dtype=torch.long, device=noise.device)
        conf = torch.tensor(probs + [probs[-1]] * pad, dtype=torch.float32)
        k = min(n, max(0, math.floor(strength * n + 0.5)))
        renoise = torch.zeros(n, dtype=torch.bool)
        renoise[torch.sort(conf, stable=True).indices[:k]] = True
        return torch.where(renoise.to(noise.device)[None], noise, start)

    def _encode(self, prefix: str, suffix: str, language: str, context: str,
                should_stop: Callable[[], bool] | None) -> tuple[Prompt, Any, int, dict[str, float]]:
        """(prompt, its KV cache, tokens reused from the cache, timings) for an infill."""
        t0 = time.perf_counter()
        prompt = self.prompt(prefix, suffix, language, context)
        timings = {"tokenize": (time.perf_counter() - t0) * 1000}
        t0 = time.perf_counter()
        kv, reused = self.cache.prepare(prompt.ids, self.device, should_stop)
        timings["encode"] = (time.perf_counter() - t0) * 1000
        return prompt, kv, reused, timings

    def _maybe_draft(self, kv: Any, prompt: Prompt, canvas: torch.Tensor, settings: SamplerSettings,
                     should_stop: Callable[[], bool] | None, timings: dict[str, float]) -> torch.Tensor:
        """``canvas`` (1, L), or the causal draft's canvas when ``settings.draft`` asks for it."""
        if settings.draft != "causal" or not prompt.ids or not self._can_draft(kv):
            return canvas
        t0 = time.perf_counter()
        canvas = self._draft_canvas(kv, prompt.ids[-1], canvas, settings.draft_strength, should_stop)
        timings["draft"] = (time.perf_counter() - t0) * 1000
        return canvas

    def memory_cursor(self, memory: Any, prefix: str) -> Any:
        """A ``dg_lsp.memory.Cursor`` over ``memory`` after ``prefix`` (its last lines' tokens,
        tokenized as the memories are), or None without memory."""
        if memory is None or not memory.scopes:
            return None
        from dg_lsp.memory.index import MAX_MATCH

        a = max(0, len(prefix) - 64 * MAX_MATCH)
        if a:
            a = prefix.find("\n", a) + 1 or a
        return memory.cursor(self.tokens.encode(prefix[a:]))

    def _draft_answer(self, kv: "fastpath.KVCache", prompt: Prompt, budget: int, settings: SamplerSettings,
                      should_stop: Callable[[], bool] | None, timings: dict[str, float],
                      cursor: Any = None) -> InfillResult:
        """``draft: "answer"``: the causal draft of up to ``budget`` tokens, cut as the answer is
        (``_draft_result``), as the middle; ``cursor`` mixes the memories into every token."""
        assert self.fast is not None
        t0 = time.perf_counter()
        ids, probs = self.fast.draft(kv, prompt.ids[-1], budget, banned=self.banned, eos_ids=self.eos_ids,
                                     should_stop=should_stop, min_prob=self._draft_floor(settings, cursor), memory=cursor,
                                     stop=self._draft_stop(settings, cursor))
        timings["draft"] = (time.perf_counter() - t0) * 1000
        return self._draft_result(ids, probs, settings, prompt, timings, cursor)

    def _draft_branch_answers(self, kv: "fastpath.KVCache", prompt: Prompt, budget: int, k: int,
                              settings: SamplerSettings, should_stop: Callable[[], bool] | None,
                              timings: dict[str, float], cursor: Any = None) -> list[InfillResult]:
        """``k`` candidates for ``draft: "answer"``: drafts that branch at their first token
        (``FastModel.draft_branches``; the first is the greedy draft), each cut as the answer
        is, distinct texts only, the greedy one first."""
        assert self.fast is not None
        t0 = time.perf_counter()
        rows = self.fast.draft_branches(kv, prompt.ids[-1], budget, k, banned=self.banned, eos_ids=self.eos_ids,
                                        should_stop=should_stop, min_prob=self._draft_floor(settings, cursor), memory=cursor,
                                        stop=self._draft_stop(settings, cursor))
        timings["draft"] = (time.perf_counter() - t0) * 1000
        forks = cursor.forks if cursor is not None else [None] * len(rows)
        return self._distinct([self._draft_result(ids, probs, settings, prompt, timings, c)
                               for (ids, probs), c in zip(rows, forks)])

    def _draft_floor(self, settings: SamplerSettings, cursor: Any = None) -> float:
        """The running probability under which the answer's cut keeps no token: drafting stops there
        (with a memory, its cuts: ``MixParams``)."""
        cut, short_cut, _ = self._cuts(settings, cursor)
        return min(cut, short_cut)

    def _cuts(self, settings: SamplerSettings, cursor: Any = None) -> tuple[float, float, float]:
        """(cut, short cut, token floor) of the answer: the checkpoint's, or a memory's (``MixParams``)."""
        if cursor is not None:
            p = cursor.memory.params
            return p.draft_cut, p.draft_short_cut, p.token_floor
        return settings.draft_cut, settings.draft_short_cut, 0.0

    def _draft_stop(self, settings: SamplerSettings, cursor: Any = None) -> Callable[[list[int], float], bool]:
        """Stop drafting where the answer's cut will be (``_draft_result``), not at the lower short
        cut: at the first token whose running probability falls under the cut, unless what comes
        before it is under ``MIN_SHOWN_CHARS`` characters (then the short cut applies). Per draft
        row (its ids list)."""
        cut = self._cuts(settings, cursor)[0]
        crossed: dict[int, bool] = {}

        def stop(ids: list[int], running: float) -> bool:
            if running >= cut or id(ids) in crossed:
                return False
            crossed[id(ids)] = True  # the first crossing decides
            return len(self.decode(ids[:-1]).strip()) >= MIN_SHOWN_CHARS

        return stop

    @staticmethod
    def _distinct(results: list[InfillResult]) -> list[InfillResult]:
        seen: set[tuple[int, ...]] = set()
        out = []
        for r in results:
            if tuple(r.token_ids) not in seen:
                seen.add(tuple(r.token_ids))
                out.append(r)
        return out

    def _draft_result(self, ids: list[int], probs: list[float], settings: SamplerSettings,
                      prompt: Prompt, timings: dict[str, float], cursor: Any = None) -> InfillResult:
        """A draft as a middle, cut at ``draft_cut``, or at ``draft_short_cut`` when the part above
        ``draft_cut`` is under ``MIN_SHOWN_CHARS`` characters (not worth showing)."""
        cut, short_cut, floor = self._cuts(settings, cursor)  # a memory's cuts: dg_lsp.memory.fusion.MixParams
        kept, why, scored = cut_draft(ids, probs, cut, self.eos_ids, floor)
        if why == "unsure" and short_cut < cut and len(self.decode(kept).strip()) < MIN_SHOWN_CHARS:
            kept, why, scored = cut_draft(ids, probs, short_cut, self.eos_ids, floor)
        logp = sum(math.log(max(p, 1e-30)) for p in scored)
        sig = Signals(max_steps=settings.max_steps, hit_eos=why == "eos")
        sig.add(logp, logp, len(scored))
        # a middle cut where the model was unsure ends there too (hit_eos: nothing continues it)
        return InfillResult(text=self.decode(kept), token_ids=kept, steps=0, canvases=0, hit_eos=bool(why),
                            timings=dict(timings), prompt_tokens=len(prompt.ids), confidence=model_confidence(sig),
                            signals=sig, partial=why == "unsure", drafted=True,
                            memory=cursor.summary(len(kept)) if cursor is not None else {})

    def _cut_at_eos(self, ids: list[int]) -> tuple[list[int], bool]:
        eos = set(self.eos_ids)
        for i, t in enumerate(ids):
            if t in eos:
                return ids[:i], True
        return ids, False

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; bytes that do not form UTF-8 and control characters are dropped."""
        text = self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return _JUNK.sub("", text)

    # ----------------------------------------------------------------- operations
    @torch.inference_mode()
    def infill(
        self,
        prefix: str,
        suffix: str,
        *,
        max_new_tokens: int | None = None,
        canvas_length: int | None = None,
        steps: int | None = None,
        seed: int = 0,
        language: str = "code",
        should_stop: Callable[[], bool] | None = None,
        logits_hook: LogitsHook | None = None,
        candidates: int = 1,
        alt_temperature: float | None = None,
        context: str = "",
        memory: Any = None,
    ) -> InfillResult:
        """Fill the middle between ``prefix`` and ``suffix``; EOS ends it.

        ``candidates`` > 1: that many canvases denoised together (one forward pass per step on
        the fast path, one after another elsewhere), the first as with 1, the others sampled at
        ``alt_temperature`` times its temperature; each is one canvas (no continuation), and the
        others are the result's ``alternatives``. ``context``: cross-file snippets for the prompt.
        ``memory``: a ``dg_lsp.memory.Memory`` mixed into every drafted token and canvas step."""
        if candidates > 1:
            alt = ALT_TEMPERATURE if alt_temperature is None else alt_temperature
            return self._infill_many(prefix, suffix, candidates, alt, canvas_length=canvas_length,
                                     max_new_tokens=max_new_tokens, steps=steps, seed=seed, language=language,
                                     should_stop=should_stop, logits_hook=logits_hook, context=context,
                                     memory=memory)
        t_start = time.perf_counter()
        prompt, kv, reused, timings = self._encode(prefix, suffix, language, context, should_stop)
        length = canvas_length or self.canvas_length
        budget = max_new_tokens or length
        settings = self._settings(steps)
        if settings.draft == "answer" and prompt.ids and self._can_draft(kv):
            t0 = time.perf_counter()
            cursor = self.memory_cursor(memory, prefix)
            timings["memory"] = (time.perf_counter() - t0) * 1000
            res = self._draft_answer(kv, prompt, budget, settings, should_stop, timings, cursor)
            res.cached_tokens = reused
            res.timings["total"] = (time.perf_counter() - t_start) * 1000
            return res
        gen = self._generator(seed)
        hook, mem_hook = self._with_memory(memory, prefix, logits_hook)
        out: list[int] = []
        total_steps, canvases, hit_eos = 0, 0, False
        denoise_ms = 0.0
        sig = Signals(max_steps=settings.max_steps)
        while len(out) < budget:
            n = min(length, budget - len(out)) if canvases else length
            canvas = self._noise((1, n), gen)
            if not canvases:  # only the first canvas starts from the draft
                canvas = self._maybe_draft(kv, prompt, canvas, settings, should_stop, timings)
            t0 = time.perf_counter()
            res = denoise(
                self._step_fn(kv, len(self.cache.ids)),
                canvas,
                settings,
                vocab_size=self.vocab_size,
                generator=gen,
                banned=self.banned,
                logits_hook=hook,
                accept_hook=getattr(logits_hook, "accept", None),  # constraints re-noise infeasible tokens
                should_stop=should_stop,
                mask_id=self.mask_id,
            )
            denoise_ms += (time.perf_counter() - t0) * 1000
            total_steps += res.steps
            canvases += 1
            ids, hit_eos = self._cut_at_eos(res.canvas[0].tolist())
            sig.add(*_logprob_sums(res, 0, len(ids) + int(hit_eos)))
            out.extend(ids)
            if hit_eos or len(out) >= budget:
                break
            # continue in a second canvas: the first one becomes part of the prompt
            self.cache.extend(ids, self.device)
        out = out[:budget]
        sig.steps, sig.hit_eos = total_steps, hit_eos
        timings["denoise"] = denoise_ms
        t0 = time.perf_counter()
        text = self.decode(out)
        timings["detokenize"] = (time.perf_counter() - t0) * 1000
        timings["total"] = (time.perf_counter() - t_start) * 1000
        return InfillResult(
            text=text,
            token_ids=out,
            steps=total_steps,
            canvases=canvases,
            hit_eos=hit_eos,
            timings=timings,
            cached_tokens=reused,
            prompt_tokens=len(prompt.ids),
            confidence=model_confidence(sig),
            signals=sig,
            memory=mem_hook.last.summary(len(out)) if mem_hook is not None and mem_hook.last is not None else {},
        )

    def _with_memory(self, memory: Any, prefix: str, hook: LogitsHook | None) -> tuple[LogitsHook | None, Any]:
        """(logits hook, memory hook): ``memory`` mixed into every denoising step before ``hook``
        (the constraints then mask what the memories proposed and cannot be), or ``hook`` alone."""
        cursor = self.memory_cursor(memory, prefix)
        if cursor is None:
            return hook, None
        from dg_lsp.memory.fusion import MemoryHook

        mem = MemoryHook(cursor, self.eos_ids)
        if hook is None:
            return mem, mem

        def both(logits: torch.Tensor, argmax: torch.Tensor) -> None:
            mem(logits, argmax)
            hook(logits, argmax)

        return both, mem

    def _infill_many(
        self, prefix: str, suffix: str, k: int, alt_temperature: float, *, canvas_length: int | None,
        max_new_tokens: int | None, steps: int | None, seed: int, language: str,
        should_stop: Callable[[], bool] | None, logits_hook: LogitsHook | None, context: str = "",
        memory: Any = None,
    ) -> InfillResult:
        """``k`` candidates of one canvas each (see ``infill``)."""
        t_start = time.perf_counter()
        prompt, kv, reused, timings = self._encode(prefix, suffix, language, context, should_stop)
        n = min(canvas_length or self.canvas_length, max_new_tokens or canvas_length or self.canvas_length)
        if not isinstance(kv, fastpath.KVCache):  # the reference decoder takes one canvas: one after another
            runs = [self.infill(prefix, suffix, canvas_length=n, max_new_tokens=n, steps=steps, seed=seed + j,
                                language=language, should_stop=should_stop, logits_hook=logits_hook, context=context)
                    for j in range(k)]
            first = runs[0]
            first.alternatives = runs[1:]
            first.timings["total"] = (time.perf_counter() - t_start) * 1000
            return first
        settings = self._settings(steps)
        if settings.draft == "answer" and prompt.ids and self._can_draft(kv):
            # k drafts that branch at their first token, decoded together; each cut as the answer is
            out = self._draft_branch_answers(kv, prompt, n, k, settings, should_stop, timings,
                                             self.memory_cursor(memory, prefix))
            for r in out:
                r.cached_tokens = reused
            out[0].timings["total"] = (time.perf_counter() - t_start) * 1000
            out[0].alternatives = out[1:]
            return out[0]
        gen = self._generator(seed)
        hook, _ = self._with_memory(memory, prefix, logits_hook)
        canvas = self._noise((k, n), gen)
        canvas[:1] = self._maybe_draft(kv, prompt, canvas[:1], settings, should_stop, timings)  # the first row
        t0 = time.perf_counter()
        res = denoise(
            self._step_fn(kv, len(self.cache.ids)), canvas, settings, vocab_size=self.vocab_size, generator=gen,
            banned=self.banned, logits_hook=hook, accept_hook=getattr(logits_hook, "accept", None),
            should_stop=should_stop, mask_id=self.mask_id, row_temperature=[1.0] + [alt_temperature] * (k - 1),
            lead_rows=1,  # the steps the first candidate needs: the others end where they are then
        )
        timings["denoise"] = (time.perf_counter() - t0) * 1000
        out = []
        for r in range(k):
            ids, hit = self._cut_at_eos(res.canvas[r].tolist())
            sig = Signals(steps=res.steps, max_steps=settings.max_steps, hit_eos=hit)
            sig.add(*_logprob_sums(res, r, len(ids) + int(hit)))
            out.append(InfillResult(text=self.decode(ids), token_ids=ids, steps=res.steps, canvases=1, hit_eos=hit,
                                    timings=dict(timings), cached_tokens=reused, prompt_tokens=len(prompt.ids),
                                    confidence=model_confidence(sig), signals=sig))
        out[0].timings["total"] = (time.perf_counter() - t_start) * 1000
        out[0].alternatives = out[1:]
        return out[0]

    @torch.inference_mode()
    def rewrite(
        self,
        prefix: str,
        selection: str,
        suffix: str,
        *,
        strength: float | None = None,
        steps: int | None = None,
        seed: int = 0,
        language: str = "code",
        should_stop: Callable[[], bool] | None = None,
        memory: Any = None,
    ) -> InfillResult:
        """Rewrite ``selection``: only the tokens the model doubts, each changed only where a
        change is much more likely (``dg_lsp.engine.revise``, with ``memory``: the token memory of
        the document without the selection mixed into its likelihoods); the selection itself comes back
        when the model is sure of it (or, off the fast path or without fill-in-the-middle
        tokens, always: a change it cannot score is not made). ``strength``: instead, a canvas
        started from the selection with that share of it re-noised, then denoised (the former
        behaviour, kept for a canvas's start from a retrieved line, ``model.heldout.run_engine``)."""
        t_start = time.perf_counter()
        if strength is None:
            from dg_lsp.engine.revise import revise

            sel_ids = encode_text(self.tokenizer, selection)
            if self.fast is None or self.layout != "fim":
                return InfillResult(text=selection, token_ids=sel_ids, steps=0, canvases=0, hit_eos=True,
                                    timings={"total": (time.perf_counter() - t_start) * 1000})
            rev = revise(self, prefix, selection, suffix, language=language, should_stop=should_stop, memory=memory)
            return InfillResult(text=rev.text, token_ids=encode_text(self.tokenizer, rev.text) if rev.changed else sel_ids,
                                steps=0, canvases=0, hit_eos=True, timings=rev.timings,
                                prompt_tokens=rev.prompt_tokens)
        prompt = self.prompt(prefix, suffix, language)
        kv, reused = self.cache.prepare(prompt.ids, self.device)
        sel_ids = encode_text(self.tokenizer, selection)
        n = max(self.canvas_length, int(len(sel_ids) * 1.25) + 8)
        gen = self._generator(seed)
        start = torch.tensor([sel_ids + [self.eos_id] * (n - len(sel_ids))], dtype=torch.long, device=self.device)
        noise = self._noise(tuple(start.shape), gen)
        renoise = torch.rand(start.shape, generator=gen, device=self.device) < strength
        canvas = torch.where(renoise, noise, start)
        res = denoise(
            self._step_fn(kv, len(self.cache.ids)),
            canvas,
            self._settings(steps),
            vocab_size=self.vocab_size,
            generator=gen,
            banned=self.banned,
            should_stop=should_stop,
            mask_id=self.mask_id,
        )
        ids, hit_eos = self._cut_at_eos(res.canvas[0].tolist())
        return InfillResult(
            text=self.decode(ids),
            token_ids=ids,
            steps=res.steps,
            canvases=1,
            hit_eos=hit_eos,
            timings={"total": (time.perf_counter() - t_start) * 1000},
            cached_tokens=reused,
            prompt_tokens=len(prompt.ids),
        )

    @torch.inference_mode()
    def fill_holes(
        self,
        prefix: str,
        pieces: Sequence[str],
        suffix: str,
        *,
        hole_tokens: int = 16,
        steps: int | None = None,
        seed: int = 0,
        language: str = "code",
        should_stop: Callable[[], bool] | None = None,
        markers: Sequence[str] = (),
        method: str | None = None,
    ) -> list[str]:
        """Fill every hole between ``pieces``.

        ``pieces`` are the fixed texts around the holes: ``pieces[0] HOLE pieces[1] HOLE ...
        pieces[-1]`` (len(pieces) - 1 holes); ``markers``: the holes' text in the document
        (``pass``, ``// TODO``, ...). ``method`` (``dg_lsp.engine.holes.METHODS``; None: the
        checkpoint's, ``holes.fill_method``): ``"canvas"``, one canvas where fixed pieces are frozen
        and each hole gets ``hole_tokens`` noise positions, a hole's text ending at its first
        EOS; ``"draft"``, each hole the causal draft of its middle, left to right
        (``holes.fill_by_draft``); ``"draft+revise"``, those drafts revised against both sides.
        """
        from dg_lsp.engine.holes import fill_by_draft, fill_method

        method = method or fill_method(self)
        if method != "canvas" and self.fast is not None and self.layout == "fim":
            return fill_by_draft(self, prefix, pieces, suffix, markers=markers, language=language,
                                 revise_after=method == "draft+revise", should_stop=should_stop)
        prompt = self.prompt(prefix, suffix, language)
        kv, _ = self.cache.prepare(prompt.ids, self.device)
        gen = self._generator(seed)
        tokens: list[int] = []
        frozen: list[bool] = []
        slots: list[tuple[int, int]] = []
        for i, piece in enumerate(pieces):
            ids = encode_text(self.tokenizer, piece)
            tokens += ids
            frozen += [True] * len(ids)
            if i < len(pieces) - 1:
                slots.append((len(tokens), len(tokens) + hole_tokens))
                tokens += [self.eos_id] * hole_tokens
                frozen += [False] * hole_tokens
        canvas = torch.tensor([tokens], dtype=torch.long, device=self.device)
        frozen_t = torch.tensor([frozen], dtype=torch.bool, device=self.device)
        noise = self._noise(tuple(canvas.shape), gen)
        canvas = torch.where(frozen_t, canvas, noise)
        res: DenoiseResult = denoise(
            self._step_fn(kv, len(self.cache.ids)),
            canvas,
            self._settings(steps),
            vocab_size=self.vocab_size,
            generator=gen,
            frozen=frozen_t,
            banned=self.banned,
            should_stop=should_stop,
            mask_id=self.mask_id,
        )
        out = res.canvas[0].tolist()
        return [self.decode(self._cut_at_eos(out[a:b])[0]) for a, b in slots]
