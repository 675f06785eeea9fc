"""A recurrent core that is not in charlm's cell table, for tests that add a table entry:
an Elman RNN with ReLU instead of tanh, built and stepped like :mod:`charlm.models.fused`'s
cores (``Class(input_size, hidden_size, num_layers, dropout)``, ``step``, ``trace``)."""

from torch import nn

from charlm.models.reference import run_core


class ReluRNNCore(nn.RNN):
    """``h_t = relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, batch-first."""

    def __init__(self, input_size, hidden_size, num_layers, dropout=0.0):
        super().__init__(input_size, hidden_size, num_layers, nonlinearity="relu",
                         batch_first=True, dropout=dropout if num_layers > 1 else 0.0)

    def step(self, x, hidden=None):
        """(B, E) -> (B, H) and the new state, through the reference cells."""
        out, hidden, _ = run_core(self, x.unsqueeze(1), hidden)
        return out[:, 0], hidden

    def trace(self, x, hidden=None):
        """The forward pass with every layer's output recorded."""
        return run_core(self, x, hidden, record_gates=True)
