"""Syntax-aware context for completions: languages, parsed documents, cuts and checks.

Offsets in this package are Python ``str`` indices (code points) into the document
text; conversion to the UTF-8 bytes that tree-sitter uses happens internally.
"""

from .checks import bracket_delta, brackets_balanced, errors_within, new_syntax_errors, spills_over
from .cut import Cut, Mode, completion_mode, cut_context
from .document import SyntaxDocument
from .languages import QUERY_NAMES, LanguageSpec, Registry, grammars_dir, registry
from .syntax import enclosing_scope, find_holes, literal_at

__all__ = [
    "QUERY_NAMES",
    "LanguageSpec",
    "Registry",
    "grammars_dir",
    "registry",
    "SyntaxDocument",
    "Mode",
    "Cut",
    "completion_mode",
    "cut_context",
    "enclosing_scope",
    "find_holes",
    "literal_at",
    "errors_within",
    "spills_over",
    "new_syntax_errors",
    "bracket_delta",
    "brackets_balanced",
]
