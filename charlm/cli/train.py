"""``charlm train``: new, resumed and fine-tuned runs."""

from __future__ import annotations

import click

from charlm.cli.common import cfg_default, h
from charlm.config import CELL_NAMES


@click.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False),

              help=h("YAML config file (sections data, model, optim, train, sample).",
                      "configs/default.yaml = built-in defaults"))
@click.option("--cell", type=click.Choice(CELL_NAMES), help=h("", cfg_default("model", "cell")))
@click.option("--data",
              help=h("Text file, directory of text files, or pystdlib / tinyshakespeare.",
                      cfg_default("data", "corpus")))
@click.option("--run-name", help=h("Run folder name.", "time and cell"))
@click.option("--max-steps", type=int, help=h("", cfg_default("train", "max_steps")))
@click.option("--max-epochs", type=float, help=h("", cfg_default("train", "max_epochs")))
@click.option("--max-time", type=float,
              help=h("Wall-clock seconds.", cfg_default("train", "max_time")))
@click.option("--device",
              help=h("auto, cpu, cuda, cuda:N or mps.", cfg_default("train", "device")))
@click.option("--seed", type=int, help=h("", "random, logged"))
@click.option("--checkpoint-dir", help=h("", cfg_default("train", "checkpoint_dir")))
@click.option("--log-dir", help=h("TensorBoard folder.", cfg_default("train", "log_dir")))
@click.option("--hidden-size", type=int, help=h("", cfg_default("model", "hidden_size")))
@click.option("--num-layers", type=int, help=h("", cfg_default("model", "num_layers")))
@click.option("--dropout", type=float, help=h("", cfg_default("model", "dropout")))
@click.option("--seq-len", type=int, help=h("BPTT length.", cfg_default("train", "seq_len")))
@click.option("--batch-size", type=int, help=h("", cfg_default("train", "batch_size")))
@click.option("--lr", type=float, help=h("Peak learning rate.", cfg_default("optim", "lr")))
@click.option("--grad-clip", type=float,
              help=h("Max gradient norm, 0 disables.", cfg_default("optim", "grad_clip")))
@click.option("--progress/--no-progress", default=None, help=h("", "on a terminal"))
@click.option("--encoding", help=h("Text encoding of the corpus.",
                                    cfg_default("data", "encoding")))
@click.option("--stop-at-step", type=int,
              help="Pause cleanly after this step; the schedule still runs to the budget.")
@click.option("--resume", metavar="latest|RUN|CHECKPOINT",
              help="Continue a run exactly (its last.pt); options given now override its "
                   "config and are logged.")
@click.option("--init-from", type=click.Path(), metavar="CHECKPOINT",
              help="Start a new run from these weights and vocabulary (fine-tuning).")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any config key; repeatable.")
def train(config_file, cell, data, run_name, max_steps, max_epochs, max_time, device, seed,
          checkpoint_dir, log_dir, hidden_size, num_layers, dropout, seq_len, batch_size, lr,
          grad_clip, progress, encoding, stop_at_step, resume, init_from, sets) -> None:
    """Train a model; checkpoints go to checkpoints/<run>/, TensorBoard events to runs/<run>/.

    Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves last.pt and exits; continue
    with --resume.
    """
    options = {"model.cell": cell, "data.corpus": data, "train.run_name": run_name,
               "train.max_steps": max_steps, "train.max_epochs": max_epochs,
               "train.max_time": max_time, "train.device": device, "train.seed": seed,
               "train.checkpoint_dir": checkpoint_dir, "train.log_dir": log_dir,
               "model.hidden_size": hidden_size, "model.num_layers": num_layers,
               "model.dropout": dropout, "train.seq_len": seq_len,
               "train.batch_size": batch_size, "optim.lr": lr, "optim.grad_clip": grad_clip,
               "train.progress": progress, "data.encoding": encoding,
               "train.stop_at_step": stop_at_step}
    if resume and init_from:
        raise click.UsageError("--resume continues a run; --init-from starts a new one from "
                               "its weights: give one of them")
    r = _start_run(resume, init_from, config_file, sets, options)
    if not r.main:  # another rank of a torchrun job: rank 0 reports
        return
    if r.paused:
        click.echo(f"paused: run {r.run_name} at step {r.steps}; continue with: "
                   f"charlm train --resume {r.run_name}")
        return
    click.echo(f"done: run {r.run_name}, {r.steps} steps in {r.elapsed_s:.1f} s, "
               f"val loss {r.val_loss:.4f} nats/{r.unit}, val "
               f"{'bpc' if r.unit == 'char' else 'bits/byte'} {r.val_bpc:.4f}, "
               f"checkpoint {r.best_path}")


def _start_run(resume, init_from, config_file, sets, options):
    """Resolve the config (new, resumed or fine-tuned run) and train."""
    from charlm.checkpoint import find_checkpoint, load_checkpoint
    from charlm.config import build_config
    from charlm.resume import config_for_init, config_for_resume, resume_target
    from charlm.run import train_run

    if resume:
        path = resume_target(resume, options["train.checkpoint_dir"] or "checkpoints")
        ckpt = load_checkpoint(path)
        return train_run(config_for_resume(ckpt, path.parent, config_file, sets, options),
                         resume=ckpt, resume_dir=path.parent)
    if init_from:
        ckpt = load_checkpoint(find_checkpoint(init_from,
                                               options["train.checkpoint_dir"] or "checkpoints"))
        return train_run(config_for_init(ckpt, config_file, sets, options), init=ckpt)
    return train_run(build_config(config_file, sets, options))
