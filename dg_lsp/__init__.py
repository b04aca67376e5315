"""dg-lsp: code completion at the cursor with a local bidirectional canvas (DiffusionGemma) model."""

__version__ = "0.1.0"
