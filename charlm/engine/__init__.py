"""The torch-free engine: an exported folder (``charlm export``) run by onnxruntime and numpy.

Nothing here imports torch (a contract in ``pyproject.toml`` says so): :mod:`.model` opens a
folder and steps its graph, :mod:`.sampling` draws with temperature, top-k and top-p,
:mod:`.scoring` measures a loss. Where a continuation starts and ends comes from the
torch-free :mod:`charlm.generation.prime` and :mod:`charlm.generation.stopping`, so both
engines prime and stop alike.
"""
