"""Language registry: grammar wheels, comment/bracket/string syntax and tree-sitter queries.

The data lives in ``grammars/registry.json`` plus one folder of query files per
language (``grammars/<name>/{scopes,holes,literals}.scm``). In an installed wheel
the folder is embedded as ``dg_lsp/_embedded/grammars``; in a development checkout
it is the repository's ``grammars/`` folder.
"""

from __future__ import annotations

import functools
import importlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import tree_sitter

QUERY_NAMES: tuple[str, ...] = ("scopes", "holes", "literals")

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../dg_lsp


def grammars_dir() -> Path:
    """The folder holding ``registry.json`` and the per-language query folders.

    Checks the copy embedded in an installed wheel first, then the development
    checkout's ``<repo>/grammars``.
    """
    embedded = _PACKAGE_DIR / "_embedded" / "grammars"
    if (embedded / "registry.json").is_file():
        return embedded
    return _PACKAGE_DIR.parent / "grammars"


@dataclass(frozen=True)
class LanguageSpec:
    """One language: how to load its grammar and what its syntax looks like."""

    name: str
    language_ids: tuple[str, ...]
    extensions: tuple[str, ...]
    module: str
    function: str
    line_comment: str | None
    block_comment: tuple[str, str] | None
    brackets: tuple[tuple[str, str], ...]
    strings: tuple[str, ...]
    hole_markers: tuple[str, ...]
    root: Path = field(default_factory=grammars_dir, compare=False, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any], root: Path) -> "LanguageSpec":
        """Build a spec from one ``registry.json`` entry."""
        block = data.get("block_comment")
        return cls(
            name=name,
            language_ids=tuple(data.get("language_ids", (name,))),
            extensions=tuple(e.lower() for e in data.get("extensions", ())),
            module=data["module"],
            function=data.get("function", "language"),
            line_comment=data.get("line_comment"),
            block_comment=(str(block[0]), str(block[1])) if block else None,
            brackets=tuple((str(o), str(c)) for o, c in data.get("brackets", ())),
            strings=tuple(data.get("strings", ())),
            hole_markers=tuple(data.get("hole_markers", ())),
            root=root,
        )

    def language(self) -> tree_sitter.Language:
        """The tree-sitter language (imports the grammar wheel on first use; cached)."""
        lang = self._cache.get("language")
        if lang is None:
            with _LOCK:
                lang = self._cache.get("language")
                if lang is None:
                    mod = importlib.import_module(self.module)
                    lang = tree_sitter.Language(getattr(mod, self.function)())
                    self._cache["language"] = lang
        return lang

    def parser(self) -> tree_sitter.Parser:
        """A new parser for this language (parsers are not shared between documents)."""
        return tree_sitter.Parser(self.language())

    def query_path(self, name: str) -> Path:
        """Where the query file ``name`` (one of QUERY_NAMES) lives."""
        return self.root / self.name / f"{name}.scm"

    def query(self, name: str) -> tree_sitter.Query | None:
        """The compiled query ``name`` (cached), or None when the file is missing or empty."""
        key = "query:" + name
        if key in self._cache:
            return self._cache[key]
        with _LOCK:
            if key not in self._cache:
                path = self.query_path(name)
                query: tree_sitter.Query | None = None
                if path.is_file():
                    source = path.read_text(encoding="utf-8")
                    if _has_patterns(source):
                        query = tree_sitter.Query(self.language(), source)
                self._cache[key] = query
        return self._cache[key]


_LOCK = threading.RLock()


def _has_patterns(source: str) -> bool:
    """Whether a query source has anything but comments and blank lines."""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(";"):
            return True
    return False


class Registry:
    """All languages of ``registry.json``, looked up by LSP languageId or file path."""

    def __init__(self, specs: list[LanguageSpec]):
        self._specs = list(specs)
        self._by_id: dict[str, LanguageSpec] = {}
        self._by_ext: dict[str, LanguageSpec] = {}
        for spec in self._specs:
            self._by_id.setdefault(spec.name.lower(), spec)
            for lid in spec.language_ids:
                self._by_id[lid.lower()] = spec
            for ext in spec.extensions:
                self._by_ext.setdefault(ext.lower(), spec)

    @classmethod
    def load(cls, root: Path | None = None) -> "Registry":
        """Read ``registry.json`` from ``root`` (default: grammars_dir())."""
        root = root or grammars_dir()
        data = json.loads((root / "registry.json").read_text(encoding="utf-8"))
        return cls([LanguageSpec.from_json(name, entry, root) for name, entry in data.items()])

    def for_language_id(self, language_id: str) -> LanguageSpec | None:
        """The language for an LSP languageId (e.g. ``typescriptreact`` -> tsx)."""
        return self._by_id.get(language_id.lower())

    def for_path(self, path: str) -> LanguageSpec | None:
        """The language for a file path or ``file://`` URI, by its extension."""
        if "://" in path:
            path = unquote(urlparse(path).path)
        name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
        # Longest matching extension first (".d.ts"-style compound extensions).
        dot = name.find(".")
        while dot != -1:
            spec = self._by_ext.get(name[dot:])
            if spec is not None:
                return spec
            dot = name.find(".", dot + 1)
        return None

    def get(self, name: str) -> LanguageSpec | None:
        """The language registered under ``name`` (e.g. ``"tsx"``)."""
        for spec in self._specs:
            if spec.name == name:
                return spec
        return None

    def all(self) -> list[LanguageSpec]:
        """Every registered language, in registry order."""
        return list(self._specs)


@functools.cache
def registry() -> Registry:
    """The process-wide registry (loaded once)."""
    return Registry.load()
