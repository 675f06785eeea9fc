"""``charlm train``: new, resumed and fine-tuned runs.

The options that set config keys (``--cell``, ``--hidden-size``, ...) are generated from the
config schema's metadata (:func:`charlm.config.keys`), so each option's help and default come
from the one place that defines the key.
"""

from __future__ import annotations

import logging

import click

from charlm.cli.common import LiveChoice, h
from charlm.config import keys

logger = logging.getLogger(__name__)

_SEP = "__"  # click parameter names: model.hidden_size -> model__hidden_size


def _key_option(key):
    """The click option of one config key with a dedicated flag."""
    choices = key.meta["choices"]
    kind = (LiveChoice(choices) if callable(choices) else click.Choice(choices) if choices
            else key.type)
    extra = {} if key.type is bool else {"type": kind}
    return click.option(key.flag, key.dotted.replace(".", _SEP), default=None,
                        help=h(key.help, f"{'unset' if key.default is None else key.default}, "
                                         f"config {key.dotted}"), **extra)


def config_options(command):
    """Add one option per config key that declares a flag, in schema order."""
    for key in reversed([k for k in keys() if k.flag]):
        command = _key_option(key)(command)
    return command


@click.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              multiple=True,
              help=h("YAML config file (sections data, model, optim, train, sample); "
                     "repeatable, a later file's keys win.",
                     "configs/default.yaml = built-in defaults"))
@config_options
@click.option("--resume", metavar="latest|RUN|CHECKPOINT",
              help="Continue a run exactly (its last.pt); options given now override its "
                   "config and are logged.")
@click.option("--init-from", type=click.Path(), metavar="CHECKPOINT",
              help="Start a new run from these weights and vocabulary (fine-tuning).")
@click.option("--grow-vocab", is_flag=True,
              help="With --init-from: add the corpus's characters that the checkpoint's "
                   "vocabulary lacks (new embedding rows: the mean of the old; new decoder "
                   "rows: weights 0, a low bias), instead of refusing the text.")
@click.option("--allow-corpus-change", is_flag=True,
              help="With --resume: continue even though the corpus's bytes differ from those "
                   "the checkpoint recorded.")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any config key; repeatable.")
def train(config_file, resume, init_from, grow_vocab, allow_corpus_change, sets, **options
          ) -> None:
    """Train a model; checkpoints go to checkpoints/<run>/, TensorBoard events to runs/<run>/.

    Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves last.pt and exits; continue
    with --resume.
    """
    from charlm.metrics import bits_unit, loss_unit

    options = {name.replace(_SEP, "."): value for name, value in options.items()}
    if resume and init_from:
        from charlm.errors import OptionError

        raise OptionError("--resume continues a run; --init-from starts a new one from its "
                          "weights: give one of them")
    if grow_vocab and not init_from:
        from charlm.errors import OptionError

        raise OptionError("--grow-vocab adds characters to a checkpoint's vocabulary when "
                          "fine-tuning: give it with --init-from CHECKPOINT")
    r = _start_run(resume, init_from, config_file, sets, options, allow_corpus_change,
                   grow_vocab)
    if not r.main:  # another rank of a torchrun job: rank 0 reports
        return
    if r.paused:
        click.echo(f"paused: run {r.run_name} at step {r.steps}; continue with: "
                   f"charlm train --resume {r.run_name}")
        return
    seconds = f"{r.elapsed_s:.1f} s" if abs(r.session_s - r.elapsed_s) < 0.05 else \
        f"{r.elapsed_s:.1f} s of training in all ({r.session_s:.1f} s in this command)"
    early = (f"stopped early at step {r.steps} (val loss stopped improving; best at step "
             f"{r.best_step}): " if r.early_stopped else "")
    click.echo(f"done: {early}run {r.run_name}, {r.steps} steps in {seconds}, "
               f"{_done_figures(r, loss_unit(r.unit), bits_unit(r.unit))}")


def _done_figures(r, loss_unit: str, bits_unit: str) -> str:
    """The val figures of the ``done:`` line, each beside the checkpoint it belongs to and
    saying what it covers."""
    from charlm.metrics import nats_to_bits

    noun = "byte" if r.unit == "byte" else "char"
    whole = f"over the whole val split ({r.val_chars:,} {noun}s)"
    last = f"val loss {r.val_loss:.4f} {loss_unit}, val {bits_unit} {r.val_bpc:.4f} {whole}"
    if r.last_path is None or r.best_step == r.steps or not r.best_path.exists():
        return f"{last}, checkpoint {r.best_path}"
    covers = "the whole val split" if r.best_val_chars == r.val_chars else \
        f"{r.best_val_chars:,} val {noun}s sampled across the split"
    return (f"{last}, checkpoint {r.last_path}; best: val loss {r.best_val_loss:.4f} "
            f"{loss_unit}, val {bits_unit} {nats_to_bits(r.best_val_loss):.4f} over {covers} "
            f"(step {r.best_step}), checkpoint {r.best_path}")


def _start_run(resume, init_from, config_file, sets, options, allow_corpus_change=False,
               grow_vocab=False):
    """Resolve the config (new, resumed or fine-tuned run) and train."""
    from charlm.config import build_config
    from charlm.config.overrides import config_for_init, config_for_resume
    from charlm.store.checkpoint import load_checkpoint, step_of
    from charlm.store.names import find_checkpoint, resume_target
    from charlm.store.restore import check_checkpoint
    from charlm.training.run import train_run

    checkpoint_dir = options["train.checkpoint_dir"] or "checkpoints"
    if not (resume or init_from):
        return train_run(build_config(config_file, sets, options))
    path = (resume_target(resume, checkpoint_dir) if resume
            else find_checkpoint(init_from, checkpoint_dir))
    ckpt = load_checkpoint(path, resume=bool(resume))
    check_checkpoint(ckpt, source=str(path))  # every check, before anything is written
    logger.info("loaded %s (step %s)", path, step_of(ckpt))
    if resume:
        cfg = config_for_resume(ckpt["config"], path.parent, config_file, sets, options)
        return train_run(cfg, resume=ckpt, resume_dir=path.parent,
                         allow_corpus_change=allow_corpus_change)
    return train_run(config_for_init(ckpt["config"], config_file, sets, options), init=ckpt,
                     grow_vocab=grow_vocab)
