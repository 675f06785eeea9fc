"""The ``charlm`` command: train, sample, eval.

The only module that reads argv or writes to the terminal. Commands parse, build, call,
report; torch is imported inside the commands so ``charlm --help`` stays fast. Every
:class:`~charlm.errors.CharLMError` becomes a one-line ``Error: ...`` and exit status 1.
"""

from __future__ import annotations

import contextlib
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
            error = click.ClickException(str(exc))
            error.exit_code = getattr(exc, "exit_code", 1)  # 130 / 143 after a signal
            raise error from None


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
@click.option("--encoding", help=_h("Text encoding of the corpus.",
                                    _cfg_default("data", "encoding")))
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
    if r.paused:
        click.echo(f"paused: run {r.run_name} at step {r.steps}; continue with: "
                   f"charlm train --resume {r.run_name}")
        return
    click.echo(f"done: run {r.run_name}, {r.steps} steps in {r.elapsed_s:.1f} s, "
               f"val loss {r.val_loss:.4f} nats/char, val bpc {r.val_bpc:.4f}, "
               f"checkpoint {r.best_path}")


def _start_run(resume, init_from, config_file, sets, options):
    """Resolve the config (new, resumed or fine-tuned run) and train."""
    from charlm.checkpoint import load_checkpoint
    from charlm.config import build_config
    from charlm.resume import config_for_init, config_for_resume, resume_target
    from charlm.run import train_run

    if resume:
        path = resume_target(resume, options["train.checkpoint_dir"] or "checkpoints")
        ckpt = load_checkpoint(path)
        return train_run(config_for_resume(ckpt, config_file, sets, options), resume=ckpt,
                         resume_dir=path.parent)
    if init_from:
        ckpt = load_checkpoint(init_from)
        return train_run(config_for_init(ckpt, config_file, sets, options), init=ckpt)
    return train_run(build_config(config_file, sets, options))


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
@click.option("--drop-unknown", is_flag=True,
              help="Drop priming characters the model never saw instead of stopping.")
@click.option("--seed", type=int, default=None, help=_h("", "random"))
@click.option("--num-samples", type=click.IntRange(min=1), default=1)
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write the text to this file (always UTF-8) instead of stdout.")
@click.option("--device", default="auto")
@click.option("--checkpoint-dir", default="checkpoints", help="Where to look without CHECKPOINT.")
def sample(checkpoint, length, temperature, top_k, top_p, prime, drop_unknown, seed,
           num_samples, output, device, checkpoint_dir) -> None:
    """Generate text from CHECKPOINT (a .pt file or a run folder).

    Without CHECKPOINT, the best checkpoint of the newest run under checkpoints/ is used. On a
    terminal whose encoding cannot show a character, it is printed as an escape (\\uXXXX);
    --output always writes exact UTF-8.
    """
    import torch

    from charlm.sampling import check_options, generate, prepare_prime

    path, model, vocab, cfg, dev = _load(checkpoint, checkpoint_dir, device)
    s = cfg.sample
    length = s.length if length is None else length
    temperature = s.temperature if temperature is None else temperature
    top_k, top_p = (s.top_k if top_k is None else top_k), (s.top_p if top_p is None else top_p)
    check_options(vocab.size, temperature, top_k, top_p, length)
    shown, prime_ids = prepare_prime(vocab, prime, drop_unknown)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed) if seed is not None else gen.seed()
    steps = generate(model, prime_ids.to(dev), length, num_samples, temperature, top_k, top_p,
                     gen)
    with _text_out(output) as out:
        if num_samples == 1:  # stream character by character
            out.write(shown)
            for ids in steps:
                out.write(vocab.chars[int(ids[0])])
                out.flush()
            out.write("\n")
            return
        rows = torch.stack(list(steps), 1).tolist() if length else [[]] * num_samples
        for i, row in enumerate(rows):
            out.write(("\n" if i else "") + shown + vocab.decode(row) + "\n")


@contextlib.contextmanager
def _text_out(output: str | None):
    """A UTF-8 file, or stdout made unable to fail on characters its encoding lacks."""
    if output is not None:
        try:
            fh = open(output, "w", encoding="utf-8", newline="\n")
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
        with fh:
            yield fh
        return
    if (sys.stdout.encoding or "").lower().replace("-", "") != "utf8":
        sys.stdout.reconfigure(errors="backslashreplace")
    yield sys.stdout


@main.command()
@click.argument("checkpoint")
def inspect(checkpoint) -> None:
    """Print what CHECKPOINT holds: config, vocabulary, step, val figures, size, versions."""
    import yaml

    from charlm.checkpoint import load_checkpoint
    from charlm.metrics import nats_to_bits

    ckpt = load_checkpoint(checkpoint)
    st = ckpt.get("state", {})
    params = sum(t.numel() for k, t in ckpt["model"].items())
    best, last = st.get("best_val_loss", float("nan")), st.get("last_val_loss", float("nan"))
    click.echo(f"checkpoint: {checkpoint} (format {ckpt['format_version']})")
    click.echo("versions: " + ", ".join(f"{k} {v}" for k, v in ckpt["versions"].items()))
    click.echo(f"step {st.get('step')}, epoch {st.get('epoch')}, "
               f"{st.get('elapsed_s', 0):.1f} s trained, "
               f"{st.get('nonfinite_steps', 0)} non-finite steps skipped")
    click.echo(f"val loss: last {last:.4f} nats/char ({nats_to_bits(last):.4f} bpc), "
               f"best {best:.4f} nats/char ({nats_to_bits(best):.4f} bpc)")
    click.echo(f"parameters: {params:,}; vocab_size {len(ckpt['vocab'])}: "
               f"{ckpt['vocab'][:80]!r}{'...' if len(ckpt['vocab']) > 80 else ''}")
    click.echo("config:\n" + yaml.safe_dump(ckpt["config"], sort_keys=False).rstrip())


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
