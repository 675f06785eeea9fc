"""charlm: character-level recurrent language models (RNN, LSTM, GRU) with PyTorch.

Only the version lives here so that ``charlm --help`` does not import torch; the public API is
in the submodules: :mod:`charlm.config`, :mod:`charlm.data`, :mod:`charlm.models`,
:mod:`charlm.training`, :mod:`charlm.generation.sampling`, :mod:`charlm.store.checkpoint`, :mod:`charlm.metrics`.
"""

__version__ = "0.1.0"
