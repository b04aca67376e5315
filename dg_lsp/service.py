"""One completion from a document and a cursor: cut, infill, post-process.

Shared by the LSP features and ``dg-lsp complete``. Runs on the worker thread.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from dg_lsp.context import LanguageSpec, SyntaxDocument, completion_mode, cut_context
from dg_lsp.engine import Engine, InfillResult
from dg_lsp.postprocess import finish
from dg_lsp.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Proposal:
    text: str  # what to insert at the cursor ("" = nothing to propose)
    offset: int  # cursor offset in the document (code points)
    replace: int  # code points after the cursor that ``text`` replaces
    mode: str
    reason: str = ""
    result: InfillResult | None = None
    timings: dict[str, float] = field(default_factory=dict)


def propose(
    engine: Engine,
    spec: LanguageSpec,
    doc: SyntaxDocument,
    offset: int,
    settings: Settings,
    *,
    invoked: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> Proposal:
    t0 = time.perf_counter()
    mode = completion_mode(doc, offset, invoked=invoked)
    if mode == "multi" and not settings.multiline:
        mode = "single"
    t_mode = time.perf_counter()
    if mode == "none":
        return Proposal("", offset, 0, mode, reason="no completion at this position")
    c = cut_context(doc, offset, engine.count_tokens, settings.context_tokens, invoked=invoked)
    t_cut = time.perf_counter()
    max_tokens = settings.max_tokens if mode == "multi" else min(settings.max_tokens, engine.canvas_length)
    res = engine.infill(
        c.prefix,
        c.suffix,
        max_new_tokens=max_tokens,
        steps=settings.denoising_steps or None,
        seed=settings.seed,
        language=spec.name,
        should_stop=should_stop,
    )
    t_inf = time.perf_counter()
    done = finish(spec, c.prefix, res.text, c.suffix, mode)
    t_end = time.perf_counter()
    timings = {
        "parse_mode": (t_mode - t0) * 1000,
        "cut": (t_cut - t_mode) * 1000,
        **{f"engine_{k}": v for k, v in res.timings.items()},
        "postprocess": (t_end - t_inf) * 1000,
        "total": (t_end - t0) * 1000,
    }
    log.debug("completion mode=%s raw=%r final=%r reason=%s timings=%s", mode, res.text, done.text, done.reason, timings)
    return Proposal(done.text, offset, done.replace, mode, done.reason, res, timings)
