"""LSP features, one module each; ``register_all`` wires them into a server."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dg_lsp.server import DgLanguageServer


def register_all(server: "DgLanguageServer") -> None:
    from dg_lsp.features import code_actions, completion, documents, inline_completion, lifecycle, memory, tune

    for module in (lifecycle, documents, inline_completion, completion, code_actions, tune, memory):
        module.register(server)
