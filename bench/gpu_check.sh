#!/usr/bin/env bash
# The CUDA paths on a real card, in one call, well inside 8 minutes:
#   bash bench/gpu_check.sh            (from the repository root, on the CUDA machine)
# 1. makes the project importable without the network: PYTHONPATH to this checkout, and the
#    pure-Python wheels that machine lacks from bench/wheels/ (fetch them beforehand on a CPU
#    machine with `bash bench/gpu_check.sh --fetch-wheels`; a few MB, carried with the tree);
# 2. runs the CUDA-marked tests (tests/test_cuda.py);
# 3. runs bench/gpu_check.py: PPO iterations of small and base in bf16, a forced
#    out-of-memory, 5 minutes of `train --preset auto` and 200 greedy games: one JSON line.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=bench/wheels
NEEDED="gymnasium cloudpickle farama-notifications typing-extensions"

if [ "${1:-}" = "--fetch-wheels" ]; then  # on a machine that reaches the package registry
  mkdir -p "$WHEELS"
  $PY -m pip download --quiet --no-deps --only-binary=:all: -d "$WHEELS" $NEEDED
  du -sh "$WHEELS"
  exit $?
fi

if ! $PY -c "import gymnasium" 2>/dev/null; then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "gymnasium is missing and $WHEELS has no wheels: run 'bash bench/gpu_check.sh" \
         "--fetch-wheels' on a machine with the network first" >&2
    exit 2
  fi
  # the wheels into a folder of their own, so the machine's Python stays as it was
  $PY -m pip install --quiet --no-deps --no-index --target .gpu-check-packages "$WHEELS"/*.whl \
    || exit 2
  export PYTHONPATH="$PWD/.gpu-check-packages${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== CUDA-marked tests" >&2
timeout 150 $PY -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py >&2
tests=$?
echo "== bench/gpu_check.py" >&2
timeout 420 $PY bench/gpu_check.py --minutes "${GPU_CHECK_MINUTES:-5}"
bench=$?
echo "tests exit $tests, benchmark exit $bench" >&2
[ $tests -eq 0 ] && [ $bench -eq 0 ]
