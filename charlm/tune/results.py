"""A study read back: its trials as rows and as a table, the JSON of ``--json``, and the best
trial's config as a YAML file that ``charlm train --config`` takes as it is.

A trial's value is its final val loss over the whole val split in nats/char; a pruned
trial's is the last val loss it reported (on the periodic evaluation's characters), shown
for what it is, never the best.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from charlm.config import RunConfig, dump_yaml
from charlm.system.files import replacing
from charlm.tune.plan import Plan

logger = logging.getLogger(__name__)

SHORT = {"model.cell": "cell", "model.embedding_size": "emb", "model.hidden_size": "hidden",
         "model.num_layers": "layers", "model.dropout": "dropout", "optim.lr": "lr",
         "optim.min_lr": "min_lr", "optim.warmup_steps": "warmup", "optim.grad_clip": "clip",
         "optim.weight_decay": "wd", "train.batch_size": "batch", "train.seq_len": "seq"}
ORDER = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2,
         TrialState.WAITING: 3, TrialState.FAIL: 4}


def values_of(trial: FrozenTrial) -> dict[str, Any]:
    """The config values a trial drew: ``{dotted key: value}`` (a conditional param's name
    ``key|condition`` gives its key)."""
    return {name.partition("|")[0]: value for name, value in trial.params.items()}


def rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: complete ones by value, then pruned ones by value, then the rest
    by number. Keys: number, state, value, params, steps, seconds, run, checkpoint, error."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: (
        ORDER.get(t.state, 5), t.value if t.value is not None else math.inf, t.number))
    return [{"number": t.number, "state": t.state.name.lower(), "value": t.value,
             "params": values_of(t), "steps": t.user_attrs.get("steps"),
             "seconds": t.user_attrs.get("seconds"), "run": t.user_attrs.get("run"),
             "checkpoint": t.user_attrs.get("checkpoint"), "error": t.user_attrs.get("error")}
            for t in trials]


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The complete trial of lowest value, or None before any completes."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return min(done, key=lambda t: (t.value, t.number)) if done else None


def table(study: optuna.Study, plan: Plan) -> str:
    """The trials as a text table: trial, state, value (nats/char), the searched settings,
    steps and seconds; then a line for the best."""
    keys = plan.space.searched()
    head = ["trial", "state", "val loss", *(SHORT.get(k, k) for k in keys), "steps", "s"]
    lines = [[str(r["number"]), r["state"], _cell(r["value"], 4),
              *(_cell(r["params"].get(k)) for k in keys), _cell(r["steps"]),
              _cell(r["seconds"], 0)] for r in rows(study)]
    widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head))]
    text = ["  ".join(c.rjust(w) if i != 1 else c.ljust(w) for i, (c, w) in
                      enumerate(zip(row, widths))).rstrip() for row in [head, *lines]]
    best = best_trial(study)
    text.append(f"best: trial {best.number}, val loss {best.value:.4f} nats/char, checkpoint "
                f"{best.user_attrs.get('checkpoint')}" if best else "best: none yet (no trial "
                "has completed)")
    return "\n".join(text)


def _cell(value: Any, digits: int = 3) -> str:
    """A table cell: '-' for nothing; a float with ``digits`` decimals where ``digits`` is 0
    or 4 (seconds, losses), else to 3 significant digits (settings)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits in (0, 4) else f"{value:.3g}"
    return str(value)


def as_json(study: optuna.Study, plan: Plan) -> dict[str, Any]:
    """``{"study", "best": {"value", "config", "checkpoint", "number"} | None, "trials":
    [{"number", "state", "value", "params", "steps", "seconds"}]}``."""
    best = best_trial(study)
    return {"study": study.study_name,
            "best": None if best is None else {
                "number": best.number, "value": best.value,
                "config": plan.best_config(values_of(best)).to_dict(),
                "checkpoint": best.user_attrs.get("checkpoint")},
            "trials": [{k: r[k] for k in ("number", "state", "value", "params", "steps",
                                          "seconds")} for r in rows(study)]}


def write_best_config(path: str | Path, study: optuna.Study, plan: Plan) -> RunConfig | None:
    """Write the best trial's config to ``path`` as YAML (nothing before a trial completes).

    Returns:
        The config written, or None.
    Raises:
        OutputError: if ``path`` cannot be written (naming ``--best-config``).
    """
    best = best_trial(study)
    if best is None:
        return None
    cfg = plan.best_config(values_of(best))
    head = (f"# The best trial of study {study.study_name}: trial {best.number}, val loss "
            f"{best.value:.4f} nats/char on the whole val split after {plan.trial_time_s:g} s.\n"
            f"# Its checkpoint: {best.user_attrs.get('checkpoint')}\n"
            f"# Train it again: charlm train --config {path} (--seed S for other seeds)\n")
    with replacing(path, parents=True, advice="choose another --best-config") as fh:
        fh.write(head + dump_yaml(cfg))
    logger.info("best config (trial %d, %.4f nats/char) written to %s", best.number,
                best.value, path)
    return cfg
