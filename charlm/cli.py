"""The ``charlm`` command: train, sample, eval.

The only module that reads argv or writes to the terminal. Commands parse, build, call,
report; torch is imported inside the commands so ``charlm --help`` stays fast. Every
:class:`~charlm.errors.CharLMError` becomes a one-line ``Error: ...`` and exit status 1.
"""

from __future__ import annotations

import json
import sys

import click

from charlm import __version__
from charlm.config import CELL_NAMES, RunConfig
from charlm.errors import CharLMError

_DEFAULTS = RunConfig()


class _Group(click.Group):
    """A click group that reports CharLMError as a clean message instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CharLMError as exc:
            raise click.ClickException(str(exc)) from None


def _cfg_default(section: str, key: str) -> str:
    """Default text for an option whose default comes from the config."""
    return f"{getattr(getattr(_DEFAULTS, section), key)}, config {section}.{key}"


def _h(text: str, default: str) -> str:
    """Help with its default spelled out (click would wrap a string default in parentheses)."""
    return f"{text}  [default: {default}]".strip()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"],
                                           "show_default": True})
@click.version_option(__version__, prog_name="charlm")
@click.option("-v", "--verbose", count=True, help="More log output (debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def main(verbose: int, quiet: bool) -> None:
    """Character-level language models with RNN, LSTM and GRU cores."""
    from charlm.log import setup_logging

    setup_logging(-1 if quiet else verbose)


@main.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False),

              help=_h("YAML config file (sections data, model, optim, train, sample).",
                      "configs/default.yaml = built-in defaults"))
@click.option("--cell", type=click.Choice(CELL_NAMES), help=_h("", _cfg_default("model", "cell")))
@click.option("--data",
              help=_h("Text file, directory of text files, or pystdlib / tinyshakespeare.",
                      _cfg_default("data", "corpus")))
@click.option("--run-name", help=_h("Run folder name.", "time and cell"))
@click.option("--max-steps", type=int, help=_h("", _cfg_default("train", "max_steps")))
@click.option("--max-epochs", type=float, help=_h("", _cfg_default("train", "max_epochs")))
@click.option("--max-time", type=float,
              help=_h("Wall-clock seconds.", _cfg_default("train", "max_time")))
@click.option("--device",
              help=_h("auto, cpu, cuda, cuda:N or mps.", _cfg_default("train", "device")))
@click.option("--seed", type=int, help=_h("", "random, logged"))
@click.option("--checkpoint-dir", help=_h("", _cfg_default("train", "checkpoint_dir")))
@click.option("--log-dir", help=_h("TensorBoard folder.", _cfg_default("train", "log_dir")))
@click.option("--hidden-size", type=int, help=_h("", _cfg_default("model", "hidden_size")))
@click.option("--num-layers", type=int, help=_h("", _cfg_default("model", "num_layers")))
@click.option("--dropout", type=float, help=_h("", _cfg_default("model", "dropout")))
@click.option("--seq-len", type=int, help=_h("BPTT length.", _cfg_default("train", "seq_len")))
@click.option("--batch-size", type=int, help=_h("", _cfg_default("train", "batch_size")))
@click.option("--lr", type=float, help=_h("Peak learning rate.", _cfg_default("optim", "lr")))
@click.option("--grad-clip", type=float,
              help=_h("Max gradient norm, 0 disables.", _cfg_default("optim", "grad_clip")))
@click.option("--progress/--no-progress", default=None, help=_h("", "on a terminal"))
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any config key; repeatable.")
def train(config_file, cell, data, run_name, max_steps, max_epochs, max_time, device, seed,
          checkpoint_dir, log_dir, hidden_size, num_layers, dropout, seq_len, batch_size, lr,
          grad_clip, progress, sets) -> None:
    """Train a model; checkpoints go to checkpoints/<run>/, TensorBoard events to runs/<run>/."""
    from charlm.config import build_config

    options = {"model.cell": cell, "data.corpus": data, "train.run_name": run_name,
               "train.max_steps": max_steps, "train.max_epochs": max_epochs,
               "train.max_time": max_time, "train.device": device, "train.seed": seed,
               "train.checkpoint_dir": checkpoint_dir, "train.log_dir": log_dir,
               "model.hidden_size": hidden_size, "model.num_layers": num_layers,
               "model.dropout": dropout, "train.seq_len": seq_len,
               "train.batch_size": batch_size, "optim.lr": lr, "optim.grad_clip": grad_clip,
               "train.progress": progress}
    cfg = build_config(config_file, sets, options)
    from charlm.run import train_run

    r = train_run(cfg)
    click.echo(f"done: run {r.run_name}, {r.steps} steps in {r.elapsed_s:.1f} s, "
               f"val loss {r.val_loss:.4f} nats/char, val bpc {r.val_bpc:.4f}, "
               f"checkpoint {r.best_path}")


def _load(checkpoint: str | None, checkpoint_dir: str, device: str):
    """Find, load and rebuild a checkpoint: (path, model, vocab, config, device)."""
    from charlm.checkpoint import find_checkpoint, load_checkpoint
    from charlm.run import load_model, resolve_device

    path = find_checkpoint(checkpoint, checkpoint_dir)
    dev = resolve_device(device)
    model, vocab, cfg = load_model(load_checkpoint(path, map_location=dev), dev)
    return path, model, vocab, cfg, dev


@main.command()
@click.argument("checkpoint", required=False)
@click.option("--length", type=int, help=_h("", "checkpoint's sample.length (500)"))
@click.option("--temperature", type=float,
              help=_h("0 is greedy (argmax).", "checkpoint's sample.temperature (0.8)"))
@click.option("--top-k", type=int, help=_h("Keep the k most likely characters.", "off"))
@click.option("--top-p", type=float, help=_h("Nucleus sampling mass in (0, 1].", "off"))
@click.option("--prime", default=None,
              help=_h("Text to start from; printed first.", "a newline, not printed"))
@click.option("--seed", type=int, default=None, help=_h("", "random"))
@click.option("--num-samples", type=int, default=1)
@click.option("--device", default="auto")
@click.option("--checkpoint-dir", default="checkpoints", help="Where to look without CHECKPOINT.")
def sample(checkpoint, length, temperature, top_k, top_p, prime, seed, num_samples, device,
           checkpoint_dir) -> None:
    """Generate text from CHECKPOINT (a .pt file or a run folder).

    Without CHECKPOINT, the best checkpoint of the newest run under checkpoints/ is used.
    """
    import torch

    from charlm.sampling import check_options, default_prime, generate

    path, model, vocab, cfg, dev = _load(checkpoint, checkpoint_dir, device)
    s = cfg.sample
    length = s.length if length is None else length
    temperature = s.temperature if temperature is None else temperature
    top_k, top_p = (s.top_k if top_k is None else top_k), (s.top_p if top_p is None else top_p)
    check_options(vocab.size, temperature, top_k, top_p, length)
    if num_samples < 1:
        raise click.BadParameter(f"{num_samples}; it must be 1 or more",
                                 param_hint="--num-samples")
    from charlm.corpora import normalize_newlines

    text = default_prime(vocab) if prime is None else normalize_newlines(prime)
    prime_ids = torch.from_numpy(vocab.encode(text).astype("int64")).to(dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed) if seed is not None else gen.seed()
    steps = generate(model, prime_ids, length, num_samples, temperature, top_k, top_p, gen)
    shown = "" if prime is None else text
    if num_samples == 1:
        sys.stdout.write(shown)
        for ids in steps:
            sys.stdout.write(vocab.chars[int(ids[0])])
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    out = torch.stack(list(steps), dim=1) if length else torch.zeros(num_samples, 0)  # (B, N)
    for i, row in enumerate(out.tolist()):
        sys.stdout.write(("" if i == 0 else "\n") + shown + vocab.decode(row) + "\n")


@main.command("eval")
@click.argument("checkpoint")
@click.option("--data", help=_h("Corpus to score.", "the checkpoint's corpus"))
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="val")
@click.option("--batch-size", type=int, default=None, help=_h("", "train.eval_batch_size"))
@click.option("--device", default="auto")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def eval_(checkpoint, data, split, batch_size, device, as_json) -> None:
    """Loss (nats/char), bpc and perplexity of CHECKPOINT over a whole split.

    The split boundaries come from the checkpoint's config; the state is carried through it.
    """
    from charlm.corpora import load_text
    from charlm.data import split_ids
    from charlm.metrics import nats_to_bits, perplexity
    from charlm.training import evaluate

    path, model, vocab, cfg, _ = _load(checkpoint, "checkpoints", device)
    d = cfg.data
    corpus = data or d.corpus
    ids = split_ids(vocab.encode(load_text(corpus, d.data_dir, d.encoding, d.errors)),
                    d.train_frac, d.val_frac)[split]
    loss, n = evaluate(model, ids, batch_size or cfg.train.eval_batch_size, cfg.train.seq_len)
    result = {"checkpoint": str(path), "corpus": corpus, "split": split, "chars": n,
              "loss_nats": loss, "bpc": nats_to_bits(loss), "perplexity": perplexity(loss)}
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{split}: loss {loss:.4f} nats/char, {result['bpc']:.4f} bpc, perplexity "
                   f"{result['perplexity']:.3f} over {n:,} chars ({path})")
