"""What training needs and the server ships: the examples and the prompt layout (shared with
serving), the noise, the lean forward, the model sizes and the checkpoint writer. Used by the
long training runs (``model/train.py``) and by ``dg-lsp tune`` (``dg_lsp.tune``)."""
