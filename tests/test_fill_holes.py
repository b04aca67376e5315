"""Fill holes with the embedded model, through the real server: each hole gets what a completion
there would answer, only when the function still parses with it; a hole no answer fills cleanly
keeps its marker, and an action that fills nothing offers no edit and says so.

``tests/data/fill_holes/shapes.py``: ``perimeter`` repeats ``area``'s first line and holds a
``pass`` where ``area``'s second line is. With the token memory (on by default) the hole is
filled with that line; without it the model's answer is a start (``width =``) that does not parse,
so the hole is left.
"""

from __future__ import annotations

import os

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient, make_test_lsp_client

from conftest import DATA, server_command
from lsp_helpers import CAPABILITIES, close, open_doc, wait_until
from test_code_actions import actions, apply_workspace_edit, pos

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
SHAPES = (DATA / "fill_holes" / "shapes.py").read_text()
HOLE = SHAPES.index("pass", SHAPES.index("def perimeter"))


def parse_errors(text: str) -> int:
    from dg_lsp.context import errors_within, registry

    return errors_within(registry().get("python"), text, 0, len(text))


async def fill(memory: str) -> tuple[types.CodeAction, LanguageClient]:
    client = make_test_lsp_client()
    await client.start_io(*server_command(None), env=OFFLINE)
    await client.initialize_session(types.InitializeParams(
        capabilities=CAPABILITIES, initialization_options={"memory": memory, "crossFile": "off"}))
    uri = "file:///work/fill/shapes.py"
    open_doc(client, uri, SHAPES, version=2)
    at = pos(SHAPES, "pass\n    return 2")
    (action,) = [a for a in await actions(client, uri, types.Range(start=at, end=at))
                 if a.kind == "refactor.rewrite.dgLsp.fillHoles"]
    assert "1 hole" in action.title
    return await client.code_action_resolve_async(action), client


async def test_a_hole_is_filled_from_the_file_and_the_function_parses():
    resolved, client = await fill("auto")
    try:
        assert resolved.edit is not None, "the hole was not filled"
        new, ranges = apply_workspace_edit(SHAPES, resolved.edit, "file:///work/fill/shapes.py", 2)
        # the one edit replaces exactly the marker, and nothing else moves
        marker = types.Range(start=pos(SHAPES, "pass\n    return 2"), end=pos(SHAPES, "pass", after=True))
        assert SHAPES.index("pass") == HOLE and ranges == [marker]
        filled = new[HOLE: len(new) - (len(SHAPES) - HOLE - 4)]
        assert new[:HOLE] == SHAPES[:HOLE] and new.endswith(SHAPES[HOLE + 4:])
        # the line area() has there, copied by the memory of the document; the file still parses
        assert filled == "height = shape.height", filled
        assert parse_errors(new) == 0
    finally:
        await close(client)


async def test_a_hole_no_answer_fills_cleanly_is_left_and_the_user_is_told():
    resolved, client = await fill("off")
    try:
        # without the memory the model's answer (a start of a line) does not parse: no edit
        assert resolved.edit is None
        await wait_until(lambda: any("no hole filled" in m.message for m in client.messages), timeout=30)
    finally:
        await close(client)


@pytest.mark.parametrize(("fill_text", "spills"), [
    ("result =", True),  # parses only as `result = ...` with the next line
    ("result = 1", False),
    ("x = 1\n    y = 2", False),  # two statements
])
def test_spills_over(fill_text: str, spills: bool):
    from dg_lsp.context import registry, spills_over

    text = (DATA / "code_actions" / "holes.py").read_text()
    marker = "# TODO: compute the mean"
    a = text.index(marker)
    new = text.replace(marker, fill_text)
    assert spills_over(registry().get("python"), new, a, a + len(fill_text)) is spills
    assert parse_errors(new) == 0  # tree-sitter accepts all three: only spills_over tells them apart


def test_errors_within_counts_only_the_region():
    text = "def f():\n    return self.\n\n\ndef g():\n    return 1\n"
    g = text.index("def g")
    assert parse_errors(text) > 0
    from dg_lsp.context import errors_within, registry

    assert errors_within(registry().get("python"), text, g, len(text)) == 0
    assert errors_within(registry().get("python"), text, 0, g) > 0
