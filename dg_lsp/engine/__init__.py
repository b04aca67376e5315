"""Model engine: checkpoint loading, prompt building, the denoising loop."""

from dg_lsp.engine.core import Engine, InfillResult, PromptCache
from dg_lsp.engine.errors import Cancelled, EngineError, ModelLoadError
from dg_lsp.engine.sampler import SamplerSettings

__all__ = ["Cancelled", "Engine", "EngineError", "InfillResult", "ModelLoadError", "PromptCache", "SamplerSettings"]
