#!/usr/bin/env bash
# Every GPU check of charlm in one script, for wherever a GPU is at hand:
#   1. the machine;  2. the test suite on the device (JUnit XML, so partial results survive);
#   3-4. `charlm bench` in fp32 and bf16 (charlm's loop against a bare loop, model FLOP/s
#   against the measured matmul peak, evaluation and batch-1 sampling chars/s);
#   5. configs/shakespeare-gpu.yaml for 60 s;  6. configs/enwik8-gpu.yaml's chars/s on
#   synthetic bytes.
#
#   bash scripts/gpu_check.sh [OUT_DIR]        # default: gpu-check/
#   SHAKESPEARE=path/to/input.txt bash scripts/gpu_check.sh   # offline: the corpus file
#
# Each step is bounded by `timeout` (8 minutes in all at most) and writes its log to OUT_DIR
# as it goes; OUT_DIR/summary.txt collects the figures. Without a GPU the same steps run on
# the CPU at small sizes, so the script itself is checked anywhere.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check}
mkdir -p "$OUT"
: > "$OUT/summary.txt"
DEVICE=$(python -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
DATA=${SHAKESPEARE:-tinyshakespeare}

step() {  # step NAME LIMIT_S COMMAND...: run bounded, log to OUT/NAME.log, note the exit
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit} s)"
    timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1  # -k: in-process runs catch SIGTERM
    local rc=$?
    echo "$name: exit $rc$([ $rc -eq 124 ] && echo ' (timed out)')" | tee -a "$OUT/summary.txt"
    tail -n 4 "$OUT/$name.log"
}

if [ "$DEVICE" = cuda ]; then
    TESTS=(-m "not slow or slow")
    SIZES=(); TRAIN_SMALL=(); SHAKE_TIME=60
else
    TESTS=(-m "not slow")
    SIZES=(--sizes 64 --batch-size 16); TRAIN_SMALL=(--hidden-size 64 --batch-size 8)
    SHAKE_TIME=20
fi

step machine 10 bash -c "nvidia-smi || true; python -c 'import torch, platform; \
print(platform.platform(), \"torch\", torch.__version__, \"cuda\", torch.version.cuda, \
torch.cuda.get_device_name() if torch.cuda.is_available() else \"no GPU\")'"
step tests 150 python -m pytest -v "${TESTS[@]}" --device "$DEVICE" -p no:cacheprovider \
    --junitxml="$OUT/tests.xml"
grep -E "passed|failed" "$OUT/tests.log" | tail -n 1 >> "$OUT/summary.txt"
for precision in fp32 bf16; do
    step "bench-$precision" 80 python -m charlm bench --device "$DEVICE" \
        --precision "$precision" --steps 10 "${SIZES[@]}" --output "$OUT/bench-$precision.json"
    grep -E "^ *(lstm|gru|rnn) |sample_b1" "$OUT/bench-$precision.log" >> "$OUT/summary.txt"
done
step shakespeare 80 python -m charlm train --config configs/shakespeare-gpu.yaml \
    --data "$DATA" --device "$DEVICE" --max-time "$SHAKE_TIME" --run-name gpu-check-shakespeare \
    --checkpoint-dir "$OUT/checkpoints" --log-dir "$OUT/runs" --no-progress "${TRAIN_SMALL[@]}"
grep "done:" "$OUT/shakespeare.log" >> "$OUT/summary.txt"
python -c "import numpy; numpy.random.default_rng(0).integers(0, 256, 20_000_000, \
dtype=numpy.uint8).tofile('$OUT/synthetic.bin')"
step enwik8 80 python -m charlm train --config configs/enwik8-gpu.yaml \
    --data "$OUT/synthetic.bin" --device "$DEVICE" --max-steps 60 --set train.max_time=null \
    --set train.eval_interval=1000000 --set train.log_interval=20 --run-name gpu-check-enwik8 \
    --checkpoint-dir "$OUT/checkpoints" --log-dir "$OUT/runs" --no-progress "${TRAIN_SMALL[@]}"
python - "$OUT" >> "$OUT/summary.txt" <<'PY'
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
events = EventAccumulator(f"{sys.argv[1]}/runs/gpu-check-enwik8")
events.Reload()
rates = [e.value for e in events.Scalars("train/chars_per_s")][1:]  # the first holds warm-up
print(f"enwik8 config on synthetic bytes: {sum(rates) / max(len(rates), 1):,.0f} chars/s "
      f"(mean of {len(rates)} log intervals after the first)")
PY
echo "== summary ($OUT/summary.txt)"
cat "$OUT/summary.txt"
