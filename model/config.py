"""Moved to ``dg_lsp.training.config`` (installed with the server, for ``dg-lsp tune``); this name stays."""

import sys

from dg_lsp.training import config as _module

sys.modules[__name__] = _module
