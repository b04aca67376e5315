"""Moved to ``dg_lsp.training.noise`` (installed with the server, for ``dg-lsp tune``); this name stays."""

import sys

from dg_lsp.training import noise as _module

sys.modules[__name__] = _module
