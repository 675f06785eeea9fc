"""charlm: character-level recurrent language models (RNN, LSTM, GRU, minGRU, minLSTM,
IndRNN) with PyTorch.

The package's folders are its stages, bottom up: :mod:`charlm.config`, :mod:`charlm.system`,
:mod:`charlm.data`, :mod:`charlm.models`, :mod:`charlm.store`, then :mod:`charlm.evaluation`,
:mod:`charlm.generation` and :mod:`charlm.analysis`, :mod:`charlm.training` and
:mod:`charlm.cli` (``docs/architecture.md``). Only the version lives here, so that
``charlm --help`` does not import torch.
"""

__version__ = "0.1.0"
