"""Fine-tuning on text with characters the checkpoint never saw: refused by default, naming
--grow-vocab; with it the vocabulary grows, training goes on, and the run samples and scores."""

import json

import torch
from helpers import one_line_error, run_cli, run_ok

NEW = "λ→€"  # characters the trained corpus never had


def _new_text(work, corpus):
    path = work / "new.txt"
    path.write_text(corpus.read_text(encoding="utf-8")[:30_000] + f"x = '{NEW}'\n" * 200,
                    encoding="utf-8")
    return path


def test_new_characters_are_refused_by_default_naming_grow_vocab(trained):
    work, corpus, run = trained
    text = _new_text(work, corpus)
    proc = run_cli("train", "--init-from", run / "best.pt", "--data", text, "--max-steps", 3,
                   "--no-progress", cwd=work)
    one_line_error(proc, "3 character(s) that the vocabulary of the --init-from checkpoint "
                   "lacks: 'λ' (U+03BB)", "pass --grow-vocab")


def test_grow_vocab_trains_on_with_the_new_characters_and_the_run_samples_and_scores(trained):
    work, corpus, run = trained
    text = _new_text(work, corpus)
    old = torch.load(run / "best.pt", weights_only=True)
    proc = run_ok("train", "--init-from", run / "best.pt", "--grow-vocab", "--data", text,
                  "--run-name", "grown", "--max-steps", 10, "--seed", 2, "--no-progress",
                  cwd=work)
    assert "done: run grown, 10 steps" in proc.stdout
    assert f"grew the vocabulary from {len(old['vocab'])} to {len(old['vocab']) + 3}" in \
        proc.stderr and "the optimizer starts afresh" in proc.stderr
    best = work / "checkpoints" / "grown" / "best.pt"
    new = torch.load(best, weights_only=True)
    assert set(new["vocab"]) == set(old["vocab"]) | set(NEW)
    assert new["model"]["embedding.weight"].shape[0] == len(old["vocab"]) + 3
    out = run_ok("sample", best, "--prime", "x = '" + NEW, "--length", 20, "--seed", 1,
                 cwd=work).stdout
    assert out.startswith("x = '" + NEW) and len(out) >= 25
    scored = json.loads(run_ok("eval", best, "--json", cwd=work).stdout)
    assert 0 < scored["loss_nats"] < 10


def test_grow_vocab_without_init_from_is_refused(tmp_path):
    one_line_error(run_cli("train", "--grow-vocab", cwd=tmp_path), "--grow-vocab",
                   "--init-from CHECKPOINT")
