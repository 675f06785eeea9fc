"""The run configuration's schema: frozen dataclasses whose field metadata carries each key's
help text, allowed range and, where one exists, its dedicated ``charlm train`` option.

``charlm train`` generates its options from this metadata (:mod:`charlm.cli.train`), and the
README's key table is checked against it, so help and defaults live in one place.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Union

from charlm.config.cells import cell_names

Choices = Union[Iterable[str], Callable[[], Iterable[str]], None]

# Maxima where a larger value can only be a mistake (a typo, a digit too many): the largest
# character-level RNNs published are a few thousand units wide and a few dozen layers deep.
# Values below them can still be too large for the machine; the size estimate refuses those.
MAX_WIDTH = 65_536      # hidden_size, embedding_size
MAX_LAYERS = 1_024      # num_layers
MAX_STREAMS = 1 << 20   # batch_size, eval_batch_size
MAX_SEQ_LEN = 1 << 24   # seq_len (characters per stream per step)
MAX_SAMPLES = 1 << 16   # charlm sample --num-samples (samples generated together)
MAX_BEAM_WIDTH = 1 << 12  # charlm sample --beam-width (past a few hundred, no gain is known)
MAX_LENGTH = 1 << 30    # sample.length, --length (characters generated)


def _field(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, choices: Choices = None, flag: str | None = None) -> Any:
    """A dataclass field whose metadata carries its help text, range and CLI option.

    Args:
        choices: the allowed values, or a function returning them (read at each check, so
            a table that grows is followed).
        flag: the dedicated ``charlm train`` option for this key (``--hidden-size``).
    """
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "flag": flag,
            "choices": choices if callable(choices) or choices is None else tuple(choices)}
    return field(default=default, metadata=meta)


def choices_of(meta: typing.Mapping[str, Any]) -> tuple[str, ...] | None:
    """A field's allowed values now (calling the function a live field holds)."""
    choices = meta["choices"]
    return tuple(choices()) if callable(choices) else choices


@dataclass(frozen=True)
class DataConfig:
    """Where the text comes from and how it is split (contiguous train / val / test)."""

    corpus: str = _field("pystdlib", "text file, directory of text files, or named corpus "
                         "(pystdlib, tinyshakespeare, enwik8, text8)", flag="--data")
    data_dir: str = _field("data", "folder for downloaded named corpora "
                           "(tinyshakespeare/input.txt)")
    unit: str = _field("char", "what one id stands for: char (a Unicode character) or byte "
                       "(vocabulary of 256, any language or encoding)", choices=("char", "byte"))
    encoding: str = _field("utf-8", "text encoding of corpus files (unit char)",
                           flag="--encoding")
    errors: str = _field("strict", "undecodable bytes: strict (error), replace (U+FFFD) or "
                         "ignore (drop)", choices=("strict", "replace", "ignore"))
    cache_dir: str = _field("data/cache", "folder for encoded corpora (memory-mapped ids, "
                            "reused while the corpus is unchanged)")
    train_frac: float = _field(0.9, "fraction of the corpus, from its start, used to train",
                               lo=0.0, hi=1.0, lo_open=True)
    val_frac: float = _field(0.05, "fraction after the train split used for validation; the "
                             "rest is the test split", lo=0.0, hi=1.0, lo_open=True)


@dataclass(frozen=True)
class ModelConfig:
    """Embedding -> recurrent core -> dropout -> linear decoder (see charlm.models)."""

    cell: str = _field("lstm", "recurrent core", choices=cell_names, flag="--cell")
    embedding_size: int = _field(64, "character embedding size E", lo=1,
                                 hi=MAX_WIDTH)
    hidden_size: int = _field(256, "hidden units per layer H", lo=1, hi=MAX_WIDTH,
                              flag="--hidden-size")
    num_layers: int = _field(2, "stacked recurrent layers L", lo=1, hi=MAX_LAYERS,
                             flag="--num-layers")
    dropout: float = _field(0.0, "dropout between layers and before the decoder", lo=0.0,
                            hi=0.99, flag="--dropout")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, and global-norm gradient clipping."""

    lr: float = _field(5e-3, "peak learning rate", lo=0.0, hi=10.0, lo_open=True, flag="--lr")
    min_lr: float = _field(5e-5, "learning rate at the end of the cosine decay (<= lr)",
                           lo=0.0, hi=10.0)
    weight_decay: float = _field(0.0, "AdamW decoupled weight decay", lo=0.0)
    beta1: float = _field(0.9, "Adam beta1", lo=0.0, hi=0.9999)
    beta2: float = _field(0.99, "Adam beta2", lo=0.0, hi=0.99999)
    warmup_steps: int = _field(100, "linear warm-up steps", lo=0)
    schedule: str = _field("cosine", "learning-rate decay after warm-up",
                           choices=("cosine", "constant"))
    grad_clip: float = _field(1.0, "max global gradient norm; 0 disables clipping", lo=0.0,
                              flag="--grad-clip")


@dataclass(frozen=True)
class TrainConfig:
    """Truncated BPTT loop: batch layout, stopping, evaluation, checkpoints and logging."""

    batch_size: int = _field(32, "parallel streams B", lo=1, hi=MAX_STREAMS,
                             flag="--batch-size")
    seq_len: int = _field(64, "BPTT length T (characters per step per stream)", lo=1,
                          hi=MAX_SEQ_LEN,
                          flag="--seq-len")
    max_steps: Optional[int] = _field(None, "stop after this many optimizer steps", lo=1,
                                      flag="--max-steps")
    max_epochs: Optional[float] = _field(None, "stop after this many passes over the train "
                                         "split", lo=0.0, lo_open=True, flag="--max-epochs")
    stop_at_step: Optional[int] = _field(None, "pause cleanly after this step (the schedule "
                                         "still runs to the budget); continue with --resume",
                                         lo=1, flag="--stop-at-step")
    max_time: Optional[float] = _field(300.0, "stop after this many wall-clock seconds from "
                                       "the first step (evaluations included)",
                                       lo=0.0, lo_open=True, flag="--max-time")
    eval_interval: int = _field(150, "steps between evaluations on the val split", lo=1)
    eval_max_chars: int = _field(50_000, "val characters per periodic evaluation (spread "
                                 "over the split; the run's last evaluation scores all "
                                 "of it)", lo=1)
    eval_batch_size: int = _field(64, "streams during evaluation", lo=1, hi=MAX_STREAMS)
    patience: int = _field(5, "evaluations without a new best val loss before a warning that "
                           "val stopped improving (overfitting); 0 never warns", lo=0)
    early_stop: bool = _field(False, "stop the run when that warning comes (best.pt keeps "
                              "the best weights)")
    checkpoint_interval: int = _field(500, "steps between saves of last.pt", lo=1)
    log_interval: int = _field(50, "steps between train scalars and progress updates", lo=1)
    log_gradflow_interval: int = _field(0, "steps between gradient-flow profiles, per-layer "
                                        "gradient norms and the pre-clip norm histogram in "
                                        "TensorBoard; 0 disables", lo=0)
    gradflow_horizon: int = _field(100, "K of the gradient-flow profile logged in training",
                                   lo=1)
    log_gates: bool = _field(True, "log gate saturation (LSTM, GRU) at each evaluation")
    max_nonfinite: int = _field(10, "non-finite losses or gradient norms in a row (each "
                                "update skipped) before training stops", lo=1)
    sample_length: int = _field(300, "characters of the text sample logged at each "
                                "evaluation; 0 disables", lo=0)
    seed: Optional[int] = _field(None, "random seed; unset draws one and logs it", lo=0,
                                 hi=2**63 - 1, flag="--seed")
    device: str = _field("auto", "auto, cpu, cuda, cuda:N or mps", flag="--device")
    precision: str = _field("fp32", "bf16 runs forward passes under torch.autocast in "
                            "bfloat16 (for GPUs; losses stay fp32)", choices=("fp32", "bf16"))
    compile: bool = _field(False, "torch.compile the model for training steps")
    share_cpu: bool = _field(True, "on a CPU, train on one thread while other processes keep "
                             "the CPU busy, and on all again when they stop (minGRU and "
                             "minLSTM results then differ in their last bits)")
    run_name: Optional[str] = _field(None, "run folder name (letters, digits, . _ -); unset "
                                     "uses time and cell", flag="--run-name")
    checkpoint_dir: str = _field("checkpoints", "parent folder of run checkpoints",
                                 flag="--checkpoint-dir")
    log_dir: str = _field("runs", "parent folder of TensorBoard runs", flag="--log-dir")
    progress: Optional[bool] = _field(None, "tqdm progress bar; unset shows it on a terminal",
                                      flag="--progress/--no-progress")


@dataclass(frozen=True)
class SampleConfig:
    """Defaults for ``charlm sample`` and the samples logged during training."""

    length: int = _field(500, "characters to generate", lo=0, hi=MAX_LENGTH)
    temperature: float = _field(0.8, "softmax temperature; 0 is greedy", lo=0.0)
    top_k: Optional[int] = _field(None, "keep only the k most likely characters", lo=1)
    top_p: Optional[float] = _field(None, "nucleus sampling mass", lo=0.0, hi=1.0, lo_open=True)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; serialised next to its checkpoints and inside each of them."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (YAML- and ``torch.load(weights_only=True)``-safe)."""
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = dict(typing.get_type_hints(RunConfig))


@dataclass(frozen=True)
class Key:
    """One config key as the CLI and the docs see it."""

    dotted: str          # section.name
    type: Any            # int, float, str or bool (Optional unwrapped)
    default: Any
    help: str
    flag: str | None     # its dedicated charlm train option, if any
    meta: typing.Mapping[str, Any]


def keys() -> list[Key]:
    """Every config key in declaration order, section by section."""
    out = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            base = args[0] if typing.get_origin(hint) is Union else hint
            out.append(Key(f"{section}.{f.name}", base, f.default, f.metadata["help"],
                           f.metadata["flag"], f.metadata))
    return out
