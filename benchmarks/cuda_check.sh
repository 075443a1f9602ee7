#!/usr/bin/env bash
# The kernel checks for a CUDA machine, in one go: the Triton parity tests compiled on the GPU
# (DETOX_KERNEL_TEST_DEVICE=cuda), DDSC decoding through the kernels on a tiny model, the kernel
# report and the kernel benchmarks.
#
#   OUT=cuda-check bash benchmarks/cuda_check.sh
#
# Needs a python (PYTHON, default python3) with torch, triton, transformers, tokenizers, pydantic,
# platformdirs, rich, pytest, hypothesis and pytest-benchmark; the detox sources are put on
# PYTHONPATH, so no install is needed. Each step
# writes its log or JSON under OUT; a failing step does not stop the next.
set -u -o pipefail
OUT=${OUT:-cuda-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
SOURCES="kernels/src:packages/detox-core/src:packages/detox-ddsc/src"
export PYTHONPATH="$SOURCES${PYTHONPATH:+:$PYTHONPATH}"
export DETOX_KERNEL_TEST_DEVICE=cuda PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
status=0

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" \
    | tee -a "$OUT/gpu.txt"

echo "== parity tests (compiled Triton on CUDA vs the CPU torch reference)"
timeout 300 $PY -m pytest -q -p no:cacheprovider tests/test_kernels_contrast.py \
    tests/test_kernels_select.py 2>&1 | tee "$OUT/parity.log" || status=1

echo "== DDSC decoding on CUDA (Triton path vs torch path vs CPU, tiny random Llama)"
timeout 300 $PY -m pytest -q -p no:cacheprovider tests/test_ddsc_cuda.py 2>&1 \
    | tee "$OUT/ddsc_cuda.log" || status=1

echo "== kernel report (bf16; median ms of 50 runs per point)"
timeout 180 $PY benchmarks/kernels_report.py --dtype bfloat16 >"$OUT/kernels_report.json" \
    && cat "$OUT/kernels_report.json" || status=1

echo "== kernel benchmarks (pytest-benchmark)"
timeout 180 $PY -m pytest -q -p no:cacheprovider --noconftest benchmarks/test_bench_kernels.py \
    --benchmark-enable --benchmark-json "$OUT/bench_kernels.json" \
    --benchmark-columns=median,min,max --benchmark-sort=name 2>&1 | tee "$OUT/bench.log" || status=1
exit $status
