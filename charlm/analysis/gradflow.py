"""Gradient flow through time: how much of the loss's gradient reaches k steps back.

For windows of real text, the loss at the last step T is back-propagated through the
recurrence and the norm of its gradient with respect to the hidden state k steps earlier,
``||dL_T / dh_{T-k}||`` for k = 0..K, is averaged over windows. A vanilla RNN multiplies the
gradient at every step by the recurrent Jacobian ``diag(tanh') W_hh``, so it shrinks (or grows)
geometrically; the LSTM's cell state is an additive path scaled only by the forget gate, and the
GRU's update gate interpolates, so theirs decays far more slowly.

Shape legend: B windows, T time steps, L layers, H hidden size, V vocab size.

References:
    Bengio, Simard & Frasconi 1994, "Learning long-term dependencies with gradient descent is
    difficult". Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural
    networks", section 2 (the Jacobian product). Hochreiter & Schmidhuber 1997 (LSTM's constant
    error carousel).
"""

from __future__ import annotations

import copy
import csv
import logging
from pathlib import Path

import numpy as np
import torch

from charlm.config import ModelConfig
from charlm.errors import DataError
from charlm.models.lm import CharLM, create_model
from charlm.models.state import detach_hidden, output_state
from charlm.system.files import replacing
from charlm.system.tensorboard import open_writer

logger = logging.getLogger(__name__)

TABLE_KS = (0, 1, 5, 10, 20, 50, 100, 150, 200)
BURN_IN = 50  # characters that set the hidden state before a gradient-flow window

def sample_windows(ids: np.ndarray, length: int, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` windows of ``length`` consecutive ids at seeded random offsets.

    Returns:
        (B, length) int64 tensor.
    Raises:
        DataError: if the text is shorter than one window.
    """
    if len(ids) < length + 1:
        raise DataError(f"the text has {len(ids)} characters; gradient flow needs at least "
                        f"{length + 1} (lower --horizon)")
    starts = np.random.default_rng(seed).integers(0, len(ids) - length, count)
    return torch.from_numpy(np.stack([ids[s:s + length] for s in starts]).astype(np.int64))


def gradient_profile(model: CharLM, windows: torch.Tensor, horizon: int, burn_in: int = 50
                     ) -> np.ndarray:
    """Mean ``||dL / dh_{T-k}||`` over windows, for k = 0..horizon.

    The first ``burn_in`` characters of each window set the hidden state (no gradient); the
    next ``horizon + 1`` run one step at a time, giving the states h_{T-K} .. h_T; one more
    step reads h_T and the window's last input and predicts its last character, whose loss
    is L. h is the hidden state of all L layers (for the LSTM, h and not the cell state c;
    gradient reaching h through c is included). The work runs on a float64 copy of the model
    in eval mode (no dropout), so ``model``, its mode and its parameters' ``.grad`` are left
    untouched.

    Args:
        model: a CharLM.
        windows: (B, burn_in + horizon + 3) int64 ids.
        horizon: K, the largest k.
    Returns:
        (K + 1,) float64 array, entry k the mean gradient norm (nats per unit of h).
    """
    model, x, target, hidden = _prepare(model, windows, burn_in)
    states = []
    for t in range(burn_in, burn_in + horizon + 1):
        _, hidden = model.step(x[:, t], hidden)
        states.append(output_state(hidden))             # (L, B, H) after step t
    grads = torch.autograd.grad(_last_loss(model, x, target, hidden), states)
    norms = [g.transpose(0, 1).flatten(1).norm(dim=1).mean().item() for g in grads]
    return np.array(norms[::-1], dtype=np.float64)  # index k = steps back from h_T


def _prepare(model: CharLM, windows: torch.Tensor, burn_in: int):
    """A float64 eval copy of ``model`` (on the CPU for MPS, which has no float64), the
    windows' inputs and targets on its device, and the state after the burn-in."""
    # float64: the profile spans hundreds of orders of magnitude, past float32's range
    device = next(model.parameters()).device
    device = torch.device("cpu") if device.type == "mps" else device
    model = copy.deepcopy(model).to(device).double().eval()
    x, target = windows[:, :-1].to(device), windows[:, -1].to(device)
    with torch.no_grad():
        _, hidden = model(x[:, :burn_in]) if burn_in else (None, None)
    return model, x, target, detach_hidden(hidden)


def _last_loss(model: CharLM, x: torch.Tensor, target: torch.Tensor, hidden) -> torch.Tensor:
    """The loss of the window's last prediction, from state ``hidden``: summed, not averaged,
    so each window's gradient is its own."""
    logits, _ = model.step(x[:, -1], hidden)             # (B, V)
    return torch.nn.functional.cross_entropy(logits, target, reduction="sum")


def closed_form_profile(model: CharLM, windows: torch.Tensor, horizon: int,
                        burn_in: int = BURN_IN) -> np.ndarray | None:
    """``||dL / dh_{T-k}||`` from the closed form, for one-layer cores whose gradient through
    time is a product of diagonals (minGRU: ``1 - z``; IndRNN: ``u * 1[h > 0]``); None for
    the others.

    Only ``dL / dh_T`` comes from autograd; each step back multiplies it by the core's
    ``diagonal_jacobian`` of that step, so this must equal :func:`gradient_profile`.

    Returns:
        (K + 1,) float64 array, entry k the mean norm over windows; None when the core has no
        diagonal Jacobian or more than one layer (other layers add paths through time).
    """
    if not hasattr(model.core, "diagonal_jacobian") or model.core.num_layers != 1:
        return None
    model, x, target, hidden = _prepare(model, windows, burn_in)
    with torch.no_grad():   # the Jacobian of the step that made h_t, for h_{T-K} .. h_T
        _, h_T, record = model.trace(x[:, burn_in:burn_in + horizon + 1], hidden)
        factors = model.core.diagonal_jacobian(record)             # (B, K + 1, H)
    h_T = h_T.detach().requires_grad_()
    g = torch.autograd.grad(_last_loss(model, x, target, h_T), h_T)[0][0]   # (B, H)
    norms = []
    for k in range(horizon + 1):
        norms.append(g.norm(dim=1).mean().item())
        g = g * factors[:, horizon - k]                  # dh_{T-k} / dh_{T-k-1}
    return np.array(norms, dtype=np.float64)


def fresh_profiles(cells: list[str], ids: np.ndarray, vocab_size: int, horizon: int,
                   windows: int, hidden_size: int, num_layers: int, seed: int = 0
                   ) -> dict[str, np.ndarray]:
    """Gradient-flow profiles of untrained models, one per cell, on the same text windows.

    Args:
        cells: names from the cell table.
        ids: (N,) encoded text the windows are drawn from.
    Raises:
        DataError: if the text is shorter than one window.
        ValueError: for an unknown cell.
    """
    batch = sample_windows(ids, BURN_IN + horizon + 3, windows, seed)
    profiles = {}
    for cell in cells:
        torch.manual_seed(seed)
        model = create_model(ModelConfig(cell=cell, hidden_size=hidden_size,
                                         num_layers=num_layers), vocab_size)
        profiles |= profiles_of(model, cell, batch, horizon)
        logger.info("%s: k=0 %.3e, k=%d %.3e", cell, profiles[cell][0], horizon,
                    profiles[cell][-1])
    return profiles


def profiles_of(model: CharLM, label: str, batch: torch.Tensor, horizon: int
                ) -> dict[str, np.ndarray]:
    """``{label: measured profile}``, and ``{label + " (closed form)": ...}`` beside it where
    the core has one (:func:`closed_form_profile`)."""
    out = {label: gradient_profile(model, batch, horizon, BURN_IN)}
    closed = closed_form_profile(model, batch, horizon, BURN_IN)
    if closed is not None:
        out[f"{label} (closed form)"] = closed
    return out


def model_profile(model: CharLM, ids: np.ndarray, horizon: int, windows: int, seed: int = 0,
                  label: str | None = None) -> np.ndarray | dict[str, np.ndarray]:
    """The gradient-flow profile of one (trained) model on ``windows`` windows of ``ids``;
    with a ``label``, :func:`profiles_of`'s dict (the closed form too, where there is one).

    Raises:
        DataError: if the text is shorter than one window.
    """
    batch = sample_windows(ids, BURN_IN + horizon + 3, windows, seed)
    if label is None:
        return gradient_profile(model, batch, horizon, BURN_IN)
    return profiles_of(model, label, batch, horizon)


def format_table(profiles: dict[str, np.ndarray], ks=TABLE_KS) -> str:
    """A plain-text table: one row per k, one column per profile."""
    labels = list(profiles)
    width = max(12, *(len(lab) + 2 for lab in labels))
    lines = ["k".rjust(5) + "".join(lab.rjust(width) for lab in labels)]
    for k in ks:
        if all(k < len(p) for p in profiles.values()):
            lines.append(f"{k:5d}" + "".join(f"{profiles[lab][k]:{width}.3e}" for lab in labels))
    return "\n".join(lines)


def write_outputs(profiles: dict[str, np.ndarray], out_dir, title: str) -> list:
    """Write ``gradflow.csv``, ``gradflow.png`` and TensorBoard scalars under ``out_dir``.

    TensorBoard gets one run per profile (``out_dir/<label>/``) with tag ``gradflow/grad_norm``
    and k as the step, so ``tensorboard --logdir out_dir`` overlays the curves.

    Returns:
        The paths written.
    Raises:
        OutputError: if ``out_dir`` or a file in it cannot be written.
    """
    out = Path(out_dir)
    advice = "choose another --output folder"
    labels, n = list(profiles), min(len(p) for p in profiles.values())
    with replacing(out / "gradflow.csv", parents=True, advice=advice) as fh:
        rows = csv.writer(fh)
        rows.writerow(["k", *labels])
        for k in range(n):
            rows.writerow([k, *(f"{profiles[lab][k]:.6e}" for lab in labels)])
    with replacing(out / "gradflow.png", binary=True, advice=advice) as fh:
        _plot(profiles, fh, title)
    for label, profile in profiles.items():
        writer = open_writer(out / label.replace("/", "_"))
        try:
            for k, value in enumerate(profile):
                writer.add_scalar("gradflow/grad_norm", float(value), k)
        finally:
            writer.close()
    return [out / "gradflow.csv", out / "gradflow.png"]


def _plot(profiles: dict[str, np.ndarray], out, title: str) -> None:
    """Log-scale line plot of the profiles against k, as PNG into the binary file ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for label, profile in profiles.items():
        ax.semilogy(np.arange(len(profile)), np.maximum(profile, 1e-300), label=label)
    ax.set_xlabel("k (steps back from the loss)")
    ax.set_ylabel("mean ||dL_T / dh_(T-k)||")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)
