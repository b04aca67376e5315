"""Moved to ``dg_lsp.training.lean`` (installed with the server, for ``dg-lsp tune``); this name stays."""

import sys

from dg_lsp.training import lean as _module

sys.modules[__name__] = _module
