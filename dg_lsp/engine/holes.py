"""Fill holes with the causal draft: each hole answered as a completion there, left to right.

The server's "Fill holes" action, for such a checkpoint, runs ``dg_lsp.fill.fill_holes`` instead:
the same per-hole answer through the completion's post-processing and the token memory, kept only
where the function still parses. ``fill_by_draft`` is the engine's own (raw drafts, no syntax
check), measured beside it by ``benchmarks/fill_holes.py``.

``Engine.fill_holes`` fills every hole of a function. The canvas does it in one pass (every hole
a stretch of ``<mask>`` positions between the fixed text, each seeing the others); a checkpoint
whose causal encoder is what serves its completions (``draft: "answer"``, the embedded model,
whose canvas was only ever trained with one middle at the end of the canvas) fills them here,
hole by hole, left to right: each hole gets what a completion invoked at the hole would answer
(``Engine.infill`` on the server's cut of the text around it, ``dg_lsp.context.cut_context``: the
causal draft, cut where the model stops being sure), the holes before it filled with their
answers, the holes after it still holding their markers as the user wrote them.

Variants measured by ``benchmarks/fill_holes.py`` (docs/canvas.md): ``full`` drafts (greedy to
EOS, not cut), each hole on its own (the other holes' markers in place), and each draft revised
against both sides afterwards (``dg_lsp.engine.revise``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from dg_lsp.engine.errors import Cancelled

if TYPE_CHECKING:
    from dg_lsp.engine.core import Engine

METHODS = ("canvas", "draft", "draft+revise")
DRAFT_TOKENS = 48  # most tokens of one hole's answer (a statement or two)


def fill_method(engine: "Engine") -> str:
    """How ``Engine.fill_holes`` fills for this checkpoint: the causal draft where it answers
    completions (``draft: "answer"``, on the fast path with FIM tokens), else the canvas."""
    if engine.settings.draft == "answer" and engine.fast is not None and engine.layout == "fim":
        return "draft"
    return "canvas"


def draft_hole(engine: "Engine", before: str, after: str, *, language: str = "code", max_tokens: int = DRAFT_TOKENS,
               full: bool = False, should_stop: Callable[[], bool] | None = None) -> str:
    """What fills a hole between ``before`` and ``after``: the completion a request there
    would get (the server's cut of the text, ``Engine.infill``), or with ``full`` the causal
    draft to EOS (or ``max_tokens``) on the prompt cut as the model was trained."""
    if full:
        from dg_lsp.engine.revise import cut_context

        assert engine.fast is not None
        pre, suf = cut_context(engine, before, after)
        prompt = engine.prompt(pre, suf, language)
        kv, _ = engine.cache.prepare(prompt.ids, engine.device, should_stop)
        ids, _ = engine.fast.draft(kv, prompt.ids[-1], max_tokens, banned=engine.banned, eos_ids=engine.eos_ids,
                                   should_stop=should_stop)
        ids, _ = engine._cut_at_eos(ids)
        return engine.decode(ids)
    from dg_lsp.context import SyntaxDocument, cut_context, registry

    spec = registry().get(language)
    if spec is None:  # no grammar: the token cut
        from dg_lsp.engine.revise import cut_context as token_cut

        pre, suf = token_cut(engine, before, after)
    else:
        doc = SyntaxDocument(spec, before + after)
        c = cut_context(doc, len(before), engine.count_tokens, engine.context_tokens or 1024, invoked=True)
        pre, suf = c.prefix, c.suffix
    return engine.infill(pre, suf, max_new_tokens=max_tokens, language=language, should_stop=should_stop).text


@torch.inference_mode()
def fill_by_draft(engine: "Engine", prefix: str, pieces: Sequence[str], suffix: str, *, markers: Sequence[str] = (),
                  language: str = "code", sequential: bool = True, full: bool = False, revise_after: bool = False,
                  max_tokens: int = DRAFT_TOKENS, should_stop: Callable[[], bool] | None = None,
                  timings: dict[str, float] | None = None) -> list[str]:
    """One text per hole between ``pieces`` (``Engine.fill_holes``), left to right (module
    docstring). ``markers``: the holes' text in the document (none given: nothing stands for a
    later hole); not ``sequential``: the holes before it keep their markers too (each hole
    answered on its own); ``full``: drafts to EOS (``draft_hole``); ``revise_after``: each
    answer then revised against the filled function on both sides."""
    n = len(pieces) - 1
    marks = list(markers) if len(markers) == n else [""] * n
    fills: list[str] = []
    t0 = time.perf_counter()
    for i in range(n):
        if should_stop is not None and should_stop():
            raise Cancelled("cancelled while filling holes")
        done = fills if sequential else marks
        before = prefix + "".join(pieces[k] + done[k] for k in range(i)) + pieces[i]
        after = "".join(pieces[k] + marks[k] for k in range(i + 1, n)) + pieces[n] + suffix
        fills.append(draft_hole(engine, before, after, language=language, max_tokens=max_tokens, full=full,
                                should_stop=should_stop))
    if timings is not None:
        timings["draft"] = (time.perf_counter() - t0) * 1000
    if revise_after:
        from dg_lsp.engine.revise import revise

        t0 = time.perf_counter()
        for i in range(n):
            if not fills[i].strip():
                continue
            before = prefix + "".join(pieces[k] + fills[k] for k in range(i)) + pieces[i]
            after = "".join(pieces[k] + fills[k] for k in range(i + 1, n)) + pieces[n] + suffix
            fills[i] = revise(engine, before, fills[i], after, language=language, should_stop=should_stop).text
        if timings is not None:
            timings["revise"] = (time.perf_counter() - t0) * 1000
    return fills


def operations(engine: "Engine") -> dict[str, str]:
    """How each operation answers for this checkpoint (``dg-lsp doctor``, ``dg-lsp.status``)."""
    s = engine.settings
    fast = engine.fast is not None
    if s.draft == "answer" and fast:
        inline = "draft: the causal encoder's draft, cut where it is unsure"
    elif s.draft == "causal" and fast:
        inline = "canvas, started from the causal draft"
    else:
        inline = f"canvas ({s.canvas_init} noise, up to {s.max_steps} steps)"
    if fast and engine.layout == "fim":
        rewrite = "doubt-scored canvas: canvas pseudo-likelihood picks doubted tokens, causal likelihood decides"
    else:
        rewrite = "unchanged selection (doubt scoring needs the fast path and fill-in-the-middle tokens)"
    fill = ("draft: each hole what a completion there answers, kept only where the function still parses "
            "(dg_lsp.fill), left to right" if fill_method(engine) == "draft" else "canvas: every hole in one pass")
    return {"inline_completion": inline, "rewrite_selection": rewrite, "fill_holes": fill}
