#!/usr/bin/env bash
# The checks that need a GPU, as one short script for a lent CUDA machine:
#
#   1. the `gpu` tests (pytest -m gpu, the test files that hold them);
#   2. Fig. 4a at the paper preset on CUDA (the authors' 50 x 50 grid, two sweeps);
#   3. Fig. 6 at the paper preset on CUDA (100 trials of each model, to their stops).
#
# It writes a table of exit codes and wall times to OUTDIR/gpu_checks.md, each check's log,
# and the two figures' result.json (their `seconds` and numbers) beside it: eight files at
# most, flat, so that all of them come back from a device run.
#
# Usage (in the repository root on the GPU machine):
#
#     bash benchmarks/gpu_checks.sh [OUTDIR]        # default: $OUT, else out/gpu-checks
#
# A machine without the package's dependencies netCDF4 and cftime (Python 3.12 images with
# torch but no NetCDF writer) gets them from wheels in .whl/, fetched beforehand where pip
# reaches an index (and .whl/ listed in .git/info/exclude):
#
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --implementation cp --platform manylinux2014_x86_64 -d .whl \
#         netCDF4==1.7.2 cftime==1.6.4.post1
#
# Each check has its own time limit (timeout), so the whole script ends within about 11 min.
set -uo pipefail
out=${1:-${OUT:-out/gpu-checks}}
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$work/site" .whl/*.whl && export PYTHONPATH="$work/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}"
table="$out/gpu_checks.md"
{
    echo "# GPU checks, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    python3 -c "import torch, spinglass_icl as s; print('torch', torch.__version__, \
'cuda', torch.cuda.is_available(), 'spinglass-icl', s.__version__)" 2>&1
    echo
    echo "| check | exit code | wall s |"
    echo "|---|---|---|"
} | tee "$table"

check() { # name, time limit in seconds, command...
    local name=$1 limit=$2
    shift 2
    local t0
    t0=$(date +%s)
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "| $name | $rc | $(($(date +%s) - t0)) |" | tee -a "$table"
}

gpu_tests=$(grep -l "mark.gpu" tests/test_*.py)
# shellcheck disable=SC2086
check gpu-tests 150 python3 -m pytest -m gpu -q -p no:cacheprovider $gpu_tests
check fig4a-paper 240 python3 -m spinglass_icl reproduce fig4a --preset paper --device cuda \
    --out "$work/paper" --no-progress
check fig6-paper 270 python3 -m spinglass_icl reproduce fig6 --preset paper --device cuda \
    --out "$work/paper" --no-progress
for fig in fig4a fig6; do
    if [ -f "$work/paper/$fig/result.json" ]; then
        cp "$work/paper/$fig/result.json" "$out/${fig}_result.json"
    fi
done
