"""Load: bursts of requests with interleaved $/cancelRequest while the document changes.

Every request is answered (a result, or RequestCancelled -32800); no answer carries a
result computed for an older version; afterwards no job is left on the worker
(``dg-lsp.status`` reports the worker's in-flight jobs and live tickets).

How "older version" is checked: the server handles messages in order, so right after each
didChange the client sends ``dg-lsp.status`` (answered at once, on the event loop). Any
response that arrives after that status response was written after the server knew the new
text; if it belongs to a request sent for an older version it must be empty.
"""

from __future__ import annotations

import json
import random
import time

import pytest

from conftest import TINY
from raw_rpc import RawServer, completion_params, inline_params

URI = "file:///load/a.py"
ROUNDS, BURST = 30, 8


def text_for(v: int) -> str:
    return f"def f(a, b):\n    return a\n\nvalue_{v} = \n"


@pytest.fixture(scope="module")
def srv():
    s = RawServer(TINY)
    s.initialize({"denoisingSteps": 24, "maxTokens": 16})  # slow enough to be cancelled mid-way
    assert s.command("dg-lsp.reloadModel")["result"]["loaded"]
    yield s
    violations = list(s.violations)
    s.close()
    assert not violations, violations[:3]


def test_bursts_with_cancels_and_edits(srv: RawServer):
    rng = random.Random(7)
    srv.open(URI, text_for(1))
    version, sent = 1, {}  # request id -> version it was sent for
    barriers = []  # (status id, version it confirms)
    for r in range(ROUNDS):
        for k in range(BURST):
            col = len(f"value_{version} = ")
            method = rng.choice(["textDocument/inlineCompletion", "textDocument/completion"])
            params = inline_params(URI, 3, col) if "inline" in method else completion_params(URI, 3, col)
            msg_id = f"r{r}k{k}"
            srv.request_async(method, params, msg_id=msg_id)
            sent[msg_id] = version
            time.sleep(rng.choice([0, 0, 0.01, 0.05, 0.15]))  # some finish, some are superseded
            if rng.random() < 0.3:
                srv.notify("$/cancelRequest", {"id": rng.choice(list(sent))})
            if rng.random() < 0.35:  # the user types: the document moves on mid-burst
                version += 1
                srv.change(URI, version, text_for(version))
                barriers.append((srv.request_async("workspace/executeCommand",
                                                   {"command": "dg-lsp.status", "arguments": []}), version))
    answers = {i: srv.response(i, timeout=300) for i in sent}
    for i, _ in barriers:
        srv.response(i, timeout=60)
    codes = [a["error"]["code"] for a in answers.values() if "error" in a]
    assert set(codes) <= {-32800}, codes  # only RequestCancelled
    # stale check: after the barrier for version v, no non-empty answer for a version < v
    position = {json.dumps(m): n for n, m in enumerate(srv.order)}
    stale = []
    for bid, v in barriers:
        for i, a in answers.items():
            items = (a.get("result") or {}).get("items")
            if items and sent[i] < v and position[json.dumps(i)] > position[json.dumps(bid)]:
                stale.append((i, sent[i], v))
    assert not stale, stale
    nonempty = sum(bool((a.get("result") or {}).get("items")) for a in answers.values())
    print(f"\nload: {len(sent)} requests, {len(codes)} cancelled, {nonempty} non-empty, {len(barriers)} edits")
    assert nonempty >= 10, "too few real answers for the stale check to mean anything"
    # the newest request for the newest text still gets a real answer
    col = len(f"value_{version} = ")
    last = srv.request("textDocument/inlineCompletion", inline_params(URI, 3, col), timeout=120)
    assert isinstance(last["result"]["items"], list)
    for item in last["result"]["items"]:
        assert item["range"]["start"] == {"line": 3, "character": col}
    worker = srv.command("dg-lsp.status")["result"]["worker"]
    assert worker == {"inflight": 0, "tickets": 0, "pending": 1}, worker  # pending: this status request
