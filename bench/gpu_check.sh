#!/usr/bin/env bash
# The checks a GPU machine runs (about 10 minutes at most; every step has its own limit):
#   1. the GPU tests (pytest -m gpu)
#   2. simulator speed on CUDA (bench/simulator.py --device cuda)
#   3. one MobileNetV2-CIFAR10 GA generation on CUDA
#   4. a CPU-vs-CUDA agreement check of a chip's accuracy over the same draws
# Usage: bench/gpu_check.sh [DEVICE]   (default cuda; DEVICE=cpu runs the same steps on
# the CPU, as a dry run of the script on a machine without a GPU)
set -u
cd "$(dirname "$0")/.."
DEVICE="${1:-cuda}"
PY="${PYTHON:-.venv/bin/python}"
status=0

step() {  # step NAME SECONDS COMMAND...
  local name="$1" limit="$2"
  shift 2
  echo "== ${name} (limit ${limit} s)"
  local t0=$SECONDS
  timeout "${limit}" "$@"
  local rc=$?
  echo "== ${name}: exit ${rc}, $((SECONDS - t0)) s"
  [ "${rc}" -eq 0 ] || status=1
}

"${PY}" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.cuda.is_available(), \
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
if [ "${DEVICE}" != "cpu" ]; then
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader
  step "GPU tests" 120 "${PY}" -m pytest -m gpu tests/test_device.py \
    tests/test_memsim_transformer.py -q -rs
fi
step "simulator speed on ${DEVICE}" 150 "${PY}" bench/simulator.py --device "${DEVICE}" --repeats 3
step "MobileNetV2-CIFAR10 GA generation on ${DEVICE}" 240 \
  "${PY}" bench/gpu_check.py ga --device "${DEVICE}"
step "CPU vs ${DEVICE} chip accuracy" 60 "${PY}" bench/gpu_check.py agree --device "${DEVICE}"
echo "gpu_check: $([ ${status} -eq 0 ] && echo all steps passed || echo SOME STEPS FAILED)"
exit ${status}
