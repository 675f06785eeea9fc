"""Dynamic against static evaluation: tune η and λ on the val split, then report a split.

The protocol of issue 12: a small grid of (η, λ) is scored by dynamic evaluation on the first
``--tune-chars`` characters of the val split and the best pair kept; then ``--split`` (the
test split by default) is scored statically, as ``charlm eval`` does (parallel streams, each
warmed on the 512 characters before it), statically as one stream (what dynamic evaluation
reads, so that the gain is not the warm-up's), and dynamically with the chosen pair, each
timed. Dynamic evaluation never sees a character before scoring it, but hyperparameters picked
on the reported split would still be fitted to it: keep ``--split test``.

It prints the machine and every figure, and ``--json`` writes them. Run it alone on the
machine: the seconds are wall-clock.

    python scripts/dynamic_eval.py checkpoints/<run>/best.pt
    python scripts/dynamic_eval.py CKPT --method sgd --lrs 0.03 0.1 0.3 --decays 0 0.01
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from charlm.data.corpus import load_corpus
from charlm.evaluation.dynamic import (
    DEFAULTS,
    SEQ_LEN,
    DynamicSettings,
    dynamic_evaluate,
)
from charlm.evaluation.static import evaluate
from charlm.metrics import nats_to_bits
from charlm.store.names import open_checkpoint
from charlm.store.restore import restore_model
from charlm.training.bench import machine

GRIDS = {"rms": ([1e-4, 3e-4, 1e-3, 3e-3], [0.0, 0.005, 0.02, 0.05]),
         "sgd": ([0.01, 0.03, 0.1, 0.3], [0.0, 0.01])}


def timed(run) -> tuple[float, float]:
    """``(loss_nats, seconds)`` of ``run()``, which returns a loss in nats/char."""
    start = time.perf_counter()
    loss = run()
    return loss, time.perf_counter() - start


def tune(model, val, train, args) -> tuple[DynamicSettings, list[dict]]:
    """Score every (η, λ) of the grid on the val slice; the best settings and every row."""
    rows, best = [], None
    for lr in args.lrs:
        for decay in args.decays:
            s = DynamicSettings(args.method, lr, decay, args.seq_len)
            loss, secs = timed(lambda: dynamic_evaluate(model, val, s, train).loss_nats)
            rows.append({"lr": lr, "decay": decay, "bpc": nats_to_bits(loss), "seconds": secs})
            print(f"  lr {lr:<8g} decay {decay:<6g} {rows[-1]['bpc']:.4f} bpc  {secs:7.1f} s",
                  flush=True)
            if best is None or loss < best[0]:
                best = (loss, s)
    return best[1], rows


def report(model, ids, train, chosen, cfg, label: str) -> dict:
    """Static (as ``charlm eval``, and as one stream) and dynamic figures of one split."""
    static, static_s = timed(lambda: evaluate(model, ids, cfg.train.eval_batch_size,
                                              cfg.train.seq_len)[0])
    stream, stream_s = timed(lambda: evaluate(model, ids, 1, cfg.train.seq_len)[0])
    dynamic, dynamic_s = timed(lambda: dynamic_evaluate(model, ids, chosen, train).loss_nats)
    out = {"split": label, "chars": len(ids) - 1,
           "static_bpc": nats_to_bits(static), "static_s": static_s,
           "static_one_stream_bpc": nats_to_bits(stream), "static_one_stream_s": stream_s,
           "dynamic_bpc": nats_to_bits(dynamic), "dynamic_s": dynamic_s}
    print(f"{label}, {out['chars']:,} chars:\n"
          f"  static, as charlm eval ({cfg.train.eval_batch_size} streams): "
          f"{out['static_bpc']:.4f} bpc, {static_s:.2f} s\n"
          f"  static, one stream: {out['static_one_stream_bpc']:.4f} bpc, {stream_s:.2f} s\n"
          f"  dynamic ({chosen.method}, lr {chosen.lr:g}, decay {chosen.decay:g}, seq_len "
          f"{chosen.seq_len}): {out['dynamic_bpc']:.4f} bpc, {dynamic_s:.2f} s\n"
          f"  gain {out['static_bpc'] - out['dynamic_bpc']:+.4f} bpc over charlm eval, in "
          f"{dynamic_s / max(static_s, 1e-9):.1f}x its time\n"
          f"  table row: | {label} | {out['static_bpc']:.4f} | {out['dynamic_bpc']:.4f} | "
          f"{static_s:.1f} | {dynamic_s:.1f} |")
    return out


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .pt file, a run folder or a run name")
    parser.add_argument("--checkpoint-dir", default="checkpoints")
    parser.add_argument("--data", help="corpus to score (default: the checkpoint's)")
    parser.add_argument("--split", choices=["val", "test"], default="test")
    parser.add_argument("--method", choices=sorted(GRIDS), default="rms")
    parser.add_argument("--lrs", type=float, nargs="+", help="η values (default: a grid)")
    parser.add_argument("--decays", type=float, nargs="+", help="λ values (default: a grid)")
    parser.add_argument("--seq-len", type=int, default=SEQ_LEN)
    parser.add_argument("--tune-chars", type=int, default=100_000,
                        help="val characters the grid is scored on")
    parser.add_argument("--max-chars", type=int, help="score only this much of --split")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()
    grid = GRIDS[args.method]
    args.lrs, args.decays = args.lrs or grid[0], args.decays or grid[1]
    return args


def main() -> None:
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("machine:", json.dumps(machine()))
    path, ckpt = open_checkpoint(args.checkpoint, args.checkpoint_dir)
    model, vocab, cfg = restore_model(ckpt)
    corpus = load_corpus(cfg.data, vocab, progress=False, corpus=args.data)
    train, val = corpus.splits["train"], corpus.splits["val"][:args.tune_chars + 1]
    print(f"checkpoint {path}; corpus {args.data or cfg.data.corpus}; defaults "
          f"{DEFAULTS[args.method]}; tuning {args.method} on {len(val) - 1:,} val chars:")
    chosen, grid = tune(model, val, train, args)
    print(f"chosen on val: lr {chosen.lr:g}, decay {chosen.decay:g}")
    ids = corpus.splits[args.split]
    ids = ids if args.max_chars is None else ids[:args.max_chars + 1]
    result = report(model, ids, train, chosen, cfg, args.split)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"machine": machine(), "checkpoint": str(path), "grid": grid,
                       "chosen": chosen.to_dict(), "result": result}, fh, indent=1)


if __name__ == "__main__":
    main()
