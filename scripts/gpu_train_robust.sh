#!/usr/bin/env bash
# The one prepared GPU run that trained the shipped robust extractors (see README, "Robust extractors").
# Needs, carried beside the tree: .devpack/{robust-train,lfw-dev}.npz (scripts/pack_faces.py),
# .devpack/base-{dlib,sface}.onnx (the original weights) and .whl/ (onnx2torch, platformdirs).
# Variants run side by side on the one GPU; each logs per epoch and exports int8 ONNX at the end.
set -u
OUT=${OUT:-runs}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
MIN=${MIN:-5}
run() {  # name extractor eps lr
  python3 scripts/train_robust.py --extractor "$2" --base ".devpack/base-$2.onnx" --pack .devpack/robust-train.npz \
    --eval-pack .devpack/lfw-dev.npz --eps "$3" --lr "$4" --epochs 10 --batch 128 --minutes "$MIN" --seed 0 \
    --out "runs/$1" > "runs/$1.log" 2>&1
  cp "runs/$1/$2-robust.onnx" "$OUT/$1.onnx" 2>/dev/null
}
mkdir -p runs "$OUT"
run dlib-e2-lr1e-5 dlib 2 1e-5 &
run dlib-e4-lr1e-5 dlib 4 1e-5 &
run dlib-e2-lr3e-6 dlib 2 3e-6 &
run dlib-e2-lr1e-6 dlib 2 1e-6 &
run sface-e2-lr2e-5 sface 2 2e-5 &
run sface-e4-lr2e-5 sface 4 2e-5 &
wait
for f in runs/*.log; do echo "== $f"; grep -v Warning "$f" | grep -v 'x = x\['; done > "$OUT/train.log"
python3 -c "import json,glob; json.dump({p: json.load(open(p)) for p in glob.glob('runs/*/log.json')}, open('$OUT/logs.json', 'w'), indent=1)"
grep -E '^(==|original|\{|wrote|Traceback|[A-Za-z]*Error)' "$OUT/train.log" | cut -c1-400
ls -la "$OUT"
