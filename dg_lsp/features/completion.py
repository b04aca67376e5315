"""textDocument/completion: the infill as a completion item (Helix, Neovim 0.11).

The item's ``textEdit`` starts at the cursor (so no client filters it away) and ends
after any closing characters it replaces; ``newText`` may span several lines.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lsprotocol import types

from dg_lsp.features.common import edit_range, proposal_at

if TYPE_CHECKING:
    from dg_lsp.server import DgLanguageServer

LABEL_CHARS = 60
_WORD = re.compile(r"[\w$]*$")


def word_before(text: str, offset: int) -> str:
    """The identifier characters right before the cursor: clients filter items with it."""
    return _WORD.search(text[max(0, offset - 100) : offset]).group(0)


def _documentation(ls: "DgLanguageServer", language: str, text: str) -> types.MarkupContent | str:
    """The infill as a code block where the client renders Markdown, else as a plain string."""
    td = ls.client_capabilities.text_document
    item = td.completion.completion_item if td and td.completion else None
    formats = (item.documentation_format or []) if item else []
    if types.MarkupKind.Markdown in formats:
        return types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```{language}\n{text}\n```")
    return text


def register(server: "DgLanguageServer") -> None:
    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[".", "(", "[", "{", ",", ":", "=", " "], resolve_provider=False),
    )
    async def completion(ls: "DgLanguageServer", params: types.CompletionParams) -> types.CompletionList:
        if not ls.settings.completion_items:
            return types.CompletionList(is_incomplete=False, items=[])
        invoked = params.context is None or params.context.trigger_kind == types.CompletionTriggerKind.Invoked
        got = await proposal_at(ls, params.text_document.uri, params.position, invoked=invoked)
        if got is None:
            return types.CompletionList(is_incomplete=True, items=[])
        snap, prop = got
        items = [_item(ls, snap, p, rank) for rank, p in enumerate((prop, *prop.alternatives))]
        # incomplete: the next keystroke asks again (the model sees the new prefix)
        return types.CompletionList(is_incomplete=True, items=items)


def _item(ls: "DgLanguageServer", snap, prop, rank: int) -> types.CompletionItem:
    """One candidate as a completion item; ``rank`` 0 (the best) is preselected."""
    first = prop.text.split("\n", 1)[0].strip() or prop.text.strip()
    label = first if len(first) <= LABEL_CHARS else first[: LABEL_CHARS - 1] + "…"
    lines = prop.text.count("\n") + 1
    return types.CompletionItem(
        label=label,
        kind=types.CompletionItemKind.Snippet if lines > 1 else types.CompletionItemKind.Text,
        detail=f"dg-lsp infill ({lines} line{'s' if lines > 1 else ''}, confidence {prop.confidence:.2f})",
        documentation=_documentation(ls, snap.spec.name, prop.text),
        filter_text=word_before(snap.text, prop.offset) + first,
        sort_text=str(rank),
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=edit_range(ls, snap, prop), new_text=prop.text),
        preselect=rank == 0,
    )
