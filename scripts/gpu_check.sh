#!/usr/bin/env bash
# Every GPU check of charlm in one script, bounded so that it fits one device call of about
# 9 minutes; each step writes its log and figures as it goes, and a failed step does not stop
# the ones after it.
#
#   bash scripts/gpu_check.sh OUT_DIR        # OUT_DIR: a new or empty folder
#   CHARLM_DEVICE=cpu SHAKESPEARE=../shared/data/tinyshakespeare.txt \
#       bash scripts/gpu_check.sh /tmp/gpucheck-dry                  # dry run on the CPU
#
# On a lent GPU machine. The `run` tool copies the repository (not ../shared) to the machine,
# runs the command from the repository root and brings back the files under $OUT. So, once,
# here in the repository root (.gpu-data/ is in .gitignore):
#     mkdir -p .gpu-data && cp ../shared/data/tinyshakespeare.txt .gpu-data/
#     for v in 3.10 3.11 3.12 3.13; do   # the device has no hypothesis and no network
#         pip download -q -d .gpu-data/wheels --only-binary=:all: --python-version $v hypothesis
#     done
# then call `run` with
#     command:   SHAKESPEARE=.gpu-data/tinyshakespeare.txt bash scripts/gpu_check.sh "$OUT"
#     carry:     [".gpu-data"]
#     timeout_s: 600
# (the script stops itself after GPU_CHECK_TOTAL_S = 560 s). A second call may rerun only some
# steps, e.g. command: GPU_CHECK_STEPS="tests resume" SHAKESPEARE=... bash scripts/gpu_check.sh
# "$OUT". What comes back is 4 files at the top of OUT_DIR: summary.txt (the table: step, exit
# code, seconds, limit, key figure), summary.json (the same, with the failed and skipped
# tests), tests.xml (JUnit) and results.tar.gz (every step's log and JSON, the runs'
# TensorBoard events and configs; no .pt files). The table is also the last thing printed.
#
# Steps, and each one's time limit on CUDA in seconds (GPU_CHECK_BUDGET_<step, - as _>=S
# changes one; each step also gets at most what is left of the whole budget):
#   machine        nvidia-smi, torch, CUDA, cuDNN, CPUs, which packages are there         15
#   tests          the whole suite: pytest -v --device cuda -n 8 (pytest-xdist)         150
#   bench-fp32     charlm bench, every core at H 256, 1024, 2048 against the bare loop    60
#   bench-bf16     the same under bf16 autocast                                           60
#   shakespeare    60-s run of configs/shakespeare-gpu.yaml                               85
#   eval-fraction  that run's time/eval_fraction, read from TensorBoard                   10
#   eval           that run's best.pt over the whole val split (charlm eval --json)       25
#   sampling       batch-1 and batch-64 chars/s of an LSTM 2 x 512 (and of that run)      35
#   resume         every core: 60 steps straight vs 30 + --resume, weights torch.equal    50
#   torchrun       charlm train under 1-process torchrun; NCCL collectives, a DDP step    30
#   scan           minGRU/minLSTM scans: log-space vs sequential vs the gate GEMM         15
#   equal-params   minGRU, minLSTM, IndRNN against nn.LSTM at equal parameter counts      35
# A step runs under `timeout -s INT` (pytest still writes its JUnit XML, a training run saves),
# then SIGKILL 15 s later.
#
# Switches: CHARLM_DEVICE=cpu runs the steps on the CPU at small sizes, as a dry run of this
# script (tests -m "not slow"; gloo instead of NCCL; no bf16 bench, which a CPU without bf16
# units emulates); GPU_CHECK_STEPS="a b" runs only those steps; GPU_CHECK_PYTEST_ARGS
# replaces the test selection (shell words); GPU_CHECK_WORKERS sets pytest -n (1: no xdist)
# and GPU_CHECK_DIST its --dist (load); GPU_CHECK_TOTAL_S the whole budget; GPU_CHECK_KEEP=1
# keeps the loose steps/ and work/ folders beside the archive. Nothing is installed or downloaded: it needs torch, tensorboard,
# click, tqdm, pyyaml, numpy, pytest, hypothesis (and pytest-xdist for -n), and runs charlm
# from this checkout through PYTHONPATH. Run names carry the start time, and OUT_DIR must be
# empty, so no step meets an earlier run's folder.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT_DIR=${1:?usage: bash scripts/gpu_check.sh OUT_DIR (a new or empty folder)}
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
if [ -n "$(ls -A "$OUT_DIR")" ]; then
    echo "gpu_check: $OUT_DIR is not empty; give a new folder so no run meets an earlier one" >&2
    exit 2
fi
STEPS_DIR=$OUT_DIR/steps WORK=$OUT_DIR/work
mkdir -p "$STEPS_DIR" "$WORK"
STAMP=$(date -u +%Y%m%d-%H%M%S)
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 PYTHONIOENCODING=utf-8
PY=${PYTHON:-python3}
command -v "$PY" > /dev/null || PY=python

DEVICE=${CHARLM_DEVICE:-$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")}
case $DEVICE in
    cpu) ;;
    cuda*) "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" || {
               echo "gpu_check: CHARLM_DEVICE=$DEVICE but torch sees no CUDA GPU" >&2; exit 2; } ;;
    *) echo "gpu_check: CHARLM_DEVICE is cpu or cuda[:N], not $DEVICE" >&2; exit 2 ;;
esac
DATA=${SHAKESPEARE:-}
for guess in "$ROOT/.gpu-data/tinyshakespeare.txt" "$ROOT/../shared/data/tinyshakespeare.txt"; do
    [ -z "$DATA" ] && [ -f "$guess" ] && DATA=$guess
done
if [ ! -f "$DATA" ]; then
    echo "gpu_check: set SHAKESPEARE to tiny-shakespeare's input.txt (no downloads here)" >&2
    exit 2
fi
DATA=$(cd "$(dirname "$DATA")" && pwd)/$(basename "$DATA")

declare -A BUDGET
if [ "$DEVICE" = cpu ]; then  # a dry run of the script: small sizes, short runs
    TOTAL_S=${GPU_CHECK_TOTAL_S:-1800}
    WORKERS=${GPU_CHECK_WORKERS:-2}
    TESTS=(-m "not slow")
    BENCH=(--sizes 32 --batch-size 8 --seq-len 32 --steps 2)
    EQUAL=(--sizes 32 --batch-size 8 --seq-len 32 --steps 2)
    SHAKE=(--max-time 15 --hidden-size 64 --batch-size 16 --seq-len 64
           --set train.eval_interval=50 --set train.eval_max_chars=20000
           --set train.precision=fp32 --set train.log_interval=10)
    SAMPLE_TRAIN=(--max-steps 2 --batch-size 4 --seq-len 32) SAMPLE_LENGTH=100
    RESUME=(--cells lstm,mingru --steps 8 --hidden-size 16 --batch-size 4 --jobs 2)
    RESUME_BF16=()
    SCAN=(--batch-size 4 --seq-len 16 --hidden-size 32 --repeats 3)
    SCAN_LARGE=()
    # generous: a shared 2-core machine ran the same step 2-4 times slower under load, and
    # bench's fixed LSTM 2 x 512 evaluation of 200,000 characters dominates the bench steps
    BUDGET=([machine]=30 [tests]=900 [bench-fp32]=400 [bench-bf16]=0 [shakespeare]=90
            [eval-fraction]=30 [eval]=90 [sampling]=300 [resume]=400 [torchrun]=150
            [scan]=60 [equal-params]=400)
else
    TOTAL_S=${GPU_CHECK_TOTAL_S:-560}
    WORKERS=${GPU_CHECK_WORKERS:-8}
    TESTS=()
    BENCH=(--sizes 256,1024,2048 --steps 8)
    EQUAL=(--sizes 256,1024 --steps 8)
    SHAKE=()
    SAMPLE_TRAIN=(--max-steps 10) SAMPLE_LENGTH=2000
    RESUME=(--steps 60 --jobs 6)
    RESUME_BF16=(--cells lstm,mingru --steps 60 --precision bf16 --jobs 2)
    SCAN=()
    SCAN_LARGE=(--batch-size 128 --seq-len 128 --hidden-size 1024)
    BUDGET=([machine]=15 [tests]=150 [bench-fp32]=60 [bench-bf16]=60 [shakespeare]=85
            [eval-fraction]=10 [eval]=25 [sampling]=35 [resume]=50 [torchrun]=30
            [scan]=15 [equal-params]=35)
fi
# shell words, e.g. GPU_CHECK_PYTEST_ARGS='tests/models -m "not slow"'
[ -n "${GPU_CHECK_PYTEST_ARGS+set}" ] && eval "TESTS=($GPU_CHECK_PYTEST_ARGS)"
DEADLINE=$((SECONDS + TOTAL_S))
RESERVE_S=10  # kept back for the summary and the archive
SHAKE_RUN=shakespeare-$STAMP SAMPLE_RUN=lstm512-$STAMP TORCHRUN_RUN=torchrun-$STAMP
COMMON=(--device "$DEVICE" --checkpoint-dir "$WORK/checkpoints" --log-dir "$WORK/runs"
        --no-progress --set "data.cache_dir=$WORK/cache")
CELLS=$("$PY" -c "from charlm.config.cells import cell_names; print(','.join(cell_names()))")

if COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null); then
    git -C "$ROOT" diff --quiet HEAD 2> /dev/null || COMMIT+=" with uncommitted changes"
else
    COMMIT="unknown (no git repository here)"
fi
{
    echo "charlm gpu_check $STAMP UTC on $DEVICE, commit $COMMIT"
    echo "corpus $DATA; whole budget ${TOTAL_S} s; cells $CELLS"
} > "$OUT_DIR/header.txt"
cat "$OUT_DIR/header.txt"
: > "$OUT_DIR/steps.tsv"

selected() {  # is step $1 in GPU_CHECK_STEPS (all when unset)?
    [ -z "${GPU_CHECK_STEPS:-}" ] || [[ " ${GPU_CHECK_STEPS//,/ } " == *" $1 "* ]]
}

record() {  # record NAME CODE SECONDS LIMIT NOTE
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$OUT_DIR/steps.tsv"
}

skip() {  # skip NAME REASON
    selected "$1" || return 0
    echo "== $1: skipped: $2"
    record "$1" skip 0 0 "skipped: $2"
}

step() {  # step NAME COMMAND...: bounded, logged to steps/NAME.log, its figure printed
    local name=$1 budget_var=GPU_CHECK_BUDGET_${1//-/_}
    shift
    selected "$name" || return 0
    local budget=${!budget_var:-${BUDGET[$name]}} left=$((DEADLINE - SECONDS - RESERVE_S))
    if [ "$left" -lt 15 ]; then
        skip "$name" "only $left s left of the ${TOTAL_S} s budget"
        return 0
    fi
    local limit=$((budget < left ? budget : left)) began=$SECONDS note=""
    echo "== $name (at most $limit s, from $(date -u +%T))"
    timeout -s INT -k 15 "$limit" "$@" < /dev/null > "$STEPS_DIR/$name.log" 2>&1
    local code=$?
    case $code in 124|137) note="timed out after $limit s" ;; esac
    record "$name" "$code" "$((SECONDS - began))" "$limit" "$note"
    tail -n 3 "$STEPS_DIR/$name.log" | cut -c1-200
    echo "-- $name: exit $code in $((SECONDS - began)) s${note:+ ($note)}: $("$PY" scripts/gpu_check_report.py figure "$name" "$STEPS_DIR")"
}

finish() {  # summary, archive, and (unless GPU_CHECK_KEEP=1) only the files that matter left
    trap - INT TERM
    echo "== summary ($OUT_DIR/summary.txt)"
    "$PY" scripts/gpu_check_report.py summary "$OUT_DIR" || cat "$OUT_DIR/steps.tsv"
    [ -f "$STEPS_DIR/tests.xml" ] && cp "$STEPS_DIR/tests.xml" "$OUT_DIR/tests.xml"
    tar -czf "$OUT_DIR/results.tar.gz.part" -C "$OUT_DIR" --exclude='*.pt' \
        --exclude='work/cache' --exclude='*.bin' steps work steps.tsv header.txt summary.txt \
        summary.json 2> /dev/null && mv "$OUT_DIR/results.tar.gz.part" "$OUT_DIR/results.tar.gz"
    if [ "${GPU_CHECK_KEEP:-0}" != 1 ] && [ -f "$OUT_DIR/results.tar.gz" ]; then
        rm -rf "$STEPS_DIR" "$WORK" "$OUT_DIR/steps.tsv" "$OUT_DIR/header.txt"
    fi
    ls -l "$OUT_DIR"
}
trap 'echo "gpu_check: interrupted; writing the summary"; finish; exit 130' INT TERM

# --- the steps -----------------------------------------------------------------------------

machine() {
    nvidia-smi 2>&1 || echo "(no nvidia-smi)"
    "$PY" - "$STEPS_DIR/machine.json" <<'PY'
import json, os, platform, sys
import torch
cuda = torch.cuda.is_available()
info = {"platform": platform.platform(), "python": platform.python_version(),
        "cpu_count": os.cpu_count(), "torch": str(torch.__version__),
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "gpu_memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda
        else None}
for name in ("tensorboard", "click", "tqdm", "yaml", "numpy", "pytest", "xdist", "hypothesis",
             "importlinter"):
    try:
        info[f"has_{name}"] = bool(__import__(name))
    except ImportError:
        info[f"has_{name}"] = False
print(json.dumps(info, indent=2))
open(sys.argv[1], "w").write(json.dumps(info, indent=2))
PY
}

tests() {
    local extra=()
    if ! "$PY" -c "import hypothesis" 2> /dev/null && [ -d "$ROOT/.gpu-data/wheels" ]; then
        # the device machine has no hypothesis and no network: the wheels came in .gpu-data
        "$PY" -m pip install -q --no-index --find-links "$ROOT/.gpu-data/wheels" \
            --target "$WORK/site" hypothesis && export PYTHONPATH="$PYTHONPATH:$WORK/site"
    fi
    if ! "$PY" -c "import importlinter" 2> /dev/null; then  # a device-independent check
        echo "import-linter is not installed: deselecting the import-contract test (CI runs it)"
        extra+=(--deselect tests/test_architecture.py::test_import_contracts_are_kept)
    fi
    if "$PY" -c "import xdist" 2> /dev/null && [ "$WORKERS" -gt 1 ]; then
        # load: single tests spread over the workers (each worker builds the module-scoped
        # fixtures it needs in its own tmp folders); loadfile would keep test_resume.py's
        # 18 tests, the longest module, on one worker
        extra+=(-n "$WORKERS" --dist "${GPU_CHECK_DIST:-load}")
        export OMP_NUM_THREADS=$(( $("$PY" -c "import os; print(os.cpu_count())") / WORKERS ))
        [ "$OMP_NUM_THREADS" -ge 1 ] || OMP_NUM_THREADS=1
    fi
    "$PY" -m pytest -v --device "$DEVICE" -p no:cacheprovider -o faulthandler_timeout=120 \
        --junitxml="$STEPS_DIR/tests.xml" --durations=15 "${extra[@]}" "${TESTS[@]}"
}

bench() {  # bench NAME ARGS...
    local name=$1
    shift
    "$PY" -m charlm bench --device "$DEVICE" --data "$DATA" --cache-dir "$WORK/cache" \
        --output "$STEPS_DIR/$name.json" "$@"
}

sampling() {
    "$PY" -m charlm train --data "$DATA" "${COMMON[@]}" --cell lstm --hidden-size 512 \
        --num-layers 2 --run-name "$SAMPLE_RUN" "${SAMPLE_TRAIN[@]}" --set train.max_time=null \
        --set train.eval_max_chars=10000 || return
    local ckpts=("$WORK/checkpoints/$SAMPLE_RUN/best.pt")
    [ -f "$WORK/checkpoints/$SHAKE_RUN/best.pt" ] && ckpts+=("$WORK/checkpoints/$SHAKE_RUN/best.pt")
    "$PY" scripts/sample_speed.py "${ckpts[@]}" --device "$DEVICE" --batch-sizes 1,64 \
        --length "$SAMPLE_LENGTH" --output "$STEPS_DIR/sampling.json" || return
    if [ -f "$WORK/checkpoints/$SHAKE_RUN/best.pt" ]; then  # what the 60-s model writes
        "$PY" -m charlm sample "$WORK/checkpoints/$SHAKE_RUN/best.pt" --device "$DEVICE" \
            --prime "ROMEO:" --length 300 --seed 1
    fi
}

resume() {
    "$PY" scripts/resume_check.py --data "$DATA" --device "$DEVICE" --work "$WORK/resume" \
        --output "$STEPS_DIR/resume.json" "${RESUME[@]}" || return
    if [ ${#RESUME_BF16[@]} -gt 0 ]; then
        "$PY" scripts/resume_check.py --data "$DATA" --device "$DEVICE" \
            --work "$WORK/resume-bf16" --output "$STEPS_DIR/resume-bf16.json" "${RESUME_BF16[@]}"
    fi
}

torchrun() {
    local backend=nccl
    if [ "$DEVICE" = cpu ]; then
        echo "NCCL skipped: it needs CUDA; the CPU dry run checks the same collectives on gloo"
        backend=gloo
    fi
    "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 -m charlm train \
        --config configs/tiny.yaml --data "$DATA" "${COMMON[@]}" --max-steps 40 \
        --run-name "$TORCHRUN_RUN" || return
    "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 scripts/nccl_check.py \
        --backend "$backend" --output "$STEPS_DIR/nccl.json"
}

scan() {
    "$PY" scripts/scan_bench.py --device "$DEVICE" --output "$STEPS_DIR/scan.json" "${SCAN[@]}" \
        || return
    if [ ${#SCAN_LARGE[@]} -gt 0 ]; then
        "$PY" scripts/scan_bench.py --device "$DEVICE" --output "$STEPS_DIR/scan-large.json" \
            "${SCAN_LARGE[@]}"
    fi
}

export -f machine tests bench sampling resume torchrun scan
export GPU_CHECK_DIST=${GPU_CHECK_DIST:-load}
export PY DEVICE DATA WORK STEPS_DIR WORKERS SHAKE_RUN SAMPLE_RUN TORCHRUN_RUN SAMPLE_LENGTH
# bash cannot export arrays: each step's bash -c starts by defining them
ARRAYS=$(declare -p TESTS COMMON BENCH EQUAL SAMPLE_TRAIN RESUME RESUME_BF16 SCAN SCAN_LARGE)

step machine bash -c machine
step tests bash -c "$ARRAYS; tests"
step bench-fp32 bash -c "$ARRAYS; bench bench-fp32 --precision fp32 --cells $CELLS \"\${BENCH[@]}\""
if [ "$DEVICE" = cpu ]; then  # measured here: 0.3 GFLOP/s, and oneDNN has no bf16 LSTM
    skip bench-bf16 "a CPU without bf16 units emulates it (minutes for the GEMM ceiling alone)"
else
    step bench-bf16 bash -c "$ARRAYS; bench bench-bf16 --precision bf16 --cells $CELLS \"\${BENCH[@]}\""
fi
step shakespeare "$PY" -m charlm train --config configs/shakespeare-gpu.yaml --data "$DATA" \
    "${COMMON[@]}" --run-name "$SHAKE_RUN" "${SHAKE[@]}"
if [ -d "$WORK/runs/$SHAKE_RUN" ]; then
    step eval-fraction "$PY" scripts/gpu_check_report.py scalar "$WORK/runs/$SHAKE_RUN" \
        time/eval_fraction "$STEPS_DIR/eval-fraction.json"
else
    skip eval-fraction "no TensorBoard folder of the shakespeare run"
fi
if [ -f "$WORK/checkpoints/$SHAKE_RUN/best.pt" ]; then
    step eval bash -c '"$PY" -m charlm eval "$WORK/checkpoints/$SHAKE_RUN/best.pt" \
        --device "$DEVICE" --json > "$STEPS_DIR/eval.json"'
else
    skip eval "no best.pt of the shakespeare run"
fi
step sampling bash -c "$ARRAYS; sampling"
step resume bash -c "$ARRAYS; resume"
step torchrun bash -c "$ARRAYS; torchrun"
step scan bash -c "$ARRAYS; scan"
step equal-params bash -c "$ARRAYS; bench equal-params --equal-params \
    --cells lstm,mingru,minlstm,indrnn \"\${EQUAL[@]}\""
finish
