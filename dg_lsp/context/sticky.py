"""Keep the context window where it was while the user types.

``cut_context`` balances the token budget between prefix and suffix and snaps both ends to
statement boundaries; as characters are typed its choice can move by a line at either end
(the prefix grows; an unfinished line changes the parse). With the suffix-first prompt,
a suffix that moves invalidates the whole prompt cache (every token re-encoded), and a
prefix start that moves invalidates everything after the suffix. ``stabilize`` keeps the
previous request's ends when they still describe this cursor and fit the budget, so that
typing only appends to the prompt.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from dg_lsp.context.cut import Cut

# a kept end may give up at most this share of what the fresh cut would show
MIN_SHARE = 0.75


def stabilize(
    text: str,
    offset: int,
    fresh: Cut,
    previous: Cut | None,
    count_tokens: Callable[[str], int],
    budget: int,
) -> Cut:
    """``fresh``, with the previous cut's suffix end and prefix start where they still apply."""
    if previous is None:
        return fresh
    cut = fresh
    suffix = previous.suffix
    # the same suffix: the text after the cursor still starts with it (typing happens before it)
    if suffix and suffix != fresh.suffix and text.startswith(suffix, offset):
        if count_tokens(suffix) >= MIN_SHARE * count_tokens(fresh.suffix):
            cut = replace(cut, suffix=suffix, suffix_end=offset + len(suffix))
    start = previous.prefix_start
    same_line = text.startswith(previous.prefix[:80], start) if 0 <= start <= offset else False
    if start != fresh.prefix_start and same_line and (start == 0 or text[start - 1] == "\n"):
        prefix = text[start:offset]
        n = count_tokens(prefix)
        if n + count_tokens(cut.suffix) <= budget and n >= MIN_SHARE * count_tokens(fresh.prefix):
            cut = replace(cut, prefix=prefix, prefix_start=start)
    return cut
