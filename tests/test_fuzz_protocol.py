"""Protocol fuzzing over raw stdio against the real server (hypothesis, derandomized).

One server process serves the whole module. After every case a valid request must still
be answered, and the strict reader in ``raw_rpc`` checks that nothing but framed JSON-RPC
2.0 reached stdout. Cases tried are counted per class and written to
``.cache/tests/fuzz-counts.json`` (docs/reliability.md quotes them).
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import CACHE, TINY
from raw_rpc import RawServer, completion_params, frame, inline_params

COUNTS: Counter[str] = Counter()
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BASE = "file:///fuzz/base.py"
BASE_TEXT = "def f(x):\n    return x\n\ny = \n"
KNOWN = {"initialize", "initialized", "shutdown", "exit", "textDocument/inlineCompletion",
         "textDocument/completion", "textDocument/codeAction", "codeAction/resolve", "workspace/executeCommand",
         "textDocument/didOpen", "textDocument/didChange", "textDocument/didClose", "textDocument/didSave",
         "workspace/didChangeConfiguration", "$/cancelRequest", "$/setTrace", "window/workDoneProgress/cancel",
         "workspace/didChangeWorkspaceFolders", "notebookDocument/didOpen", "notebookDocument/didChange",
         "notebookDocument/didClose", "notebookDocument/didSave", "textDocument/willSave"}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def srv():
    s = RawServer(TINY)
    assert "result" in s.initialize({"maxTokens": 8})
    s.open(BASE, BASE_TEXT)
    yield s
    violations, alive = list(s.violations), s.alive
    s.close()
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "fuzz-counts.json").write_text(json.dumps(dict(sorted(COUNTS.items())), indent=1))
    print("\nfuzz cases tried:", dict(sorted(COUNTS.items())), "total", sum(COUNTS.values()))
    assert alive, "the server died"
    assert not violations, violations[:5]


def still_serving(s: RawServer) -> None:
    """A valid request is answered with a result, and stdout stayed clean."""
    r = s.request("textDocument/inlineCompletion", inline_params(BASE, 3, 4), timeout=60)
    assert isinstance(r.get("result", {}).get("items"), list), r
    assert s.alive and not s.violations, s.violations[:3]


def no_traceback(msg: dict) -> None:
    assert "Traceback" not in json.dumps(msg) and "traceback" not in json.dumps(msg.get("error", {}))


def parses(body: bytes) -> bool:
    try:
        json.loads(body)
        return True
    except (ValueError, RecursionError):
        return False


def null_error(s: RawServer, before: int) -> int:
    """The code of the one id-null error answered since ``before``."""
    assert len(s.null_id) == before + 1, s.null_id[before:]
    no_traceback(s.null_id[-1])
    return s.null_id[-1]["error"]["code"]


# ---------------------------------------------------------------------------------- framing
VALID = json.dumps({"jsonrpc": "2.0", "id": "v", "method": "workspace/executeCommand",
                    "params": {"command": "dg-lsp.status", "arguments": []}}).encode()


@FUZZ
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(str.encode)
       | st.tuples(st.integers(1, len(VALID) - 1), st.binary(min_size=1, max_size=3)).map(
           lambda t: VALID[: t[0]] + t[1] + VALID[t[0] + 1 :]))
def test_malformed_json_is_a_parse_error(srv: RawServer, body: bytes):
    assume(not parses(body))
    COUNTS["malformed JSON body"] += 1
    before = len(srv.null_id)
    srv.send_bytes(frame(body))
    still_serving(srv)
    assert null_error(srv, before) == -32700


@FUZZ
@given(value=JSON)
def test_json_that_is_not_jsonrpc_is_an_invalid_request(srv: RawServer, value):
    assume(not (isinstance(value, dict) and "jsonrpc" in value))
    COUNTS["JSON that is not JSON-RPC"] += 1
    before = len(srv.null_id)
    srv.send(value)
    has_id = isinstance(value, dict) and isinstance(value.get("id"), (int, str)) and not isinstance(value.get("id"), bool)
    if has_id:
        r = srv.response(value["id"], timeout=30)
        assert r["error"]["code"] == -32600
        still_serving(srv)
    else:
        still_serving(srv)
        assert null_error(srv, before) == -32600


@FUZZ
@given(delta=st.integers(-len(VALID) + 1, 40).filter(bool))
def test_wrong_content_length(srv: RawServer, delta: int):
    """Too short: the cut body is a ParseError and the next message is served. Too long: the
    body swallows the start of the next frame (a ParseError; that frame is lost, as it must
    be) and the server is back in step at the frame after it."""
    COUNTS["wrong Content-Length"] += 1
    before = len(srv.null_id)
    srv.send_bytes(b"Content-Length: %d\r\n\r\n" % (len(VALID) + delta) + VALID)
    if delta > 0:
        srv.request_async("workspace/executeCommand", {"command": "dg-lsp.status", "arguments": []}, msg_id="eaten")
    still_serving(srv)
    assert null_error(srv, before) == -32700
    srv.responses.pop(json.dumps("eaten"), None)
    srv.responses.pop(json.dumps("v"), None)


@pytest.mark.parametrize("header", [
    b"Content-Length: 99999999999999\r\n\r\n", b"Content-Length: -5\r\n\r\n", b"Content-Length: abc\r\n\r\n",
    b"Content-Length: 0\r\n\r\n", b"X-Junk: 1\r\n\r\n", b"\r\n\r\n\r\n", b"garbage line\n",
])
def test_bad_headers_then_resync(srv: RawServer, header: bytes):
    COUNTS["bad header"] += 1
    srv.send_bytes(header + VALID)
    srv.responses.pop(json.dumps("v"), None)
    still_serving(srv)


# ---------------------------------------------------------------------------------- requests
def _valid_params(method: str) -> dict:
    rng = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 4}}
    return {
        "textDocument/inlineCompletion": inline_params(BASE, 3, 4),
        "textDocument/completion": completion_params(BASE, 3, 4),
        "textDocument/codeAction": {"textDocument": {"uri": BASE}, "range": rng, "context": {"diagnostics": []}},
        "codeAction/resolve": {"title": "Rewrite selection (dg-lsp)", "data": {"uri": BASE, "kind": "rewrite", "start": 0, "end": 4}},
        "workspace/executeCommand": {"command": "dg-lsp.showContext", "arguments": [BASE, {"line": 3, "character": 4}]},
    }[method]


def _mutate(data, params):
    """Replace, delete or add one field somewhere in ``params``."""
    path, node = [], params
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append(key)
        node = node[key]
    if not path:
        return data.draw(JSON)
    parent = params
    for k in path[:-1]:
        parent = parent[k]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[data.draw(st.text(max_size=8))] = data.draw(JSON)
    else:
        parent[path[-1]] = data.draw(JSON)
    return params


ALLOWED = {  # error codes a request may get besides InvalidParams; never InternalError (-32603)
    "codeAction/resolve": {-32801, -32803},  # ContentModified, RequestFailed
}


@FUZZ
@given(data=st.data(), method=st.sampled_from(["textDocument/inlineCompletion", "textDocument/completion",
                                               "textDocument/codeAction", "codeAction/resolve", "workspace/executeCommand"]))
def test_wrong_param_types(srv: RawServer, data, method: str):
    COUNTS["wrong or missing params"] += 1
    params = _mutate(data, _valid_params(method))
    r = srv.request(method, params, timeout=60)
    no_traceback(r)
    if "error" in r:
        assert r["error"]["code"] in {-32602} | ALLOWED.get(method, set()), (params, r)
    still_serving(srv)


@FUZZ
@given(method=st.text(max_size=30), params=st.none() | JSON, notify=st.booleans(), with_params=st.booleans())
def test_unknown_methods(srv: RawServer, method: str, params, notify: bool, with_params: bool):
    assume(method not in KNOWN and not method.startswith("dg-lsp"))
    COUNTS["unknown method"] += 1
    msg = {"jsonrpc": "2.0", "method": method, **({"params": params} if with_params else {})}
    if notify:
        srv.send(msg)
    else:
        srv.send({**msg, "id": "unknown"})
        r = srv.response("unknown", timeout=30)
        assert r["error"]["code"] == -32601, r
    still_serving(srv)


# ---------------------------------------------------------------------------------- documents
_BREAK = re.compile(r"\r\n|\r|\n")


def lsp_lines(text: str) -> list[str]:
    """Lines as LSP counts them (only \\n, \\r\\n, \\r end a line), without their breaks."""
    return _BREAK.split(text)


def units(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def offset_at(text: str, line: int, character: int) -> int:
    """Code-point offset of an LSP UTF-16 position, independent of the server."""
    starts = [0] + [m.end() for m in _BREAK.finditer(text)]
    row, u, i = lsp_lines(text)[line], 0, 0
    while u < character:
        u += 2 if ord(row[i]) > 0xFFFF else 1
        i += 1
    return starts[line] + i


def end_position(text: str) -> tuple[int, int]:
    lines = lsp_lines(text)
    return len(lines) - 1, units(lines[-1])


def server_view(s: RawServer, uri: str, text: str) -> None:
    """The server holds exactly ``text``: the offset of the end position is its length and the
    context before it is the end of ``text``."""
    line, char = end_position(text)
    r = s.command("dg-lsp.showContext", uri, {"line": line, "character": char}, timeout=60)
    ctx = r["result"]
    assert ctx["offset"] == len(text), (ctx["offset"], len(text))
    assert text.endswith(ctx["prefix"]) and ctx["suffix"] == ""


CODE_CHARS = st.sampled_from(list("abcxyz_019 ()[]{}:=.,'\"#+-\t") + ["\n", "\n", "\n    ", "\r\n", "\r", "\x0c",
                             "\u2028", "\x85", "é", "中", "😀", "𝔘"])
CODE = st.lists(CODE_CHARS, max_size=80).map("".join)
_n = iter(range(10**9))


def fresh_uri(ext: str = "py") -> str:
    return f"file:///fuzz/doc{next(_n)}.{ext}"


@st.composite
def edit_in(draw, text: str):
    """A valid incremental edit of ``text``: (range as LSP positions, offsets, new text)."""
    lines = lsp_lines(text)

    def pos():
        line = draw(st.integers(0, len(lines) - 1))
        row = lines[line]
        k = draw(st.integers(0, len(row)))  # a code-point boundary
        return line, units(row[:k])

    a, b = sorted([pos(), pos()])
    return a, b, draw(CODE)


@FUZZ
@given(data=st.data(), first=CODE, versions=st.lists(st.integers(-3, 6), min_size=1, max_size=6))
def test_incremental_edits_and_versions_out_of_order(srv: RawServer, data, first: str, versions: list[int]):
    """Edits with any line breaks (\\r, \\x0c, U+2028 ...), astral characters and versions in any
    order: the server's text is the text the client has."""
    COUNTS["incremental edits, versions out of order"] += 1
    uri, text = fresh_uri(), first
    srv.open(uri, text, version=versions[0])
    for v in versions:
        (l0, c0), (l1, c1), new = data.draw(edit_in(text))
        a, b = offset_at(text, l0, c0), offset_at(text, l1, c1)
        srv.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": v}, "contentChanges": [
            {"range": {"start": {"line": l0, "character": c0}, "end": {"line": l1, "character": c1}}, "text": new}]})
        text = text[:a] + new + text[b:]
    server_view(srv, uri, text)
    srv.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


@FUZZ
@given(uri=st.text(max_size=30).map(lambda t: "file:///never/" + t), close=st.booleans())
def test_change_or_close_before_open(srv: RawServer, uri: str, close: bool):
    COUNTS["didChange/didClose before didOpen"] += 1
    if close:
        srv.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    else:
        srv.change(uri, 2, "x = 1\n")
    r = srv.request("textDocument/inlineCompletion", inline_params(uri, 0, 0), timeout=30)
    assert r["error"]["code"] == -32602  # still not open: nothing was made up
    assert not any(n["method"] == "window/showMessage" for n in srv.notes), srv.notes[-1:]
    still_serving(srv)


SURROGATE_DOC = "s = '😀😀'\nt = 𝔘\n"


@FUZZ
@given(line=st.integers(-2, 5), character=st.integers(-2, 14),
       method=st.sampled_from(["textDocument/inlineCompletion", "textDocument/completion"]))
def test_positions_beyond_the_document_or_inside_a_surrogate_pair(srv: RawServer, line, character, method):
    COUNTS["positions beyond the document / in a surrogate pair"] += 1
    uri = "file:///fuzz/surrogates.py"
    srv.open(uri, SURROGATE_DOC)
    params = inline_params(uri, line, character) if "inline" in method else completion_params(uri, line, character)
    r = srv.request(method, params, timeout=60)
    lines = lsp_lines(SURROGATE_DOC)
    inside = 0 <= line < len(lines) and 0 <= character <= units(lines[line])
    if not inside:
        assert r["error"]["code"] == -32602, r
        return
    assert "result" in r, r
    items = r["result"]["items"] if r["result"] else []
    for item in items:
        rng = item.get("range") or item["textEdit"]["range"]
        for p in (rng["start"], rng["end"]):  # never a position that splits a surrogate pair
            row = lines[p["line"]]
            assert p["character"] in {units(row[:k]) for k in range(len(row) + 1)}, (p, row)


BINARY = st.binary(max_size=400).map(lambda b: b.decode("latin-1")) | st.text(
    st.characters(codec=None, exclude_categories=()), max_size=200)


@FUZZ
@given(text=BINARY, language=st.sampled_from(["python", "javascript", "rust", "c", "json", "plaintext", "cobol", ""])
       | st.text(max_size=12), data=st.data())
def test_binary_content_and_unsupported_languages(srv: RawServer, text: str, language: str, data):
    """Control characters, NULs, lone surrogates, any languageId: answered, nothing breaks."""
    COUNTS["binary-looking content / any languageId"] += 1
    uri = fresh_uri(data.draw(st.sampled_from(["py", "bin", "xyz", "rs", ""])))
    srv.open(uri, text, language=language)
    lines = lsp_lines(text)
    line = data.draw(st.integers(0, len(lines) - 1))
    char = units(lines[line][: data.draw(st.integers(0, len(lines[line])))])
    for method, params in [("textDocument/inlineCompletion", inline_params(uri, line, char)),
                           ("textDocument/completion", completion_params(uri, line, char)),
                           ("textDocument/codeAction", {"textDocument": {"uri": uri}, "context": {"diagnostics": []},
                            "range": {"start": {"line": 0, "character": 0}, "end": {"line": line, "character": char}}})]:
        r = srv.request(method, params, timeout=60)
        assert "result" in r, (method, r)
    srv.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    still_serving(srv)


@pytest.mark.parametrize("kind", ["1 MB single line", "100,000 lines"])
def test_huge_documents(srv: RawServer, kind: str):
    COUNTS["huge documents"] += 1
    if kind == "1 MB single line":
        text = "x = [" + ", ".join(str(i % 997) for i in range(200_000))[: 1_000_000] + "\n"
    else:
        text = "".join(f"def f{i}(a):\n    return a + {i}\n" for i in range(50_000))
    uri = fresh_uri()
    srv.open(uri, text)
    lines = lsp_lines(text)
    for line, char in [(0, 0), (len(lines) // 2, min(4, units(lines[len(lines) // 2]))), (0, units(lines[0])), end_position(text)]:
        for method, params in [("textDocument/inlineCompletion", inline_params(uri, line, char)),
                               ("textDocument/completion", completion_params(uri, line, char))]:
            r = srv.request(method, params, timeout=120)
            assert "result" in r, r
    r = srv.request("textDocument/codeAction", {"textDocument": {"uri": uri}, "context": {"diagnostics": []},
                    "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}}, timeout=120)
    assert "result" in r, r
    # rewrite a little in the middle: the prompt is a window around it, not the whole document
    (l0, c0), (l1, c1) = ((len(lines) // 2, 0), (len(lines) // 2 + 2, 0)) if len(lines) > 4 else ((0, 500), (0, 600))
    action = {"title": "Rewrite selection (dg-lsp)", "data": {"uri": uri, "version": 1, "kind": "rewrite",
              "start": offset_at(text, l0, c0), "end": offset_at(text, l1, c1)}}
    offered = srv.request("textDocument/codeAction", {"textDocument": {"uri": uri}, "context": {"diagnostics": []},
                          "range": {"start": {"line": l0, "character": c0}, "end": {"line": l1, "character": c1}}})
    if offered["result"]:
        action = offered["result"][0]
    r = srv.request("codeAction/resolve", action, timeout=120)
    assert "result" in r or r["error"]["code"] == -32803, r
    srv.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 0}}, "text": "# hi\n"}]})
    a = offset_at(text, 1, 0)
    server_view(srv, uri, text[:a] + "# hi\n" + text[a:])
    srv.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    still_serving(srv)


# ---------------------------------------------------------------------------------- lifecycle
REQUESTS = st.sampled_from(["textDocument/inlineCompletion", "textDocument/completion", "textDocument/codeAction",
                            "workspace/executeCommand", "codeAction/resolve", "shutdown", "dg/unknown"])


@pytest.fixture(scope="module")
def bare():
    """A second server that the lifecycle tests drive: never initialized, then shut down."""
    s = RawServer(TINY)
    yield s
    s.close()


LIFECYCLE = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow])


@LIFECYCLE
@given(method=REQUESTS, params=JSON)
def test_requests_before_initialize(bare: RawServer, method: str, params):
    COUNTS["request before initialize"] += 1
    r = bare.request(method, params, timeout=60)
    assert r["error"]["code"] == -32002, (method, r)
    assert not bare.violations


@LIFECYCLE
@given(method=REQUESTS | st.just("initialize"), params=JSON)
def test_requests_after_shutdown(bare: RawServer, method: str, params):
    if bare.request("dg-lsp/probe", None).get("error", {}).get("code") == -32002:
        bare.initialize()
        assert bare.request("shutdown", None)["result"] is None
    COUNTS["request after shutdown"] += 1
    r = bare.request(method, params, timeout=60)
    assert r["error"]["code"] == -32600, (method, r)
    assert not bare.violations


def test_exit_after_shutdown(bare: RawServer):
    bare.notify("exit", None)
    assert bare.proc.wait(30) == 0
    assert not bare.violations
