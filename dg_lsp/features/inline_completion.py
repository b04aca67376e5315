"""textDocument/inlineCompletion: ghost text (VS Code, Neovim 0.12+)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from dg_lsp.features.common import edit_range, proposal_at

if TYPE_CHECKING:
    from dg_lsp.server import DgLanguageServer


def register(server: "DgLanguageServer") -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: "DgLanguageServer", params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        if not ls.settings.inline_completion:
            return types.InlineCompletionList(items=[])
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        got = await proposal_at(ls, params.text_document.uri, params.position, invoked=invoked)
        if got is None:
            return types.InlineCompletionList(items=[])
        snap, prop = got
        # the best first, then the alternatives (an invoked request's; editors cycle through them)
        items = [types.InlineCompletionItem(insert_text=p.text, range=edit_range(ls, snap, p))
                 for p in (prop, *prop.alternatives)]
        return types.InlineCompletionList(items=items)
