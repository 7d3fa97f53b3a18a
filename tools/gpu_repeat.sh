#!/usr/bin/env bash
# Run every GPU grader (pytest -m gpu in autograder/hidden) on the reference solutions N times
# (default 10) in one pytest process, then print each round's measured figures and a
# passed/failed/skipped count per grader. Shows whether a grader's THRESHOLD holds run after run.
#
#   bash tools/gpu_repeat.sh [N] [extra pytest arguments, e.g. -k lesson03]
#
# Environment: PYTHON (default: python), GPU_REPEAT_DIR (where runKK.jsonl and outcomes.jsonl
# go; default: a fresh gpu_repeat_out/ under the repository root). Lesson 19's graders need two
# GPUs and skip with one. NCCL_NVLS_ENABLE defaults to 0 (NVLink multicast off), as in the
# hardware fixtures' calibration runs. Exit status: 1 when any round of any grader failed.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
[ $# -gt 0 ] && shift
case "$runs" in ''|*[!0-9]*) echo "usage: $0 [N] [pytest args]; N must be a number" >&2; exit 2;; esac
py="${PYTHON:-python}"
out="${GPU_REPEAT_DIR:-gpu_repeat_out}"
mkdir -p "$out"
rm -f "$out"/run*.jsonl "$out"/outcomes.jsonl
export NCCL_NVLS_ENABLE="${NCCL_NVLS_ENABLE:-0}"
unset COURSE_BENCH_OUT

"$py" -c 'import torch; n = torch.cuda.device_count(); print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {n} GPU(s)" + "".join(f"\n  cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(n)))'
start=$(date +%s)
status=0
"$py" -m pytest --impl=solutions -m gpu autograder/hidden -p tools.gpu_repeat \
    --repeat-runs "$runs" --repeat-dir "$out" -q -p no:cacheprovider -rfE "$@" || status=$?
echo "pytest exit status $status after $(( $(date +%s) - start )) s for $runs round(s)"
"$py" tools/gpu_repeat.py "$out"
