"""Moved to ``dg_lsp.training.examples`` (installed with the server, for ``dg-lsp tune``); this name stays."""

import sys

from dg_lsp.training import examples as _module

sys.modules[__name__] = _module
