#!/usr/bin/env bash
# The first thing to run on a GPU machine, before queueing the paper profile:
#   1. the trainer's CUDA path (bf16 autocast, channels_last, device-resident batches)
#   2. the trainer's images/s against a bare PyTorch loop, ResNet-18 and ResNet-50 at 224 px
#   3. each paper group's methods: step time relative to fine-tuning, at the paper's batch
#      and image sizes (plus the SpotTune/MultiTune and GradMF/PCGrad benchmarks)
#   4. the rehearsal profile end to end on CUDA (results/tables-rehearsal.md)
# then one summary, and $LOGS/summary.json (each part's status and each benchmark's
# machine-readable summary, bench/benchlib.py), which `bench/measured.py` renders into
# docs/measured.md. Every model is built with random weights: nothing is downloaded.
# Without a CUDA device it says so and skips parts 1-4 (exit 0); the rehearsal on the
# CPU is `make test-rehearsal`.
#
# Usage: bench/gpu_check.sh           (with the project's environment on PATH, e.g. .venv/bin)
#   GPU_CHECK_STEPS=10   timed steps per method in part 3
#   GPU_CHECK_SKIP="3"   parts to skip (e.g. "3 4")
#   CORES=$(nproc)       Snakemake's cores for the rehearsal
#   GPU_CHECK_PART_TIMEOUT=180   seconds each part may take (0: no limit); a part stopped at
#     its limit is reported as timed out, and the parts after it still run
#   GPU_CHECK_REHEARSAL_TARGET=group_cmkd_office31_vit   part 4 on a part of the rehearsal
#     (any Snakemake target; default results/tables-rehearsal.md, every group)
#   TLREPRO_COMMIT=abc1234   the commit the summary names, where the tree is no git checkout
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
STEPS=${GPU_CHECK_STEPS:-10}
SKIP=${GPU_CHECK_SKIP:-}
CORES=${CORES:-$(nproc)}
PART_TIMEOUT=${GPU_CHECK_PART_TIMEOUT:-0}
REHEARSAL_TARGET=${GPU_CHECK_REHEARSAL_TARGET:-results/tables-rehearsal.md}
LOGS=logs/gpu_check
rm -rf "$LOGS"
mkdir -p "$LOGS"
SUMMARY=()
FAILED=0

# part NUMBER NAME COMMAND...: run it into its log, and note its status and duration
part() {
  local number=$1 name=$2 status
  shift 2
  local log="$LOGS/$number-$name.log" began=$SECONDS
  if [[ " $SKIP " == *" $number "* ]]; then
    SUMMARY+=("$(printf '%s %-28s skipped (GPU_CHECK_SKIP)' "$number" "$name")")
    printf '%s\t%s\tskipped\t0\t%s\n' "$number" "$name" "$*" >>"$LOGS/parts.tsv"
    return
  fi
  echo "== $number $name: $*" | tee "$log"
  local limit=()
  [[ $PART_TIMEOUT -gt 0 ]] && limit=(timeout --kill-after=10 "$PART_TIMEOUT")
  if "${limit[@]}" "$@" >>"$log" 2>&1; then
    status=ok
  else
    status=$?
    FAILED=1
    if [[ $PART_TIMEOUT -gt 0 && ($status == 124 || $status == 137) ]]; then
      status="TIMED OUT after ${PART_TIMEOUT}s"
    else
      status="FAILED ($status)"
    fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$number" "$name" "$status" $((SECONDS - began)) "$*" \
    >>"$LOGS/parts.tsv"
  SUMMARY+=("$(printf '%s %-28s %-11s %5ds  %s' "$number" "$name" "$status" $((SECONDS - began)) "$log")")
}

if ! python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  python bench/gpu_check.py paths  # says why
  echo "gpu_check: no CUDA device, parts 1-4 skipped; on the CPU run 'make test-rehearsal'"
  exit 0
fi

part 1 cuda-paths python bench/gpu_check.py paths --json "$LOGS/1-cuda-paths.json"
part 2 trainer-vs-bare-resnet18 python bench/trainer_overhead.py --model resnet18 --device cuda \
  --batch-size 256 --image-size 224 --threads 4 --json "$LOGS/2-trainer-vs-bare-resnet18.json"
part 2 trainer-vs-bare-resnet50 python bench/trainer_overhead.py --model resnet50 --device cuda \
  --batch-size 128 --image-size 224 --threads 4 --json "$LOGS/2-trainer-vs-bare-resnet50.json"
part 3 method-step-ratios python bench/gpu_check.py methods --steps "$STEPS" \
  --json "$LOGS/3-method-step-ratios.json"
part 3 adaptive-step-time python bench/adaptive_step_time.py --model resnet26 --size 64 \
  --batch-size 128 --device cuda --json "$LOGS/3-adaptive-step-time.json"
part 3 gradient-combination python bench/gradient_combination.py --model resnet50 --size 224 \
  --batch-size 32 --device cuda --json "$LOGS/3-gradient-combination.json"
part 4 rehearsal-on-cuda snakemake --cores "$CORES" "$REHEARSAL_TARGET" \
  --config profile=rehearsal

echo
echo "===================== gpu_check summary ====================="
python -c "import torch; p = torch.cuda.get_device_properties(0); \
print(f'{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}')"
printf '%s\n' "${SUMMARY[@]}"
for log in "$LOGS"/[123]-*.log; do
  [[ -f $log ]] || continue
  echo "--- $(basename "$log" .log)"
  grep -vE '^== |WARNING|[Ww]arning' "$log"  # the findings, not the library warnings
done
python bench/measured.py collect "$LOGS" || FAILED=1
if [[ -f results/tables-rehearsal.md ]]; then
  echo "--- 4-rehearsal-on-cuda: results/tables-rehearsal.md, $(grep -c '^## ' results/tables-rehearsal.md) sections"
fi
exit $FAILED
