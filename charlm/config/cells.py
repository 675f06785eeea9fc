"""The one table of recurrent cells: what ``--cell`` accepts, what each cell records (its
gates; their count is ``len(gates)``), where it comes from and which module builds it.
Torch-free, so the CLI and the config can read it without importing torch.

Everything that lists cells reads this table: the ``--cell`` choices, config validation,
:func:`charlm.models.lm.create_model`, the benchmark, the gate statistics and the tests
(parametrised over it), and every comma list of cells goes through :func:`parse_cells`. Adding
a cell is one entry here and one module that defines its core (see ``docs/architecture.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from charlm.errors import OptionError


@dataclass(frozen=True)
class CellSpec:
    """One recurrent cell.

    Attributes:
        name: the value of ``--cell`` / ``model.cell``.
        gates: names of the per-step quantities its traced forward records, besides the
            layer output ``h`` (and ``c`` where ``state`` has it), in PyTorch's packing order.
        sigmoid_gates: the subset of ``gates`` squashed into (0, 1), whose saturation means
            something (Karpathy, Johnson & Fei-Fei 2015, section 4.2).
        state: the tensors of its hidden state, each (L, B, H): ``("h",)`` or ``("h", "c")``.
        reference: the paper its equations come from.
        core: ``module:Class`` of the recurrent core, built as
            ``Class(input_size, hidden_size, num_layers, dropout)``.
    """

    name: str
    gates: tuple[str, ...]
    sigmoid_gates: tuple[str, ...]
    state: tuple[str, ...]
    reference: str
    core: str


CELLS: Mapping[str, CellSpec] = MappingProxyType({spec.name: spec for spec in (
    CellSpec("rnn", (), (), ("h",),
             "Elman 1990, Finding structure in time", "charlm.models.fused:RNNCore"),
    CellSpec("lstm", ("i", "f", "g", "o"), ("i", "f", "o"), ("h", "c"),
             "Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000 (forget gate)",
             "charlm.models.fused:LSTMCore"),
    CellSpec("gru", ("r", "z", "n"), ("r", "z"), ("h",),
             "Cho et al. 2014 (PyTorch's variant: reset gate after the hidden matmul)",
             "charlm.models.fused:GRUCore"),
    CellSpec("mingru", ("z",), ("z",), ("h",),
             "Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, Were RNNs all we needed?, "
             "section 3.1", "charlm.models.minimal:MinGRUCore"),
    CellSpec("minlstm", ("f", "i"), ("f", "i"), ("h",),
             "Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, Were RNNs all we needed?, "
             "section 3.2 (f and i normalised to sum to 1)", "charlm.models.minimal:MinLSTMCore"),
    CellSpec("indrnn", (), (), ("h",),
             "Li, Li, Cook, Zhu & Gao 2018, Independently recurrent neural network (IndRNN)",
             "charlm.models.indrnn:IndRNNCore"),
)})


def cell_names() -> tuple[str, ...]:
    """The names of every cell, in table order (read afresh, so a new entry shows at once)."""
    return tuple(CELLS)


def get_cell(name: str) -> CellSpec:
    """The table entry of ``name``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in CELLS:
        raise ValueError(f"unknown cell '{name}'; choose one of {', '.join(CELLS)}")
    return CELLS[name]


def parse_cells(text: str, option: str = "--cells") -> tuple[str, ...]:
    """The cells of a comma-separated list (``lstm,gru``), each checked against the table.

    Args:
        option: the option the list came from, named in the error.
    Raises:
        OptionError: for an empty list or unknown names, listing the valid ones.
    """
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in CELLS]
    if unknown or not names:
        raise OptionError(f"unknown cell(s) {', '.join(unknown) or '(none given)'}; {option} "
                          f"takes a comma-separated list of {', '.join(CELLS)}")
    return names
