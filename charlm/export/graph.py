"""The one-step ONNX graph of a model: ``(ids, state...) -> (logits, state...)``.

The graph is :meth:`charlm.models.CharLM.step` with the hidden state as explicit inputs and
outputs, so a runtime that knows nothing of charlm carries it from call to call. The new
exporter (``torch.onnx.export(dynamo=True)``) is tried first; where it cannot lower a core, or
its graph disagrees with torch, the TorchScript exporter (``dynamo=False``) writes it, and the
caller records which.

Shape legend: B batch (dynamic), V vocab size, L layers, H hidden size.
Inputs: ``ids`` (B,) int64, ``h`` (L, B, H) float32 and, for the LSTM, ``c`` (L, B, H).
Outputs: ``logits`` (B, V) float32 (unnormalised, before any temperature), ``h_out`` and, for
the LSTM, ``c_out``. The start state is zeros (the same as ``hidden=None`` for every core).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from charlm.models.lm import CharLM

logger = logging.getLogger(__name__)

OPSET = 18
EXPORTERS = ("dynamo", "torchscript")
# loggers whose notes (absent torchvision ops, graph rewrites) would drown the command's output
QUIET = ("torch.onnx", "onnxscript", "onnx_ir")
TOLERANCE = 1e-5  # largest |onnx - torch| logit accepted from an exporter, fp32


class StepGraph(nn.Module):
    """:meth:`CharLM.step` with the state split into named tensors (module doc)."""

    def __init__(self, model: CharLM) -> None:
        super().__init__()
        self.model = model
        self.state = model.spec.state  # ("h",) or ("h", "c")

    def forward(self, ids: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """(B,) ids and the state tensors, each (L, B, H) -> (B, V) logits and the new state."""
        hidden = tuple(state) if len(self.state) > 1 else state[0]
        logits, hidden = self.model.step(ids, hidden)
        return (logits, *(hidden if isinstance(hidden, tuple) else (hidden,)))


def zero_state(model: CharLM, batch: int) -> list[np.ndarray]:
    """The start state the graph takes: one (L, B, H) float32 zero array per state tensor."""
    core = model.core
    return [np.zeros((core.num_layers, batch, core.hidden_size), np.float32)
            for _ in model.spec.state]


def input_names(state: tuple[str, ...]) -> list[str]:
    """``["ids", "h"]`` or ``["ids", "h", "c"]``."""
    return ["ids", *state]


def output_names(state: tuple[str, ...]) -> list[str]:
    """``["logits", "h_out"]`` or ``["logits", "h_out", "c_out"]``."""
    return ["logits", *(f"{name}_out" for name in state)]


def export_step(model: CharLM, path: Path) -> str:
    """Write the one-step graph of ``model`` (in eval mode) to ``path``.

    Returns:
        the exporter that wrote it: ``"dynamo"``, or ``"torchscript"`` where the new exporter
        failed or its graph's logits differed from torch's by more than :data:`TOLERANCE`.
    Raises:
        RuntimeError: if neither exporter writes a graph that agrees with torch.
    """
    graph = StepGraph(model.eval())
    problems = []
    for exporter in EXPORTERS:
        try:
            _export(graph, path, exporter == "dynamo")
            error = max_logit_error(graph, path)
        except Exception as exc:  # an exporter that cannot lower a core: try the other
            problems.append(f"{exporter}: {type(exc).__name__}: {str(exc)[:300]}")
            logger.debug("the %s exporter failed", exporter, exc_info=True)
            continue
        if error <= TOLERANCE:
            return exporter
        problems.append(f"{exporter}: logits differ from torch's by {error:.2e}")
    raise RuntimeError(f"no exporter wrote a graph of the {model.cell} model that agrees with "
                       f"torch: {'; '.join(problems)}")


def _export(graph: StepGraph, path: Path, dynamo: bool) -> None:
    """One exporter's attempt; the example batch is 2 so that B is not fixed at 1."""
    ids = torch.zeros(2, dtype=torch.int64)
    state = tuple(torch.from_numpy(s) for s in zero_state(graph.model, 2))
    names_in, names_out = input_names(graph.state), output_names(graph.state)
    axes = {"ids": {0: "B"}, **{n: {1: "B"} for n in graph.state},
            "logits": {0: "B"}, **{n: {1: "B"} for n in names_out[1:]}}
    quiet = [logging.getLogger(name) for name in QUIET]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        kwargs = dict(input_names=names_in, output_names=names_out, opset_version=OPSET,
                      dynamo=dynamo)
        if dynamo:
            batch = torch.export.Dim("B", min=1)
            kwargs |= dict(dynamic_shapes=({0: batch}, tuple({1: batch} for _ in state)),
                           external_data=False, verbose=False)
        else:
            kwargs |= dict(dynamic_axes=axes)
        try:
            torch.onnx.export(graph, (ids, *state), str(path), **kwargs)
        finally:
            for q, level in zip(quiet, levels):
                q.setLevel(level)


def max_logit_error(graph: StepGraph, path: Path, steps: int = 8, batch: int = 3) -> float:
    """The largest |onnx - torch| logit over a few carried steps of random ids, at a batch
    other than the example's (so a batch fixed in the graph shows)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    V = graph.model.decoder.out_features
    state = zero_state(graph.model, batch)
    torch_state = tuple(torch.from_numpy(s) for s in state)
    worst = 0.0
    with torch.no_grad():
        for _ in range(steps):
            ids = rng.integers(0, V, batch).astype(np.int64)
            got = session.run(None, {"ids": ids, **dict(zip(graph.state, state))})
            want = graph(torch.from_numpy(ids), *torch_state)
            worst = max(worst, float(np.abs(got[0] - want[0].numpy()).max()))
            state, torch_state = got[1:], want[1:]
    return worst
