"""``charlm.load(path)``: a model to generate from and score with, from a run folder, a
``.pt`` checkpoint or an export folder (the latter run by onnxruntime, without torch).

Example::

    m = charlm.load("checkpoints/my-run")
    m.generate("ROMEO:", length=200, temperature=0.8, seed=1)
    for piece in m.stream("ROMEO:", length=200): print(piece, end="")
    m.score("To be, or not to be")   # {"loss_nats": ..., "bpc": ..., "chars": ...}
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Iterator, Sequence

from charlm.metrics import nats_to_bits


def load(path: str | Path, engine: str | None = None, checkpoint_dir: str | Path = "checkpoints"
         ) -> "Model":
    """Open a model.

    Args:
        path: a run folder, a run name, a ``.pt`` file, or an export folder.
        engine: ``"torch"``, ``"onnx"`` or ``"onnx-int8"``; None picks onnx for an export
            folder and torch otherwise.
    Raises:
        CheckpointError: if nothing usable is there.
    """
    from charlm.engine.model import is_export

    if engine is None:
        engine = "onnx" if is_export(path) else "torch"
    return Model(path, engine, checkpoint_dir)


class Model:
    """A loaded model: :meth:`generate`, :meth:`stream`, :meth:`score`."""

    def __init__(self, path, engine: str, checkpoint_dir) -> None:
        self.engine = engine
        if engine == "torch":
            from charlm.store.names import open_checkpoint
            from charlm.store.restore import restore_model

            _, ckpt = open_checkpoint(path, checkpoint_dir)
            self.model, self.vocab, self.config = restore_model(ckpt, "cpu", str(path))
        else:
            from charlm.engine.model import OnnxModel

            self.model = OnnxModel(path, "int8" if engine == "onnx-int8" else "fp32")
            self.vocab, self.config = self.model.vocab, self.model.config

    def stream(self, prime: str | None = None, length: int = 500, temperature: float = 0.8,
               top_k: int | None = None, top_p: float | None = None,
               stop: str | Sequence[str] = (), seed: int | None = None) -> Iterator[str]:
        """The continuation of ``prime`` (not included) piece by piece, as it is drawn.

        Args:
            length: characters (bytes for a byte model) at most.
            temperature: 0 is greedy.
            stop: a string, or several, that ends the text right after it.
            seed: for repeatable draws; None draws one.
        Raises:
            DataError, SamplingError, ConfigError: for a prime or stop string with
                characters the model never saw, or top_k above the vocabulary.
        """
        from charlm.generation.limits import check_top_k
        from charlm.generation.prime import prime_text
        from charlm.generation.stopping import Continuation, make_stop_rule

        check_top_k(top_k, self.vocab.size, "top_k")
        rule = make_stop_rule(self.vocab, (stop,) if isinstance(stop, str) else tuple(stop))
        _, text = prime_text(self.vocab, prime, fix="remove them from the prime")
        seed = secrets.randbelow(2**63) if seed is None else seed
        ids = self._steps(self.vocab.encode(text), length, temperature, top_k, top_p, seed)
        sample, decode = Continuation(rule), self.vocab.stream_decoder()
        for token in ids:
            piece = decode(sample.push(token))
            if piece:
                yield piece
            if sample.done:
                break
        tail = decode(sample.finish(), True)
        if tail:
            yield tail

    def generate(self, prime: str | None = None, length: int = 500, **options) -> str:
        """:meth:`stream` joined into one string (the prime not included)."""
        return "".join(self.stream(prime, length, **options))

    def score(self, text: str) -> dict:
        """How well the model predicts ``text``: ``{"loss_nats", "bpc", "chars"}``, every
        character after the first scored once, the state carried from zeros.

        Raises:
            DataError: for characters the model never saw, or fewer than 2 characters.
        """
        ids = self.vocab.encode(text)
        if self.engine == "torch":
            from charlm.evaluation.static import evaluate

            loss, n = evaluate(self.model, ids, 1, 256, warmup=0)
        else:
            from charlm.engine.scoring import score_ids

            loss, n = score_ids(self.model, ids, 1)
        return {"loss_nats": loss, "bpc": nats_to_bits(loss), "chars": n}

    def _steps(self, prime_ids, length, temperature, top_k, top_p, seed) -> Iterator[int]:
        """The drawn ids, one at a time."""
        if self.engine == "torch":
            import torch

            from charlm.generation.sampling import generate

            gen = torch.Generator().manual_seed(seed)
            steps = generate(self.model, torch.from_numpy(prime_ids.astype("int64")), length,
                             1, temperature, top_k, top_p, gen)
        else:
            import numpy as np

            from charlm.engine.sampling import generate

            steps = generate(self.model, prime_ids.astype(np.int64), length, 1, temperature,
                             top_k, top_p, np.random.default_rng(seed))
        return (int(ids[0]) for ids in steps)
