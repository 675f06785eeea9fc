"""``charlm tune``: search for the best model for a corpus and a time budget (Optuna), on one
machine or many sharing one study database.

Optuna is an extra (``pip install 'charlm[tune]'``), imported inside the command, as torch is,
so that ``charlm --help`` needs neither.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from charlm.cli.common import h
from charlm.tune.plan import PRUNERS, SAMPLERS

logger = logging.getLogger(__name__)

SECONDS = click.FloatRange(min=0, min_open=True)


@click.command()
@click.option("--data", metavar="CORPUS", help=h("Corpus the trials train on (a file, a folder "
              "or a named corpus).", "pystdlib, or the study's"))
@click.option("--trial-time", type=SECONDS, metavar="SECONDS",
              help=h("Training time of each trial, evaluations included (a new study needs "
                     "it).", "the study's"))
@click.option("--trials", type=click.IntRange(min=1), metavar="N",
              help="Trials this process runs (complete, pruned or failed).")
@click.option("--max-time", type=SECONDS, metavar="SECONDS",
              help="Start trials only while a whole trial fits in this many seconds.")
@click.option("--config", "config_files", type=click.Path(dir_okay=False), multiple=True,
              help="Base YAML config of every trial; its tune: section overrides the default "
                   "search space. Repeatable, a later file's keys win.")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Set a key of the base config, fixed for every trial; repeatable.")
@click.option("--cells", metavar="LIST", help=h("Comma-separated cores the trials draw among.",
                                                "the base config's cell"))
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1),
              help=h("Seeds the sampler and every trial's training.", "train.seed, else 0"))
@click.option("--study", metavar="NAME", help=h("Study to make, resume or join.",
                                                "<corpus>-<cells>"))
@click.option("--storage", metavar="URL", help=h("Database of the study: any URL Optuna takes "
              "(postgresql+psycopg2://USER@HOST/DB to share it between machines).",
              "sqlite:///runs/tune/NAME.db"))
@click.option("--pruner", type=click.Choice(PRUNERS), help=h("Stops losing trials early.",
                                                             "median"))
@click.option("--sampler", type=click.Choice(SAMPLERS), help=h("Draws the trials' values.",
                                                               "tpe"))
@click.option("--report", is_flag=True, help="Print the study; run no trial.")
@click.option("--json", "as_json", is_flag=True, help="Print the study as JSON.")
@click.option("--best-config", type=click.Path(dir_okay=False), metavar="FILE",
              help=h("Where the best trial's config is written (charlm train --config takes "
                     "it).", "runs/tune/NAME.best.yaml"))
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--progress/--no-progress", default=None,
              help="Each trial's progress bar (default: on a terminal).")
def tune(data, trial_time, trials, max_time, config_files, sets, cells, seed, study, storage,
         pruner, sampler, report, as_json, best_config, device, progress) -> None:
    """Search for the best settings of a corpus and a time budget: each trial is a charlm run
    of --trial-time seconds (checkpoints/tune/STUDY/trial-N, TensorBoard runs/tune/STUDY),
    scored by its val loss on the whole val split; losers are pruned early.

    Ctrl-C or SIGTERM ends the running trial (marked failed) and keeps the study; resume with
    charlm tune --study NAME.
    """
    from charlm.errors import Interrupted, OptionError

    _quiet_optuna()
    from charlm.tune.search import run_share, share_of
    from charlm.tune.session import Request, open_session

    request = Request(study, storage, tuple(config_files), tuple(sets), data, cells,
                      trial_time, seed, pruner, sampler, trials, max_time, device, progress)
    if report and (trials or max_time):
        raise OptionError("--report prints the study and runs no trial: drop --trials and "
                          "--max-time")
    if max_time is not None and trial_time is not None and max_time < trial_time:
        raise OptionError(f"--max-time {max_time:g} is shorter than one trial (--trial-time "
                          f"{trial_time:g}); give at least {trial_time:g}")
    if not report and trials is None and max_time is None and (
            request.defines_base or trial_time is not None):
        raise OptionError("say how much this process tunes: --trials N or --max-time SECONDS "
                          "(charlm tune --study NAME alone resumes what a study was asked for)")
    session = open_session(request, report=report)
    best_path = best_config or str(Path(session.plan.base.train.log_dir) / "tune" /
                                   f"{session.study.study_name}.best.yaml")
    try:
        if not report:
            run_share(session, share_of(session, trials, max_time), best_path)
    except Interrupted:
        _show(session, as_json, None)
        raise
    _show(session, as_json, best_path if best_config or not report else None)


def _quiet_optuna() -> None:
    """Import Optuna, its messages through charlm's logging at warnings and above only (the
    tune says what each trial did itself).

    Raises:
        TuneError: if Optuna is not installed.
    """
    from charlm.errors import TuneError

    try:
        import optuna
    except ImportError:
        raise TuneError("charlm tune needs Optuna, which is not installed: pip install "
                        "'charlm[tune]'") from None
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    verbose = logging.getLogger().level <= logging.DEBUG
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.ERROR)


def _show(session, as_json: bool, best_path: str | None) -> None:
    """The study on stdout, as a table or JSON; the best config written to ``best_path``."""
    from charlm.tune.results import as_json as study_json
    from charlm.tune.results import table, write_best_config

    written = write_best_config(best_path, session.study, session.plan) if best_path else None
    if as_json:
        click.echo(json.dumps(study_json(session.study, session.plan), indent=2))
        return
    click.echo(table(session.study, session.plan))
    if written is not None:
        click.echo(f"best config: {best_path} (charlm train --config {best_path})")
