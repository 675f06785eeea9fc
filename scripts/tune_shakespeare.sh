#!/usr/bin/env bash
# Tune the flagship: tiny-shakespeare with nanoGPT's split, one study per core (CELLS) of
# TRIAL_TIME-second trials pruned by the median rule, each for MAX_TIME seconds; then the best
# config of all trained with SEEDS, each run's final weights scored on the whole val split.
#
#   bash scripts/tune_shakespeare.sh                     # 180-s trials, lstm and mingru, 3 h each
#   MAX_TIME=1500 bash scripts/tune_shakespeare.sh       # what docs/performance.md reports
#   TRIAL_TIME=600 CONFIG=configs/shakespeare-600s.yaml bash scripts/tune_shakespeare.sh
#   DATA=small.txt TRIAL_TIME=10 MAX_TIME=40 CELLS=lstm SEEDS="1 2" bash scripts/tune_shakespeare.sh
#
# Extra arguments go to every `charlm tune` (e.g. --pruner halving, --config space.yaml).
# Keep the machine quiet while it runs: a time budget measures the machine, and two torch
# processes on a few cores slow each other unevenly. Run again after a crash or Ctrl-C: a
# study that exists is resumed (`charlm tune --study NAME` finishes its time) and seeds whose
# run exists are not trained again. OUT/summary.txt gets the figures for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared/data/tinyshakespeare.txt
DATA=${DATA:-$([ -f "$SHARED" ] && echo "$SHARED" || echo tinyshakespeare)}
CONFIG=${CONFIG:-configs/shakespeare-2x256.yaml}  # the base every trial starts from
SPACE=${SPACE:-configs/tune/shakespeare.yaml}     # its tune: section, the search space
TRIAL_TIME=${TRIAL_TIME:-180}
MAX_TIME=${MAX_TIME:-10800}
CELLS=${CELLS:-"lstm mingru"}
SEEDS=${SEEDS:-"1 2 3"}
TAG=${TAG:-shakespeare-${TRIAL_TIME}s}
OUT=${OUT:-runs/tune/$TAG}
mkdir -p "$OUT"
read -r load _ < /proc/loadavg || load=0
python -c "import sys; sys.exit(float('$load') < 0.5)" &&
    echo "warning: load average $load: other processes are busy; the figures will be low" >&2

studies=()
for cell in $CELLS; do
    study="$TAG-$cell"
    studies+=("$study")
    began=$(date +%s)
    if [ -f "runs/tune/$study.db" ]; then   # resume: what the study was asked for
        charlm tune --study "$study" --no-progress > "$OUT/$study.txt"
    else
        charlm tune --data "$DATA" --config "$CONFIG" --cells "$cell" --trial-time "$TRIAL_TIME" \
            --max-time "$MAX_TIME" --study "$study" --seed 1 --no-progress --config "$SPACE" "$@" \
            > "$OUT/$study.txt"
    fi
    echo "$study: $(( $(date +%s) - began )) s of wall time in this run" >> "$OUT/wall.txt"
    charlm tune --study "$study" --report --json > "$OUT/$study.json"
done

best=$(python - "$OUT" "${studies[@]}" <<'EOF'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
done = [(json.load(open(f"{out}/{n}.json"))["best"] or {"value": float("inf")}, n) for n in names]
best, name = min(done, key=lambda d: d[0]["value"])
print(name if best["value"] < float("inf") else "")
EOF
)
[ -n "$best" ] || { echo "no trial completed; see $OUT/*.txt" >&2; exit 1; }
config="runs/tune/$best.best.yaml"
cp "$config" "$OUT/best.yaml"

for seed in $SEEDS; do
    run="$TAG-best-seed$seed"
    [ -f "checkpoints/$run/last.pt" ] ||
        charlm train --config "$config" --seed "$seed" --run-name "$run" --no-progress
    charlm eval "checkpoints/$run/last.pt" --json > "$OUT/seed$seed.json"
done

python - "$OUT" "${studies[@]}" > "$OUT/summary.txt" <<'EOF'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
print("| study | trials | complete | pruned | failed | best val loss (nats/char) |")
print("|---|---:|---:|---:|---:|---:|")
for n in names:
    s = json.load(open(f"{out}/{n}.json"))
    states = [t["state"] for t in s["trials"]]
    value = f"{s['best']['value']:.4f}" if s["best"] else "-"
    print(f"| {n} | {len(states)} | {states.count('complete')} | {states.count('pruned')} "
          f"| {states.count('fail')} | {value} |")
print()
print(open(f"{out}/wall.txt").read().strip())
EOF
python - "$OUT" "$best" $SEEDS >> "$OUT/summary.txt" <<'EOF'
import json, statistics, sys
out, best, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
losses = [json.load(open(f"{out}/seed{s}.json"))["loss_nats"] for s in seeds]
print(f"\nbest config: {best} ({out}/best.yaml), whole val split, final weights:")
print("| " + " | ".join(f"seed {s}" for s in seeds) + " | mean |")
print("|" + "---:|" * (len(seeds) + 1))
print("| " + " | ".join(f"{v:.4f}" for v in losses) + f" | **{statistics.mean(losses):.4f}** |")
EOF
cat "$OUT/summary.txt"
