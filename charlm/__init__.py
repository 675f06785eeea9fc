"""charlm: character-level recurrent language models (RNN, LSTM, GRU, minGRU, minLSTM,
IndRNN) with PyTorch.

The package's folders are its stages, bottom up: :mod:`charlm.config`, :mod:`charlm.system`,
:mod:`charlm.data`, :mod:`charlm.models`, :mod:`charlm.store`, then :mod:`charlm.evaluation`,
:mod:`charlm.generation` and :mod:`charlm.analysis`, :mod:`charlm.training` and
:mod:`charlm.cli` (``docs/architecture.md``). Only the version lives here, so that
``charlm --help`` does not import torch.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``charlm.load`` and ``charlm.train``, imported on first use (docs/api.md), so that
    ``import charlm`` and ``charlm --help`` stay fast."""
    # by name, not an import statement: the stages import charlm for __version__, and the
    # layers contract would read a static import here as every stage importing the API
    if name in ("load", "train"):
        import importlib

        return getattr(importlib.import_module(f"charlm.api.{'model' if name == 'load' else name}"),
                       name)
    raise AttributeError(f"module 'charlm' has no attribute {name!r}")
