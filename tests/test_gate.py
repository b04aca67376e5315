"""The learned show/withhold gate (dg_lsp/gate.py): fitting, the embedded model's gate.json, and
its use by the service (the confidence an automatic request is gated on)."""

from __future__ import annotations

import json
import random

import pytest

from conftest import EMBEDDED
from dg_lsp import gate


def test_fit_recovers_which_feature_predicts_usefulness():
    rng = random.Random(0)
    xs, ys = [], []
    for _ in range(400):
        x = [rng.gauss(0, 1) for _ in gate.FEATURES]
        p = 1 / (1 + pow(2.718281828, -(2.0 * x[0] - 1.0 * x[5])))  # logp helps, "supplied" hurts
        xs.append(x)
        ys.append(int(rng.random() < p))
    g = gate.fit(xs, ys)
    assert g.weights[0] > 0.5 and g.weights[5] < -0.2
    assert all(abs(w) < 0.5 for i, w in enumerate(g.weights) if i not in (0, 5))
    hi = g.probability([3.0] + [0.0] * (len(gate.FEATURES) - 1))
    lo = g.probability([-3.0] + [0.0] * (len(gate.FEATURES) - 1))
    assert 0.0 < lo < 0.5 < hi < 1.0


def test_gate_json_round_trips_and_refuses_other_features(tmp_path):
    g = gate.Gate([0.1] * len(gate.FEATURES), -1.0, [0.0] * len(gate.FEATURES), [1.0] * len(gate.FEATURES), {"a": 1})
    (tmp_path / gate.FILE).write_text(json.dumps(g.to_json()))
    back = gate.load(tmp_path)
    assert back is not None and back.probability([1.0] * len(gate.FEATURES)) == pytest.approx(g.probability([1.0] * len(gate.FEATURES)))
    bad = g.to_json() | {"features": ["something", "else"]}
    (tmp_path / gate.FILE).write_text(json.dumps(bad))
    assert gate.load(tmp_path) is None  # a gate for other inputs is not used
    assert gate.load(tmp_path / "missing") is None


def test_embedded_model_ships_a_gate_the_service_uses():
    """The embedded model's gate is loaded with it, and an automatic proposal's confidence is the
    gate's: a gate that says 0.5 whatever it sees (zero weights, zero bias) makes it 0.5; without a
    gate it is the model's own score."""
    from dg_lsp.context import SyntaxDocument, registry
    from dg_lsp.engine import Engine
    from dg_lsp.service import propose
    from dg_lsp.settings import DEFAULTS

    engine = Engine.load(str(EMBEDDED), device="cpu", threads=1)
    assert engine.gate is not None and engine.gate.meta.get("examples", 0) > 100
    assert engine.describe()["gate"]["command"].startswith("python benchmarks/fit_gate.py")
    spec = registry().get("python")
    text = "def area(width, height):\n    return width * height\n\n\ndef perimeter(width, height):\n    return "

    def proposal():
        engine.cache.reset()
        return propose(engine, spec, SyntaxDocument(spec, text), len(text), DEFAULTS, invoked=False)

    shipped = proposal()
    assert shipped.text and not shipped.judged, (shipped.text, shipped.judged)
    assert shipped.features is not None and len(shipped.features) == len(gate.FEATURES)
    assert 0.0 < shipped.confidence < 1.0 and shipped.confidence != pytest.approx(shipped.model_confidence)
    n = len(gate.FEATURES)
    engine.gate = gate.Gate([0.0] * n, 0.0, [0.0] * n, [1.0] * n, {})
    half = proposal()
    assert half.text == shipped.text and half.confidence == pytest.approx(0.5)
    engine.gate = None
    own = proposal()
    assert own.text == shipped.text and own.confidence == pytest.approx(own.model_confidence)
