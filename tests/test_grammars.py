"""The grammar registry and its tree-sitter queries (grammars/)."""

from __future__ import annotations

import json

import pytest
import tree_sitter

from dg_lsp.context import QUERY_NAMES, SyntaxDocument, find_holes, grammars_dir, registry
from dg_lsp.context.languages import LanguageSpec, Registry

SPECS = registry().all()
SPEC_IDS = [s.name for s in SPECS]

REQUIRED_LANGUAGES = {
    "python", "javascript", "typescript", "tsx", "go", "rust", "c", "cpp", "java", "lua", "bash", "json",
}

# Capture names each query may use (names starting with "_" are private helpers).
ALLOWED_CAPTURES = {
    "scopes": {"scope.function", "scope.class", "scope.block"},
    "holes": {"hole"},
    "literals": {"string", "comment", "interpolation"},
}

# language -> (source, expected hole texts in order)
HOLE_SAMPLES: dict[str, tuple[str, list[str]]] = {
    "python": (
        "def f():\n    ...\n\ndef g():\n    pass\n\n# a note\ndef h():\n"
        "    # TODO: implement\n    raise NotImplementedError()\n",
        ["...", "pass", "# TODO: implement", "raise NotImplementedError()"],
    ),
    "javascript": (
        'function f() {\n  // just a note\n  // TODO implement\n  throw new Error("TODO");\n}\n',
        ["// TODO implement", 'throw new Error("TODO");'],
    ),
    "typescript": (
        'function f(): number {\n  /* TODO */\n  throw new Error("not implemented");\n}\n',
        ["/* TODO */", 'throw new Error("not implemented");'],
    ),
    "tsx": (
        'export function App(): JSX.Element {\n  // TODO: render\n  throw new Error("TODO");\n}\n',
        ["// TODO: render", 'throw new Error("TODO");'],
    ),
    "go": (
        'package p\n\nfunc f() int {\n\t// TODO\n\tpanic("TODO")\n}\n\nfunc g() { panic("boom") }\n',
        ["// TODO", 'panic("TODO")'],
    ),
    "rust": (
        'fn f() -> i32 {\n    todo!()\n}\n\nfn g() {\n    // TODO: later\n    unimplemented!("x")\n}\n'
        'fn h() { println!("hi") }\n',
        ["todo!()", "// TODO: later", 'unimplemented!("x")'],
    ),
    "c": (
        "int f(void) {\n    /* TODO */\n    return 0;\n}\n/* fine */\n",
        ["/* TODO */"],
    ),
    "cpp": (
        'int f() {\n    // TODO\n    throw std::logic_error("TODO");\n}\n',
        ["// TODO", 'throw std::logic_error("TODO");'],
    ),
    "java": (
        "class A {\n    int f() {\n        // TODO\n        throw new UnsupportedOperationException();\n"
        "    }\n    void g() { throw new IllegalStateException(); }\n}\n",
        ["// TODO", "throw new UnsupportedOperationException();"],
    ),
    "lua": (
        'local function f()\n  -- TODO\n  error("TODO")\nend\nerror("real error")\n',
        ["-- TODO", 'error("TODO")'],
    ),
    "bash": (
        "f() {\n  # TODO: write\n  :\n}\n# ordinary comment\n",
        ["# TODO: write"],
    ),
    "json": ('{"a": [1, 2], "b": "TODO"}\n', []),
}

# language -> (source, a string literal's text, a comment's text or None)
LITERAL_SAMPLES: dict[str, tuple[str, str, str | None]] = {
    "python": ('x = "s"  # c\n', '"s"', "# c"),
    "javascript": ("let x = 's'; // c\n", "'s'", "// c"),
    "typescript": ("let x: string = 's'; /* c */\n", "'s'", "/* c */"),
    "tsx": ('let x = "s"; // c\n', '"s"', "// c"),
    "go": ('package p\n\nvar x = "s" // c\n', '"s"', "// c"),
    "rust": ('fn f() { let x = "s"; } // c\n', '"s"', "// c"),
    "c": ('char *x = "s"; /* c */\n', '"s"', "/* c */"),
    "cpp": ('auto x = "s"; // c\n', '"s"', "// c"),
    "java": ('class A { String x = "s"; // c\n}\n', '"s"', "// c"),
    "lua": ('local x = "s" -- c\n', '"s"', "-- c"),
    "bash": ('x="s" # c\n', '"s"', "# c"),
    "json": ('{"k": "s"}\n', '"s"', None),
}


def test_required_languages_registered() -> None:
    assert REQUIRED_LANGUAGES <= {s.name for s in SPECS}


def test_every_language_folder_is_registered() -> None:
    folders = {p.name for p in grammars_dir().iterdir() if p.is_dir()}
    assert folders == {s.name for s in SPECS}


def test_registry_json_fields() -> None:
    data = json.loads((grammars_dir() / "registry.json").read_text(encoding="utf-8"))
    fields = {
        "language_ids", "extensions", "module", "function", "line_comment", "block_comment",
        "brackets", "strings", "hole_markers",
    }
    for name, entry in data.items():
        assert fields <= set(entry), name
        assert entry["language_ids"], name
        assert all(ext.startswith(".") for ext in entry["extensions"]), name
        assert entry["block_comment"] is None or len(entry["block_comment"]) == 2, name
        assert all(len(pair) == 2 for pair in entry["brackets"]), name


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_language_loads(spec: LanguageSpec) -> None:
    lang = spec.language()
    assert isinstance(lang, tree_sitter.Language)
    assert spec.language() is lang  # cached
    parser = spec.parser()
    assert parser is not spec.parser()  # a new parser each call
    source, _, _ = LITERAL_SAMPLES[spec.name]
    tree = parser.parse(source.encode())
    assert not tree.root_node.has_error, str(tree.root_node)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize("query_name", QUERY_NAMES)
def test_query_compiles(spec: LanguageSpec, query_name: str) -> None:
    path = spec.query_path(query_name)
    assert path.is_file(), f"missing {path}"
    source = path.read_text(encoding="utf-8")
    query = tree_sitter.Query(spec.language(), source)  # raises on a bad node type or field
    names = {query.capture_name(i) for i in range(query.capture_count)}
    public = {n for n in names if not n.startswith("_")}
    assert public <= ALLOWED_CAPTURES[query_name], public - ALLOWED_CAPTURES[query_name]
    if query_name in ("scopes", "literals"):
        assert public, f"{path} captures nothing"
    cached = spec.query(query_name)
    assert cached is spec.query(query_name)
    if spec.name != "json" or query_name != "holes":
        assert cached is not None


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_holes_sample(spec: LanguageSpec) -> None:
    source, expected = HOLE_SAMPLES[spec.name]
    doc = SyntaxDocument(spec, source)
    assert not doc.tree.root_node.has_error, str(doc.tree.root_node)
    holes = find_holes(doc, 0, len(source))
    assert [source[s:e] for s, e in holes] == expected


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_literals_sample(spec: LanguageSpec) -> None:
    source, string, comment = LITERAL_SAMPLES[spec.name]
    query = spec.query("literals")
    assert query is not None
    doc = SyntaxDocument(spec, source)
    caps = tree_sitter.QueryCursor(query).captures(doc.tree.root_node)
    texts = {name: [source[doc.offset_of(n.start_byte) : doc.offset_of(n.end_byte)] for n in nodes] for name, nodes in caps.items()}
    assert string in texts.get("string", [])
    if comment is not None:
        assert comment in texts.get("comment", [])


def test_lookup_by_language_id_and_path() -> None:
    reg = registry()
    assert reg.for_language_id("typescriptreact").name == "tsx"  # type: ignore[union-attr]
    assert reg.for_language_id("typescript").name == "typescript"  # type: ignore[union-attr]
    for lid in ("shellscript", "sh", "bash"):
        assert reg.for_language_id(lid).name == "bash"  # type: ignore[union-attr]
    assert reg.for_language_id("c").name == "c"  # type: ignore[union-attr]
    assert reg.for_language_id("cpp").name == "cpp"  # type: ignore[union-attr]
    assert reg.for_language_id("cobol") is None
    assert reg.for_path("src/app.tsx").name == "tsx"  # type: ignore[union-attr]
    assert reg.for_path("/x/y/lib.RS").name == "rust"  # type: ignore[union-attr]
    assert reg.for_path("file:///home/me/my%20proj/main.go").name == "go"  # type: ignore[union-attr]
    assert reg.for_path("C:\\code\\a.hpp").name == "cpp"  # type: ignore[union-attr]
    assert reg.for_path("Makefile") is None
    assert reg.for_path("notes.txt") is None
    assert registry() is reg


def test_registry_load_from_other_root(tmp_path) -> None:
    (tmp_path / "registry.json").write_text(
        json.dumps({"python": {"language_ids": ["python"], "extensions": [".py"], "module": "tree_sitter_python"}})
    )
    reg = Registry.load(tmp_path)
    spec = reg.for_path("a.py")
    assert spec is not None and spec.function == "language"
    assert spec.query("scopes") is None  # no query files there
