"""Settings decoding (msgspec): bad values are named and fall back, null means unset."""

from dg_lsp.settings import DEFAULTS, Settings, decode


def test_valid_values_apply():
    s, problems = decode({"maxTokens": 8, "languages": ["python"], "device": "cpu"})
    assert problems == [] and s.max_tokens == 8 and s.languages == ["python"] and s.device == "cpu"


def test_bad_value_named_and_default_kept():
    s, problems = decode({"maxTokens": "many", "contextTokens": 5, "seed": 3})
    assert s.max_tokens == DEFAULTS.max_tokens and s.context_tokens == DEFAULTS.context_tokens and s.seed == 3
    assert len(problems) == 2 and "maxTokens" in problems[0] and "contextTokens" in problems[1]
    assert "(or 0)" in problems[1]


def test_context_tokens_zero_means_the_checkpoints():
    base = Settings(context_tokens=512)
    s, problems = decode({"contextTokens": 0}, base)
    assert problems == [] and s.context_tokens == 0 and DEFAULTS.context_tokens == 0


def test_nested_section_and_null_means_unset():
    base = Settings(model="/from/command/line")
    s, problems = decode({"dgLsp": {"model": None, "threads": 1}}, base)
    assert problems == [] and s.model == "/from/command/line" and s.threads == 1


def test_not_an_object():
    s, problems = decode(["nope"])
    assert s == DEFAULTS and problems


def test_gate_settings_bounds():
    s, problems = decode({"minConfidence": 0.2, "alternatives": 5})
    assert problems == [] and s.min_confidence == 0.2 and s.alternatives == 5
    s, problems = decode({"minConfidence": 1.5, "alternatives": 0})
    assert s.min_confidence == DEFAULTS.min_confidence and s.alternatives == DEFAULTS.alternatives
    assert len(problems) == 2 and "minConfidence" in problems[0] and "alternatives" in problems[1]
