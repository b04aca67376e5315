"""Errors the engine raises; the server turns them into messages and empty results."""


class EngineError(Exception):
    """Base class of engine errors."""


class ModelLoadError(EngineError):
    """The checkpoint could not be found, validated or loaded. The message names the file."""


class Cancelled(EngineError):
    """The request was cancelled or superseded between denoising steps."""
