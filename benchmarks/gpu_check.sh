#!/usr/bin/env bash
# The GPU checks of the array back end (issue 19) as one script: the CuPy tests (tests/montecarlo/
# test_backends_gpu.py, with the CPU back-end tests beside them), then benchmarks/bench_gpu.py on the
# card. About 3-6 minutes on one H100; needs CuPy (pip install "smfsym[gpu]") and a CUDA device.
# Output also goes to $OUT/gpu_check.txt when $OUT is set. Extra bench arguments: BENCH_ARGS="--table 10000000".
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
log="${OUT:-/tmp}/gpu_check.txt"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: none"
  if ! python -c "import cupy, sys; n = cupy.cuda.runtime.getDeviceCount(); print('cupy', cupy.__version__, 'devices', n); sys.exit(n < 1)"; then
    echo "no CuPy or no CUDA device: nothing to check (pip install \"smfsym[gpu]\")"
    exit 2
  fi
  t0=$SECONDS
  timeout 240 python -m pytest tests/montecarlo/test_backends_gpu.py tests/montecarlo/test_backends.py -q \
    -p no:cacheprovider -rs
  tests=$?
  echo "tests: exit $tests ($((SECONDS - t0)) s)"
  t1=$SECONDS
  timeout 240 python benchmarks/bench_gpu.py --backend cupy ${BENCH_ARGS:-}
  bench=$?
  echo "bench: exit $bench ($((SECONDS - t1)) s)"
  exit $(( tests != 0 || bench != 0 ))
} 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
