"""An exported folder opened for inference: its config, vocabulary and an onnxruntime session
over one of its graphs. Torch-free.

Shape legend: B batch, V vocab size, L layers, H hidden size.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from charlm.data.vocab import ByteVocab, Vocab
from charlm.errors import CheckpointError, OptionError

logger = logging.getLogger(__name__)

FORMAT = "charlm-export"
KNOWN_VERSIONS = (1,)
INSTALL = "install the onnx extra: pip install 'charlm[onnx]'"

State = list[np.ndarray]


def is_export(path: str | Path) -> bool:
    """Whether ``path`` is an export folder (it holds a ``config.json`` of this format)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def require_onnxruntime(option: str = "--engine onnx"):
    """The onnxruntime module.

    Raises:
        OptionError: if it is not installed, naming ``option`` and the extra to install.
    """
    try:
        import onnxruntime
    except ImportError:
        raise OptionError(f"{option} needs onnxruntime: {INSTALL}") from None
    return onnxruntime


class OnnxModel:
    """One graph of an export folder: ``step(ids, state) -> (logits, state)``.

    Args:
        folder: an export folder (``charlm export``).
        kind: ``"fp32"`` (``model.onnx``) or ``"int8"`` (``model.int8.onnx``).
        threads: onnxruntime's intra-op threads (0: its default, every core).
        option: the option that named the folder, said in errors.
    Raises:
        CheckpointError: if the folder is not an export, is of a newer format, or lacks the
            graph (naming ``--int8`` for a missing int8 graph).
        OptionError: if onnxruntime is not installed.
    """

    def __init__(self, folder: str | Path, kind: str = "fp32", threads: int = 0,
                 option: str = "--engine") -> None:
        ort = require_onnxruntime(f"{option} onnx")
        self.folder = Path(folder)
        self.config = read_config(self.folder)
        graph = self.config.get("graphs", {}).get(kind)
        if graph is None or not (self.folder / graph).is_file():
            fix = "export it again with --int8" if kind == "int8" else "export it again"
            raise CheckpointError(f"export folder {self.folder} has no {kind} graph; {fix}")
        self.kind, self.vocab = kind, read_vocab(self.folder)
        self.state_names = list(self.config["state"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or int(os.environ.get("CHARLM_ORT_THREADS", 0))
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.folder / graph), opts,
                                            providers=["CPUExecutionProvider"])

    @property
    def vocab_size(self) -> int:
        """V."""
        return int(self.config["vocab_size"])

    def zero_state(self, batch: int) -> State:
        """The start state of ``batch`` rows: zeros, (L, B, H) per state tensor."""
        shape = (self.config["num_layers"], batch, self.config["hidden_size"])
        return [np.zeros(shape, np.float32) for _ in self.state_names]

    def step(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """(B,) int64 ids and the state -> (B, V) float32 logits and the new state."""
        feeds = {"ids": np.ascontiguousarray(ids, dtype=np.int64),
                 **dict(zip(self.state_names, state))}
        logits, *state = self.session.run(None, feeds)
        return logits, state

    def feed(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Read (B, T) ids one step at a time from ``state``: the last (B, V) logits and the
        state after step T (T >= 1)."""
        logits = None
        for t in range(ids.shape[1]):
            logits, state = self.step(ids[:, t], state)
        return logits, state


def read_config(folder: Path) -> dict:
    """An export folder's ``config.json``, checked to be of a format this charlm reads.

    Raises:
        CheckpointError: if it is missing, unreadable, not an export, or of a newer version.
    """
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder} is not an export folder (it has no config.json); "
                              f"make one with 'charlm export CHECKPOINT --output {folder}'"
                              ) from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a charlm export's config (no \"format\": "
                              f"\"{FORMAT}\")")
    if config.get("format_version") not in KNOWN_VERSIONS:
        raise CheckpointError(f"{folder} is export format version "
                              f"{config.get('format_version')}, newer than this charlm reads "
                              f"({', '.join(map(str, KNOWN_VERSIONS))}); upgrade charlm")
    return config


def read_vocab(folder: Path) -> Vocab | ByteVocab:
    """The vocabulary of an export folder's ``vocab.json``.

    Raises:
        CheckpointError: if it is missing or malformed.
    """
    try:
        payload = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        if payload["unit"] == "byte":
            return ByteVocab()
        return Vocab("".join(payload["tokens"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read {folder / 'vocab.json'}: {exc}") from None
