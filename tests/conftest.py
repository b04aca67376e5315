"""Shared fixtures: real checkpoints built by the tests themselves (no downloads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CACHE = Path(os.environ.get("DG_LSP_TEST_CACHE", ROOT / ".cache" / "tests"))
TINY = CACHE / "tiny-checkpoint"
EMBEDDED = ROOT / "model"


def build_tiny(path: Path = TINY) -> Path:
    """A tiny random-weight DiffusionGemma checkpoint with a real (quickly trained) tokenizer."""
    if not (path / "model.safetensors").exists():
        subprocess.run(
            [sys.executable, "-m", "model.make_random", str(path), "--size", "tiny", "--vocab", "2048", "--corpus-mb", "1"],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
        )
    return path


def pytest_configure(config):  # noqa: ARG001 - pytest hook
    build_tiny()


def server_command(model: Path | None = None, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "dg_lsp", "--stdio", "--log-level", "info"]
    if model is not None:
        cmd += ["--model", str(model)]
    return cmd + list(extra)



@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(TINY)), scope="module")
async def client(lsp_client: LanguageClient):
    """One server per test module, on the tiny checkpoint, initialised like an editor."""
    from lsp_helpers import CAPABILITIES, close

    await lsp_client.initialize_session(types.InitializeParams(capabilities=CAPABILITIES))
    yield
    await close(lsp_client)
