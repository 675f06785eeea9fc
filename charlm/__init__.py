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
    if name == "load":
        from charlm.api.model import load

        return load
    if name == "train":
        from charlm.api.train import train

        return train
    raise AttributeError(f"module 'charlm' has no attribute {name!r}")
