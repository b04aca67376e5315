"""One completion from a document and a cursor: cut, infill, post-process.

Shared by the LSP features and ``dg-lsp complete``. Runs on the worker thread.

The canvas is sized to the hole: one canvas of 16 tokens for the rest of a line, the model's
canvas for a block body and further canvases while the block has not ended. With ``syntax_aware``
(the default) the sampler runs under lexical constraints (``dg_lsp.engine.constraints``). A
middle that adds a syntax error is cut to its longest valid prefix; when no prefix is valid it
is repaired once (the canvas is denoised again, for a few steps, from the token before the
first new error) and checked again; only then is nothing returned.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from dg_lsp.context import LanguageSpec, SyntaxDocument, completion_mode, cut_context
from dg_lsp.confidence import RecentAnswers, judge
from dg_lsp.context.checks import first_new_error, leaves_hole_broken, prime
from dg_lsp.context.sticky import stabilize
from dg_lsp.gate import features as gate_features
from dg_lsp.engine import Engine, InfillResult
from dg_lsp.engine.constraints import HookChain, for_engine
from dg_lsp.engine.sampler import LogitsHook
from dg_lsp.postprocess import Finished, finish, shape
from dg_lsp.settings import DEFAULT_CONTEXT_TOKENS, Settings

log = logging.getLogger(__name__)

DEFAULT_CROSS_FILE_TOKENS = 128
# Tokens for the rest of a line, in one canvas (16 hold 87% of HumanEval's single lines). On
# 320 holes in 8 languages (python -m benchmarks.syntax --per-lang 40, constraints on), with the
# embedded model: one canvas of 16: 52.5% empty, median 31 ms; 16 and a second 16 when the line
# had not ended: 51.9%, 39 ms; one of 24: 67.5%, 44 ms; one of 32: 68.4%, 51 ms. A longer line
# is cut at its longest valid prefix; accepting it asks for the rest.
LINE_CANVAS = 16
REPAIR_STEPS = 3  # denoising steps of the repair pass
# Syntax checks and bracket analysis see more of the document than the model: a middle that is
# fine before a short cut suffix can still break what follows (characters, snapped to lines).
CHECK_BEFORE, CHECK_AFTER = 8000, 4000
# Documents up to this size are checked whole (tree-sitter's error recovery is not local: a middle
# that is fine in a window can still add an error to the file); the document's own tree is the
# base, so each candidate costs an incremental parse.
CHECK_WHOLE = 64_000


def cross_file_budget(settings: Settings, engine: Engine | None) -> int:
    """Tokens of cross-file snippets (0: none): ``crossFile`` "on" or, on "auto", a checkpoint
    trained with them; ``crossFileTokens``, else the checkpoint's, else 64."""
    trained = engine.cross_file_tokens if engine is not None else 0
    if settings.cross_file == "off" or (settings.cross_file == "auto" and not trained):
        return 0
    return settings.cross_file_tokens or trained or DEFAULT_CROSS_FILE_TOKENS


def cross_file_context(doc: SyntaxDocument, offset: int, sources, engine: Engine, budget: int,
                       settings: Settings) -> tuple[str, list]:
    """(prompt text, snippets) from ``sources`` ((path, text) pairs of other files) for the
    cursor at ``offset``; the query is the cut context's lines around the cursor."""
    from dg_lsp.context import crossfile

    if budget <= 0:
        return "", []
    c = cut_context(doc, offset, engine.count_tokens, prompt_budget(settings, engine))
    return crossfile.context_for(c.prefix, c.suffix, sources, engine.count_tokens, budget)


def prompt_budget(settings: Settings, engine: Engine | None) -> int:
    """Prefix + suffix tokens: ``contextTokens``, else the checkpoint's training budget (when a
    model is loaded), else 1024."""
    return settings.context_tokens or (engine.context_tokens if engine else None) or DEFAULT_CONTEXT_TOKENS


def check_window(doc: SyntaxDocument, offset: int) -> tuple[str, str]:
    """(prefix, suffix) around ``offset`` for validation: the whole document when it is small
    enough and ``doc`` has parsed this text, else whole lines, a few thousand characters."""
    text = doc.text
    if len(text) <= CHECK_WHOLE:
        parsed_text, tree = doc.parsed
        if parsed_text == text:
            prime(doc.spec, text, tree)
            return text[:offset], text[offset:]
    a = max(0, offset - CHECK_BEFORE)
    if a > 0:
        a = text.find("\n", a, offset) + 1 or a
    b = min(len(text), offset + CHECK_AFTER)
    if b < len(text):
        nl = text.rfind("\n", offset, b)
        b = nl + 1 if nl >= 0 else b
    return text[a:offset], text[offset:b]


@dataclass
class Proposal:
    text: str  # what to insert at the cursor ("" = nothing to propose)
    offset: int  # cursor offset in the document (code points)
    replace: int  # code points after the cursor that ``text`` replaces
    mode: str
    reason: str = ""
    result: InfillResult | None = None
    timings: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0  # 0..1, after ``dg_lsp.confidence.judge``
    model_confidence: float = 0.0  # the model's own, before the penalties
    judged: str = ""  # why the confidence was lowered ("" = it was not)
    # further distinct candidates (``candidates`` > 1), best first; ``self`` is the best
    alternatives: list["Proposal"] = field(default_factory=list)
    # the learned gate's inputs (``dg_lsp.gate.features``) for a non-blank answer, else None
    features: list[float] | None = None


def combined_confidence(results: list[InfillResult]) -> float:
    """The model confidence of a middle made of several canvases (token-weighted)."""
    from dg_lsp.confidence import model_confidence
    from dg_lsp.engine.core import Signals

    sig = Signals()
    for r in results:
        if r.signals is not None and r.signals.tokens:
            sig.add(r.signals.first * r.signals.tokens, r.signals.last * r.signals.tokens, r.signals.tokens)
    return model_confidence(sig)


def propose(
    engine: Engine,
    spec: LanguageSpec,
    doc: SyntaxDocument,
    offset: int,
    settings: Settings,
    *,
    invoked: bool = False,
    should_stop: Callable[[], bool] | None = None,
    syntax_aware: bool = True,
    hook: LogitsHook | None = None,
    candidates: int = 1,
    recent: RecentAnswers | None = None,
    place: tuple[str, int] = ("", 0),
    cross_file: str = "",
    memory: Any = None,
) -> Proposal:
    """Complete at ``offset``. ``hook``: a logits hook run before the constraints (tests script
    the model's proposal with it); ``syntax_aware=False`` turns constraints and repair off.

    ``candidates`` > 1: that many canvases denoised together; the distinct non-empty ones are
    ranked by confidence, the best returned with the others as ``alternatives``. ``recent``:
    the server's recent answers, by ``place`` (document, line), for ``judge``. ``cross_file``:
    snippets of other files for the head of the prompt (``cross_file_context``). ``memory``: a
    ``dg_lsp.memory.Memory`` mixed into every decoding step (``dg_lsp.memory.scopes.build_memory``)."""
    t0 = time.perf_counter()
    mode = completion_mode(doc, offset, invoked=invoked)
    if mode == "multi" and not settings.multiline:
        mode = "single"
    t_mode = time.perf_counter()
    if mode == "none":
        return Proposal("", offset, 0, mode, reason="no completion at this position")
    c = cut_context(doc, offset, engine.count_tokens, prompt_budget(settings, engine), invoked=invoked)
    # the previous request's window while it still applies: typing then only appends to the prompt
    c = stabilize(doc.text, offset, c, doc.last_cut, engine.count_tokens, prompt_budget(settings, engine))
    doc.last_cut = c
    t_cut = time.perf_counter()
    check = check_window(doc, offset)
    mid_line = bool(doc.text[doc.line_start(doc.line_of(offset)) : offset].strip())
    gen = Generation(engine, spec, c.prefix, c.suffix, mode, settings, should_stop, syntax_aware, hook, check,
                     context=cross_file, memory=memory)
    cands = gen.run_many(candidates) if candidates > 1 else [gen.run_tracked("", [])]
    t_inf = time.perf_counter()
    props: list[Proposal] = []
    seen: set[tuple[str, int]] = set()
    for j, (text, ids, results) in enumerate(cands):
        done = finish(spec, check[0], text, check[1], mode, gen.boundaries(ids), partial=results[-1].partial)
        if syntax_aware and not done.text and j == 0:  # truncation left nothing: repair (costs steps, so only then)
            n0 = len(gen.results)
            done = gen.repair(text, ids, done)
            results = results + gen.results[n0:]
        if j and (not done.text or (done.text, done.replace) in seen):
            continue
        seen.add((done.text, done.replace))
        # a block body must complete its block; the rest of a line may stop early (a correct start
        # is worth a Tab, and the user types on)
        broken = bool(done.text) and syntax_aware and mode == "multi" and \
            leaves_hole_broken(spec, check[0], done.text, check[1][done.replace :])
        model = combined_confidence(results)
        v = judge(model, done.text, broken=broken, same_elsewhere=recent.others(place, done.text) if recent else 0)
        conf = v.confidence
        features = gate_features(results[0], done.text, mode, mid_line) if done.text.strip() else None
        if engine.gate is not None and features is not None:  # the learned gate, under the judge's rules
            p = engine.gate.probability(features)
            conf = p * (v.confidence / v.model if v.model > 0 else (0.0 if v.reason else 1.0))
        props.append(Proposal(done.text, offset, done.replace, mode, done.reason, results[0], {},
                              conf, v.model, v.reason, features=features))
    t_end = time.perf_counter()
    res = gen.results[0]
    timings = {
        "parse_mode": (t_mode - t0) * 1000,
        "cut": (t_cut - t_mode) * 1000,
        **{f"engine_{k}": sum(r.timings.get(k, 0.0) for r in gen.results) for k in res.timings},
        "postprocess": (t_end - t_inf) * 1000,
        "total": (t_end - t0) * 1000,
    }
    if len(props) > 1 and cands[0][2] and cands[0][2][0].drafted:
        # cuts of one draft: the engine's order (its answer first), degenerate ones last
        ranked = sorted(props, key=lambda p: p.confidence == 0.0)
    else:
        ranked = sorted(props, key=lambda p: -p.confidence) if len(props) > 1 else props
    best = ranked[0]
    best.timings, best.result = timings, res
    best.alternatives = [p for p in ranked[1:] if p.text]
    log.debug("completion mode=%s raw=%r final=%r reason=%s confidence=%.3f (%s) timings=%s", mode, cands[0][0],
              best.text, best.reason, best.confidence, best.judged or "model", timings)
    return best


def prefetch(
    engine: Engine,
    doc: SyntaxDocument,
    offset: int,
    settings: Settings,
    *,
    should_stop: Callable[[], bool] | None = None,
    cross_file: str = "",
) -> int:
    """Encode the prompt a completion at ``offset`` would use, while the user is still typing
    (after an edit, when the worker is idle): the request at the next pause then finds the
    context in the prompt cache and encodes only what was typed since. Returns the tokens
    encoded (0 where no completion would run)."""
    mode = completion_mode(doc, offset, invoked=False)
    if mode == "none":
        return 0
    c = cut_context(doc, offset, engine.count_tokens, prompt_budget(settings, engine), invoked=False)
    c = stabilize(doc.text, offset, c, doc.last_cut, engine.count_tokens, prompt_budget(settings, engine))
    doc.last_cut = c
    return engine.prefill(c.prefix, c.suffix, doc.spec.name, should_stop, context=cross_file)


class Generation:
    """The canvases of one completion: sizes, constraints, continuation and repair."""

    def __init__(
        self,
        engine: Engine,
        spec: LanguageSpec | None,
        prefix: str,
        suffix: str,
        mode: str,
        settings: Settings,
        should_stop: Callable[[], bool] | None,
        syntax_aware: bool,
        hook: LogitsHook | None,
        check: tuple[str, str] | None = None,
        context: str = "",
        memory: Any = None,
    ):
        """``prefix``/``suffix``: what the model sees; ``check``: the wider (prefix, suffix) that
        validation and the suffix's closing brackets are taken from (default: the same);
        ``context``: cross-file snippets at the head of every canvas's prompt."""
        self.engine, self.spec, self.mode, self.settings = engine, spec, mode, settings
        self.context = context
        self.memory = memory
        self.prefix, self.suffix = prefix, suffix
        self.check = check or (prefix, suffix)
        self.should_stop = should_stop
        wide = self.check[1]
        cons = for_engine(engine, spec, prefix, wide, mode) if syntax_aware and spec is not None else None
        self.constraint = cons
        self.hooks = HookChain(hook, cons)
        if mode == "single":
            self.length = min(LINE_CANVAS, engine.canvas_length, settings.max_tokens)
            self.budget = self.length
        else:
            self.length = engine.canvas_length
            self.budget = max(settings.max_tokens, 1)
        self.results: list[InfillResult] = []

    def _ended(self, text: str) -> bool:
        """Whether the line (single) or the block (multi) being filled has ended in ``text``."""
        if self.mode == "single":
            return "\n" in text
        from dg_lsp.postprocess import stop_block

        return stop_block(self.prefix, text) != text

    def run(self, text: str, ids: list[int], steps: int | None = None, repair: bool = False) -> tuple[str, list[int]]:
        """Denoise canvases after ``prefix + text`` (``text``: the middle so far, of tokens ``ids``)
        until EOS, the end of the line / block, or the budget; ``steps``: one canvas of that many."""
        ids = list(ids)
        while len(ids) < self.budget:
            n = min(self.length, self.budget - len(ids))
            self.hooks.begin(ids, final=True, left=self.budget - len(ids) - n, repair=repair)
            res = self.engine.infill(
                self.prefix + text,
                self.suffix,
                max_new_tokens=n,
                canvas_length=n,
                steps=steps or self.settings.denoising_steps or None,
                seed=self.settings.seed + len(self.results),
                language=self.spec.name if self.spec is not None else "code",
                should_stop=self.should_stop,
                logits_hook=self.hooks if self.hooks.hooks else None,
                context=self.context,
                memory=self.memory,
            )
            self.results.append(res)
            ids += res.token_ids
            text += res.text
            if res.hit_eos or self._ended(text) or steps is not None:
                break
        return text, ids

    def run_tracked(self, text: str, ids: list[int]) -> tuple[str, list[int], list[InfillResult]]:
        """``run`` and the results (canvases) it made."""
        n0 = len(self.results)
        text, ids = self.run(text, ids)
        return text, ids, self.results[n0:]

    def run_many(self, k: int) -> list[tuple[str, list[int], list[InfillResult]]]:
        """``k`` candidates: one batched denoising of the first canvas (``Engine.infill`` with
        ``candidates``), then each that has not ended continues on its own."""
        n = min(self.length, self.budget)
        self.hooks.begin([], final=True, left=self.budget - n, repair=False)
        res = self.engine.infill(
            self.prefix, self.suffix, max_new_tokens=n, canvas_length=n,
            steps=self.settings.denoising_steps or None, seed=self.settings.seed,
            language=self.spec.name if self.spec is not None else "code", should_stop=self.should_stop,
            logits_hook=self.hooks if self.hooks.hooks else None, candidates=k, context=self.context,
            memory=self.memory,
        )
        self.results.append(res)
        out = []
        for r in [res, *res.alternatives]:
            text, ids, more = r.text, list(r.token_ids), []
            if not (r.hit_eos or self._ended(text)) and len(ids) < self.budget:
                text, ids, more = self.run_tracked(text, ids)
            out.append((text, ids, [r, *more]))
        return out

    def boundaries(self, ids: list[int]) -> list[int]:
        """Offsets in the decoded middle where each token ends."""
        out, pos = [], 0
        for t in ids:
            pos += len(self.engine.decode([t]))
            out.append(pos)
        return out

    def repair(self, text: str, ids: list[int], done: Finished) -> Finished:
        """Re-denoise from the token before the first new syntax error; keep the better answer."""
        if self.spec is None or not text.strip():
            return done
        vp, vs = self.check
        shaped, replace = shape(vp, text, vs, self.mode)
        err = first_new_error(self.spec, vp, shaped, vs[replace:])
        if err is None:
            return done
        bounds = self.boundaries(ids)
        k = sum(1 for b in bounds if b <= err)  # tokens wholly before the error
        k = max(0, k - 1)  # and the one before it is re-noised too
        if k == 0:
            return done  # nothing before the error to build on: a re-run would be a new guess
        keep = text[: bounds[k - 1]]
        again, again_ids = self.run(keep, ids[:k], steps=REPAIR_STEPS, repair=True)
        fixed = finish(self.spec, vp, again, vs, self.mode, self.boundaries(again_ids), partial=self.results[-1].partial)
        if fixed.text and (not fixed.truncated or len(fixed.text) > len(done.text)):
            fixed.reason = "repaired" + (" and truncated" if fixed.truncated else "")
            return fixed
        return done
