"""Model faults in a running server: each is named (file and problem) in window/showMessage and
in the log, completions answer empty meanwhile, and the fix is picked up without a restart
(``dg-lsp.reloadModel`` after repairing the directory, or a settings change).

One server process goes through all of them. Out of memory is real: the server's address
space is capped with prlimit(RLIMIT_AS) just above its current size, then a 50M-parameter
checkpoint is loaded.
"""

from __future__ import annotations

import json
import resource
import shutil
from pathlib import Path

import pytest
import torch

from conftest import CACHE, EMBEDDED, TINY
from raw_rpc import RawServer, inline_params

FAULTS = CACHE / "faults"
DOC = "file:///faults/a.py"
TEXT = "def add(a, b):\n    return \n"


@pytest.fixture(scope="module")
def srv():
    if FAULTS.exists():
        shutil.rmtree(FAULTS)
    FAULTS.mkdir(parents=True)
    s = RawServer(TINY)
    s.initialize({"maxTokens": 8})
    s.open(DOC, TEXT)
    assert s.command("dg-lsp.reloadModel")["result"]["loaded"]
    yield s
    violations = list(s.violations)
    s.close()
    assert not violations, violations[:3]


def copy_of(src: Path, name: str) -> Path:
    dst = FAULTS / name
    shutil.copytree(src, dst)
    return dst


def set_model(s: RawServer, path: Path) -> None:
    s.mark = len(s.notes)  # the fault's message may arrive before expect_fault starts looking
    s.notify("workspace/didChangeConfiguration", {"settings": {"dgLsp": {"model": str(path), "maxTokens": 8}}})


def expect_fault(s: RawServer, *needles: str) -> str:
    """A showMessage naming all ``needles`` arrives; the log says it too; completions are empty."""
    n = s.mark

    def found():
        return [m for m in s.notes[n:] if m["method"] == "window/showMessage" and all(x in m["params"]["message"] for x in needles)]

    for _ in range(120):  # until the message comes, or the faulty model loads after all (a miss)
        if s.wait(lambda: bool(found()), timeout=0.5):
            break
        status = s.command("dg-lsp.status")["result"]
        assert not (status["loaded"] and status["model"]["path"] == needles[0]), "the fault went unnoticed"
    assert found(), (needles, s.notes[n:])
    msg = found()[0]["params"]
    assert msg["type"] == 1  # Error
    assert all(x in s.log_text() for x in needles)
    status = s.command("dg-lsp.status")["result"]
    assert not status["loaded"] and all(x in status["error"] for x in needles)
    r = s.request("textDocument/inlineCompletion", inline_params(DOC, 1, 11))
    assert r["result"]["items"] == []
    return msg["message"]


def expect_recovered(s: RawServer) -> None:
    status = s.command("dg-lsp.reloadModel")["result"]
    assert status["loaded"] and status["error"] is None, status
    r = s.request("textDocument/inlineCompletion", inline_params(DOC, 1, 11))
    assert isinstance(r["result"]["items"], list)
    assert s.alive


def test_missing_directory_then_created(srv: RawServer):
    path = FAULTS / "missing"
    set_model(srv, path)
    expect_fault(srv, str(path), "does not exist")
    shutil.copytree(TINY, path)
    expect_recovered(srv)


def test_truncated_weights_then_repaired(srv: RawServer):
    path = copy_of(TINY, "truncated")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size * 2 // 3])
    set_model(srv, path)
    expect_fault(srv, str(weights), "corrupt safetensors")
    shutil.copy(TINY / "model.safetensors", weights)
    expect_recovered(srv)


def test_config_and_weights_disagree_then_setting_fixed(srv: RawServer):
    path = copy_of(TINY, "mismatch")
    cfg = json.loads((path / "config.json").read_text())
    cfg["text_config"]["hidden_size"] *= 2
    (path / "config.json").write_text(json.dumps(cfg))
    set_model(srv, path)
    expect_fault(srv, str(path / "model.safetensors"), "config.json")
    set_model(srv, TINY)
    expect_recovered(srv)


def test_tokenizer_missing_then_restored(srv: RawServer):
    path = copy_of(TINY, "notok")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (path / name).unlink()
    set_model(srv, path)
    expect_fault(srv, str(path), "no tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(TINY / name, path / name)
    expect_recovered(srv)


@pytest.mark.parametrize("model,tokenizer,problem", [
    (TINY, EMBEDDED, "tokenizer has 8192 tokens but config.json says vocab_size=2048"),
    (EMBEDDED, TINY, "far fewer than the model's vocab_size=8192"),
])
def test_tokenizer_of_another_model(srv: RawServer, model: Path, tokenizer: Path, problem: str):
    path = copy_of(model, f"tok-from-{tokenizer.name}")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tokenizer / name, path / name)
    set_model(srv, path)
    expect_fault(srv, str(path), problem)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(model / name, path / name)
    expect_recovered(srv)


def test_pickle_checkpoint_refused(srv: RawServer):
    path = copy_of(TINY, "pickled")
    (path / "model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, path / "pytorch_model.bin")
    set_model(srv, path)
    expect_fault(srv, str(path / "pytorch_model.bin"), "pickle weights are refused")
    set_model(srv, TINY)
    expect_recovered(srv)


def big_checkpoint() -> Path:
    """A real 50M-parameter checkpoint (~100 MB bf16, ~200 MB in float32) on the tiny tokenizer."""
    from dg_lsp.training.checkpoint import save_checkpoint
    from dg_lsp.training.config import ModelSize, make_config
    from transformers import DiffusionGemmaForBlockDiffusion

    path = CACHE / "big-checkpoint"
    if not (path / "config.json").exists():
        size = ModelSize(hidden=1024, layers=2, heads=2, kv_heads=1, head_dim=32, intermediate=8192, moe_intermediate=32)
        torch.manual_seed(0)
        save_checkpoint(DiffusionGemmaForBlockDiffusion(make_config(2048, size)), TINY, path)
    return path


def vm_size_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


def test_out_of_memory_at_load_then_reload(srv: RawServer):
    big = big_checkpoint()
    weights = sum(p.stat().st_size for p in big.glob("*.safetensors"))
    pid = srv.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_AS)
    # room to map the bf16 shards one by one, not to hold the float32 model
    resource.prlimit(pid, resource.RLIMIT_AS, (vm_size_bytes(pid) + weights // 2, hard))
    try:
        set_model(srv, big)
        msg = expect_fault(srv, str(big), "memory")  # "out of memory" / "can't allocate memory"
    finally:
        resource.prlimit(pid, resource.RLIMIT_AS, (soft, hard))
    print("\nOOM message:", msg)
    assert srv.alive, msg
    expect_recovered(srv)  # same setting, memory back: reloadModel loads it
    set_model(srv, TINY)
    expect_recovered(srv)
