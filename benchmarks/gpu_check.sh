#!/usr/bin/env bash
# The GPU checks of the array back end (issue 19) as one script: a smoke test of each CuPy call the back end
# relies on (benchmarks/gpu_smoke.py, seconds), the CuPy tests (tests/montecarlo/test_backends_gpu.py, with
# the CPU back-end tests beside them), then benchmarks/bench_gpu.py on the card. Under 9 minutes on one H100
# (the four steps are capped at 60 + 180 + 190 + 80 s); needs CuPy (pip install "smfsym[gpu]") and a CUDA device.
# Output also goes to $OUT/gpu_check.txt (and the tests' JUnit XML to $OUT/gpu_tests.xml) when $OUT is set.
# The JAX back end's tests run in the same step (on the card when JAX's CUDA build finds it); its bench:
# python benchmarks/bench_gpu.py --backend jax. Extra bench arguments: BENCH_ARGS="--table 10000000".
# A dry run of the tests on the CPU, without a GPU:
# SMFSYM_FAKE_CUPY=1 python -m pytest tests/montecarlo/test_backends_gpu.py (tests/fake_cupy.py).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# JAX (bench_gpu.py's diffrax row) must not take 75% of the card
export XLA_PYTHON_CLIENT_PREALLOCATE=false
out="${OUT:-/tmp}"
log="$out/gpu_check.txt"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: none"
  if ! python -c "import cupy, sys; n = cupy.cuda.runtime.getDeviceCount(); print('cupy', cupy.__version__, 'devices', n); sys.exit(n < 1)"; then
    echo "no CuPy or no CUDA device: nothing to check (pip install \"smfsym[gpu]\")"
    exit 2
  fi
  t0=$SECONDS
  timeout 60 python benchmarks/gpu_smoke.py --backend cupy
  smoke=$?
  echo "smoke: exit $smoke ($((SECONDS - t0)) s)"
  t1=$SECONDS
  timeout 180 python -m pytest tests/montecarlo/test_backends_gpu.py tests/montecarlo/test_backends.py \
    tests/montecarlo/test_backends_jax.py -q \
    -p no:cacheprovider -rs --durations=8 --junitxml="$out/gpu_tests.xml"
  tests=$?
  echo "tests: exit $tests ($((SECONDS - t1)) s)"
  t2=$SECONDS
  timeout 190 python benchmarks/bench_gpu.py --backend cupy ${BENCH_ARGS:-}
  bench=$?
  echo "bench: exit $bench ($((SECONDS - t2)) s)"
  t3=$SECONDS  # the JAX back end's rows, short (its figures are a bonus: failing here fails nothing)
  timeout 80 python benchmarks/bench_gpu.py --backend jax --quick --paths 262144
  echo "bench jax: exit $? ($((SECONDS - t3)) s); total $((SECONDS - t0)) s"
  exit $(( smoke != 0 || tests != 0 || bench != 0 ))
} 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
