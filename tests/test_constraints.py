"""Lexical constraints: the lexer, what prefix/suffix allow, masks, the sampler hooks, end to end."""

from __future__ import annotations

import random

import pytest
import torch
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

import pytest_lsp
from conftest import EMBEDDED, TINY, server_command
from dg_lsp.context import bracket_delta, checks, new_syntax_errors, registry
from dg_lsp.context.checks import brackets_balanced, first_new_error
from dg_lsp.engine import Engine
from dg_lsp.engine.constraints import CODE, _State, analyse, for_engine, lexicon_for
from dg_lsp.engine.prompt import encode_text
from dg_lsp.engine.sampler import SamplerSettings, denoise
from dg_lsp.postprocess import finish, stop_block
from lsp_helpers import CAPABILITIES, close, error_count, open_doc


def lx(lang: str):
    spec = registry().get(lang)
    assert spec is not None
    return lexicon_for(spec)


@pytest.mark.parametrize(
    "lang, text, pushes, pops, in_code",
    [
        ("c", 'f("x\\"(", a[', "([", "", True),
        ("c", "/* (( */ g(", "(", "", True),
        ("c", "c = '(';", "", "", True),
        ("python", 'x = """a\n(""" + (', "(", "", True),
        ("python", "f(a) # (\n[", "[", "", True),
        ("python", ")] + (", "(", ")]", True),
        ("lua", "s = [[ ( ]] .. f(", "(", "", True),
        ("lua", "--[[ ( ]] g{", "{", "", True),
        ("bash", 'echo "$#" # (', "", "", False),
        ("bash", "x='(\\' (", "(", "", True),
        ("go", "s := `(\n[` + f(", "(", "", True),
        ("javascript", "s = 'a", "", "", False),
    ],
)
def test_lexer(lang: str, text: str, pushes: str, pops: str, in_code: bool) -> None:
    r = lx(lang).run(text)
    assert (r.pushes, r.pops, r.state == CODE) == (pushes, pops, in_code)


def test_lexer_flags_newline_in_one_line_string() -> None:
    assert lx("c").run('"ab\nc"', strict=True).error
    assert not lx("python").run('"""ab\nc"""', strict=True).error


@pytest.mark.parametrize(
    "prefix, suffix, closable",
    [
        ("y = foo(a, ", "\nz = 1\n", ")"),  # nothing after the cursor closes it: the middle may
        ("y = foo(a, ", ")\nz = 1\n", ")"),  # only closers left on the line: may retype them
        ("y = foo(a, ", ") + 1\nz = 1\n", ""),  # the suffix closes it
        ("def f():\n    return [x, (", "\n", ")]"),
        ("def f():\n    return [x, (", "]\n", ")"),  # ']' mismatches '(': the middle may close '('
        ("x = 1\n", "\n", ""),
    ],
)
def test_analyse_closable(prefix: str, suffix: str, closable: str) -> None:
    assert analyse(lx("python"), prefix, suffix).closable == closable


@pytest.fixture(scope="module")
def tiny() -> Engine:
    return Engine.load(str(TINY), device="cpu")


@pytest.mark.parametrize("lang", ["python", "c", "lua", "bash", "go"])
def test_masks_match_the_token_rule(tiny: Engine, lang: str) -> None:
    """The vectorized masks agree with the per-token rule on every token of the vocabulary."""
    spec = registry().get(lang)
    c = for_engine(tiny, spec, "x = foo(a, [", "\n", "single")
    string = next(i for i, s in enumerate(c.lx.states) if s[0] == "str")
    for st, rem, cap in [
        (_State(CODE, "", 0), 5, None),
        (_State(CODE, "({", 0), 2, None),
        (_State(CODE, "(", 1), 1, 1),
        (_State(CODE, "((", 0), 3, 1),
        (_State(string, "", 0), 3, None),
        (_State(CODE, "{", 2), 0, None),
    ]:
        got = c.feasible(st, rem, cap)
        want = torch.tensor([c._ok(st, t, rem, cap) for t in range(tiny.vocab_size)])
        assert torch.equal(got, want), (st, rem, cap)


def test_hook_leaves_a_feasible_argmax(tiny: Engine) -> None:
    """Whatever the logits, the argmax after the hook closes what it opens and never over-closes."""
    spec = registry().get("python")
    prefix, suffix = "def f(x):\n    return foo(x, ", "\n"
    g = torch.Generator().manual_seed(0)
    lexicon = lexicon_for(spec)
    for trial in range(20):
        c = for_engine(tiny, spec, prefix, suffix, "single")
        c.begin([], final=True)
        logits = torch.randn(1, 12, tiny.vocab_size, generator=g) * 4
        c(logits, torch.zeros(1, 12, dtype=torch.long))
        ids, _ = tiny._cut_at_eos(logits.argmax(-1)[0].tolist())
        text = tiny.decode(ids).split("\n", 1)[0]
        r = lexicon.run(text)
        assert r.pushes == "" and r.pops in ("", ")") and r.state in c.ctx.end_ok, (trial, text)


def test_denoise_numerics_unchanged_without_hooks(tiny: Engine) -> None:
    """No hooks: exactly the plain sampler; an accept hook that accepts all changes nothing either."""
    prompt = tiny.prompt("x = ", "\n")
    kv, _ = tiny.cache.prepare(prompt.ids, "cpu")
    step = tiny._step_fn(kv, len(tiny.cache.ids))
    s = SamplerSettings(max_steps=4)

    def run(**kw):
        g = torch.Generator().manual_seed(3)
        canvas = torch.randint(0, tiny.vocab_size, (1, 8), generator=g)
        return denoise(step, canvas, s, vocab_size=tiny.vocab_size, generator=g, banned=tiny.banned, **kw).canvas

    with torch.inference_mode():
        plain = run()
        assert torch.equal(plain, run(accept_hook=lambda sampled, accept: accept))
        assert torch.equal(plain, run(logits_hook=lambda logits, argmax: None))


def test_accept_hook_renoises_infeasible_tokens(tiny: Engine) -> None:
    spec = registry().get("python")
    c = for_engine(tiny, spec, "x = ", "\n", "single")
    c.begin([])
    (close_id,) = encode_text(tiny.tokenizer, ")")
    (word,) = encode_text(tiny.tokenizer, "x")
    sampled = torch.tensor([[word, close_id, word]])
    accept = torch.ones_like(sampled, dtype=torch.bool)
    assert c.accept(sampled, accept).tolist() == [[True, False, True]]


def test_bracket_balance_allows_closing_only_free_prefix_brackets() -> None:
    py = registry().get("python")
    assert brackets_balanced(py, "y = foo(a, ", "b)", "\n")
    assert not brackets_balanced(py, "y = foo(a, ", "b)", ")\n")  # the suffix closes it
    assert not brackets_balanced(py, "y = foo(a, ", "b))", "\n")
    assert not brackets_balanced(py, "y = ", "[1, 2", "\n")
    assert bracket_delta(py, "y = foo(a, b)\n") == {"(": 0, "[": 0, "{": 0}


def test_new_errors_are_matched_by_position() -> None:
    py = registry().get("python")
    # the incomplete `y = ` is replaced by another error: still a new one
    assert new_syntax_errors(py, "def f(x):\n    return x\ny = ", "DE inter_chars x", "") == 1
    assert new_syntax_errors(py, "def f(x):\n    return x\ny = ", "1", "") == 0
    # an unexpected character inside the old error is an error leaf tree-sitter does not mark has_error
    assert new_syntax_errors(py, "def f(x):\n    return x\ny = ", " ignore_nyntectminatornew;!", "") == 1
    assert first_new_error(py, "y = ", "f(1 2)", "\n") is not None


@pytest.mark.parametrize("lang", ["python", "c", "lua"])
def test_window_parse_from_the_previous_window_equals_a_fresh_parse(lang: str) -> None:
    """A text missing from the tree cache is parsed incrementally from the newest cached one
    (the previous keystroke's validation window); the tree must be the one a fresh parse gives,
    for insertions, deletions, multi-byte text and windows that gained or lost whole lines."""
    spec = registry().get(lang)
    line = {"python": "x = f(a, [1, 2]) # é\n", "c": "int x = f(a, (1 + 2)); /* é */\n", "lua": "local x = f(a, {1, 2}) -- é\n"}[lang]
    text = line * 200
    rng = random.Random(7)
    checks._TREES.clear()
    checks._parse(spec, text)
    reused = 0
    for _ in range(60):
        i = rng.randrange(len(text))
        j = min(len(text), i + rng.choice([0, 0, 1, 3, 40]))
        piece = rng.choice(["", "(", ")", "é", "\n", "y", "'", "\"", "/*", "{", "]"])
        if rng.random() < 0.2:  # the window slides: a line more or less at either end
            text = text[len(line):] + line if rng.random() < 0.5 else line + text[: -len(line)]
        else:
            text = text[:i] + piece + text[j:]
        reused += checks._edited_base(spec, text) is not None
        tree = checks._parse(spec, text)
        fresh = spec.parser().parse(text.encode("utf-8"))
        assert str(tree.root_node) == str(fresh.root_node)
        assert tree.root_node.end_byte == fresh.root_node.end_byte
    assert reused >= 40  # the incremental path is what ran


def test_block_stops_where_the_body_ends() -> None:
    assert stop_block("if a:\n    ", "x = 1\n    y = 2\nz = 3") == "x = 1\n    y = 2"
    assert stop_block("if (a) {\n  ", "f();\n}\ng();") == "f();"
    assert finish(registry().get("python"), "if a:\n    ", "x = 1\nz = 3\n", "\n", "multi").text == "x = 1"


def test_a_partial_middle_may_stay_open_but_not_close_what_is_not_open() -> None:
    """A middle the model cut where it was unsure is a start: an open string, call or statement
    stays (the user types on), where a whole middle would be cut to nothing; a closer with no
    opener is still cut off."""
    py = registry().get("python")
    prefix, suffix = "STYLE = {\n    ", "\n}\n"
    assert finish(py, prefix, '"pygments.', suffix, "single").text == ""
    assert finish(py, prefix, '"pygments.', suffix, "single", partial=True).text == '"pygments.'
    assert finish(py, "x = ", "foo(a, b", "\n", "single", partial=True).text == "foo(a, b"
    assert finish(py, "x = ", "foo(a]) + b", "\n", "single", [4, 5, 6, 7, 9, 11], partial=True).text == "foo(a"
    whole = finish(py, "x = ", "foo(1)", "\n", "single", partial=True)
    assert whole.text == "foo(1)" and not whole.reason


# ------------------------------------------------------------------ end to end, embedded model
@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(EMBEDDED)), scope="module")
async def real(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=CAPABILITIES))
    yield
    await close(lsp_client)


E2E = {
    "python": ("file:///w/e2e.py", "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n\nprint(total([1, 2]))\n"),
    "javascript": ("file:///w/e2e.js", "function add(a, b) {\n  return a + b;\n}\nconst xs = [1, 2].map((x) => add(x, 1));\n"),
    "c": ("file:///w/e2e.c", "int add(int a, int b) {\n    return a + b;\n}\nint main(void) {\n    return add(1, 2);\n}\n"),
}


@pytest.mark.parametrize("lang", sorted(E2E))
async def test_embedded_model_answers_keep_syntax_and_brackets(real: LanguageClient, lang: str) -> None:
    """Property: at every probed position, what the real server returns closes no bracket that
    is not open, and adds no syntax error unless it is a start (checked here with tree-sitter
    directly): the embedded model answers with the part of its draft it is sure of
    (``draft: "answer"``), which may leave a string, call or statement open on its line for the
    user to finish (``postprocess.finish(partial=True)``)."""
    uri, text = E2E[lang]
    spec = registry().get(lang)
    open_doc(real, uri, text, language_id=lang)
    lines = text.split("\n")
    base = error_count(text, spec.parser())
    for i, line in enumerate(lines):
        for col in sorted({len(line), line.find("(") + 1, line.find("= ") + 2} - {0, 1}):
            if col > len(line):
                continue
            res = await real.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=i, character=col),
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
                )
            )
            for item in res.items if res else []:
                r = item.range
                a = sum(len(x) + 1 for x in lines[: r.start.line]) + r.start.character
                b = sum(len(x) + 1 for x in lines[: r.end.line]) + r.end.character
                new = text[:a] + item.insert_text + text[b:]
                start = "\n" not in item.insert_text.strip()  # a start left open on its line
                assert error_count(new, spec.parser()) <= base or start, (i, col, item.insert_text)
                # what the answer closes (from the cursor on, the rest of the text as it was)
                before = bracket_delta(spec, text[:a])
                after = bracket_delta(spec, text[:a] + item.insert_text)
                assert all(after.get(k, 0) >= min(0, v) for k, v in before.items()), (i, col, item.insert_text)





PIECES = ["(", ")", "[", "]", "{", "}", "'", '"', '"""', "`", "#", "//", "/*", "*/", "--", "[[", "]]",
          "\\", "\n", " ", "x", "end", "$(", "#{", ";"]


@pytest.mark.parametrize("lang", ["python", "javascript", "c", "lua", "bash", "go", "rust"])
def test_lexing_line_by_line_equals_lexing_whole(lang: str) -> None:
    """The per-line cached lexer composes to exactly the character-by-character one."""
    import random

    from dg_lsp.engine.constraints import _run, _run_by_line

    lx = lexicon_for(registry().for_language_id(lang))
    rng = random.Random(lang)
    for _ in range(300):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 120)))
        for state in range(len(lx.states)):
            assert _run_by_line(lx, text, state) == _run(lx, text, state, False), (text, state)
