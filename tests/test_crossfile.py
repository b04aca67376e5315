"""Cross-file context: snippets of other files at the head of the prompt (dg_lsp/context/crossfile.py),
the same for training and serving, and through the real server (showContext, completions)."""

from __future__ import annotations

import random
import shutil

from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import DATA, TINY
from dg_lsp.context import crossfile
from lsp_helpers import open_doc

FILES = DATA / "crossfile"
UPLOAD = (FILES / "upload.py").read_text()


def test_rank_prefers_the_window_that_shares_names():
    q = crossfile.query(UPLOAD.rsplit("return", 1)[0], "")
    ranked = crossfile.rank(q, [("sizes.py", (FILES / "sizes.py").read_text()), ("colors.py", (FILES / "colors.py").read_text())])
    assert ranked and ranked[0].path == "sizes.py" and "def parse_size" in ranked[0].text
    assert all(r.path != "colors.py" for r in ranked)  # nothing in common with the cursor
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)


def test_fit_keeps_the_budget_and_render_puts_the_best_last():
    snippets = [crossfile.Snippet("a.py", 0, "x = parse_size(a)\n" * 4, 0.5), crossfile.Snippet("b.py", 0, "y = 1", 0.2)]
    count = lambda t: len(t.split())  # noqa: E731
    one = crossfile.fit(snippets, count, count(crossfile.render(snippets[:1])))
    assert one == snippets[:1]
    both = crossfile.fit(snippets, count, 1000)
    text = crossfile.render(both)
    assert text.index("b.py") < text.index("a.py") and text.startswith(crossfile.HEADER)
    assert crossfile.context_for("", "", [("a.py", "anything")], count, 0) == ("", [])


def test_retrieved_line_finds_the_rest_of_a_line_the_cursor_starts():
    src = [("a.py", "    total = parse_size(text, unit)\n    return total\n")]
    assert crossfile.retrieved_line("def f(text):\n    total = parse_", "\n", src) == "size(text, unit)"
    # a whole-line hole: the line after the same previous line elsewhere
    assert crossfile.retrieved_line("def g():\n    total = parse_size(text, unit)\n    ", "\n", src) == "return total"
    # the cursor's own previous line is no evidence; too short a partial or anchor gives nothing
    assert crossfile.retrieved_line("x = compute_all()\n", "\n", []) is None
    assert crossfile.retrieved_line("    to", "\n", src) is None
    assert crossfile.retrieved_line("if x:\n", "", [("b.py", "if x:\n    y\n")]) is None
    # the most frequent candidate wins; the text already after the cursor is not a candidate
    many = [("b.py", "v = load(a)\nv = load(b)\nv = load(b)\n")]
    assert crossfile.retrieved_line("v = load(", "\n", many) == "b)"
    assert crossfile.retrieved_line("v = load(", "b)\n", many) == "a)"


def test_training_and_serving_build_the_same_prompt():
    """A training example with cross-file sources has exactly the ids the engine builds for the
    same prefix, suffix and snippets (one prompt builder)."""
    from dg_lsp.engine import Engine
    from dg_lsp.training.examples import Tok, make_example

    tok = Tok(TINY)
    eng = Engine.load(str(TINY), device="cpu", threads=1)
    prefix, suffix = UPLOAD.rsplit("return", 1)[0] + "return ", "\n"
    sources = [("sizes.py", (FILES / "sizes.py").read_text())]
    ex = make_example(tok, prefix, "data", suffix, 32, 128, 64, sources=sources, cross_file_tokens=96)
    assert ex.context.startswith(crossfile.HEADER + "sizes.py") and "parse_size" in ex.context
    assert ex.prompt_ids == eng.prompt(ex.prefix, ex.suffix, "python", ex.context).ids
    plain = make_example(tok, prefix, "data", suffix, 32, 128, 64)
    assert plain.context == "" and plain.prompt_ids == eng.prompt(plain.prefix, plain.suffix, "python").ids


def test_sampler_draws_snippets_from_the_same_package():
    from dg_lsp.training.examples import ExampleSampler, Tok

    recs = [{"source": "pkg", "path": p.name, "lang": "python", "text": p.read_text()} for p in sorted(FILES.glob("*.py"))]
    recs.append({"source": "other", "path": "far.py", "lang": "python", "text": "def far_away():\n    return 42\n" * 5})
    tok = Tok(TINY)
    with_ctx = ExampleSampler(recs, tok, 32, cross_file=1.0, cross_file_tokens=96)
    headers = set()
    for i in range(40):
        ex = with_ctx.sample(random.Random(i))
        headers |= {line for line in ex.context.split("\n") if line.startswith(crossfile.HEADER)}
    assert headers and not any("far.py" in h for h in headers)
    assert all(ExampleSampler(recs, tok, 32).sample(random.Random(i)).context == "" for i in range(10))


def test_cross_file_batches_are_all_or_none_per_step():
    """--cross-file-batches: the share is of whole steps; every row of a step (and of a rank's
    slice of it) is asked for snippets or none is, and about the asked share of steps is."""
    from dg_lsp.training.examples import ExampleSampler, Tok

    recs = [{"source": "pkg", "path": p.name, "lang": "python", "text": p.read_text()} for p in sorted(FILES.glob("*.py"))]
    tok = Tok(TINY)
    sampler = ExampleSampler(recs, tok, 32, cross_file=0.5, cross_file_tokens=96, cross_file_batches=True)
    asked: list = []
    draw = sampler.sample
    sampler.sample = lambda rng, cross=None: (asked.append(cross), draw(rng, cross))[1]
    steps, with_ctx, without_ctx = [], 0, 0
    for step in range(24):
        asked.clear()
        rows = sampler.batch(0, step, 6)
        assert len(set(asked)) == 1 and asked[0] is not None, asked  # one decision per step
        decided = asked[0]
        asked.clear()
        sampler.batch(0, step, 3, start=3)  # a data-parallel rank's slice of the same step agrees
        assert set(asked) == {decided}
        steps.append(decided)
        n = sum(bool(ex.context) for ex in rows)
        with_ctx += n if decided else 0
        without_ctx += 0 if decided else n
    assert 4 <= sum(steps) <= 20, steps
    assert with_ctx > 0 and without_ctx == 0


async def test_server_shows_and_uses_snippets(client: LanguageClient, tmp_path):
    for f in FILES.glob("*.py"):
        shutil.copy(f, tmp_path / f.name)
    uri = (tmp_path / "upload.py").as_uri()
    open_doc(client, uri, UPLOAD)
    pos = types.Position(line=7, character=len("    return "))
    ctx_cmd = types.ExecuteCommandParams(command="dg-lsp.showContext", arguments=[uri, {"line": 7, "character": 11}])
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"dgLsp": {"crossFile": "off"}}))
    off = await client.workspace_execute_command_async(ctx_cmd)
    assert off["crossFile"] == []
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"dgLsp": {"crossFile": "on", "crossFileTokens": 128, "minConfidence": 0}}))
    on = await client.workspace_execute_command_async(ctx_cmd)
    paths = [s["path"] for s in on["crossFile"]]
    assert paths and paths[0] == "sizes.py", paths  # a neighbour on disk, never opened
    assert "colors.py" not in paths
    res = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
    assert isinstance(res, types.InlineCompletionList)
    for item in res.items:
        assert item.range.start == pos
    st = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="dg-lsp.status"))
    assert st["loaded"]
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"dgLsp": {}}))
