"""The sampling rule the config's ranges cannot hold, since it depends on the model: top-k
at most the vocabulary. Torch-free, so the torch engine and the ONNX engine check alike."""

from __future__ import annotations

from charlm.errors import ConfigError


def check_top_k(top_k: int | None, vocab_size: int, fix: str = "--top-k") -> None:
    """``top_k`` may not exceed the vocabulary: the one sampling rule the config's ranges
    cannot hold, since it depends on the model.

    Args:
        fix: the option that sets it, said in the error.
    Raises:
        ConfigError: naming the value, the vocabulary size and ``fix``.
    """
    if top_k is not None and top_k > vocab_size:
        raise ConfigError(f"sample.top_k is {top_k} but the vocabulary has {vocab_size} "
                          f"entries; lower it with {fix} (at most {vocab_size})")
