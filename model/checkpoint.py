"""Moved to ``dg_lsp.training.checkpoint`` (installed with the server, for ``dg-lsp tune``); this name stays."""

import sys

from dg_lsp.training import checkpoint as _module

sys.modules[__name__] = _module
