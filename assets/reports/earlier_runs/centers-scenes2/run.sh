#!/bin/bash
# The shipped centre head fine-tuned with a quarter of its samples placed into scenes, on the shipped (frozen) network;
# then graphs exported (int8), calibrated on int8, validation measured as served (second look on).
set -euo pipefail
cd /work/main
PY=.venv/bin/python
$PY -m petnet.training.train_centers --model petnet/weights --output-dir runs/centers-scenes2 --head-from petnet/weights \
  --pseudo-mask-dir runs/pseudo-masks --epochs 5 --lr 0.001 --samples-per-epoch 4000 --scene-share 0.25
D=runs/centers-scenes2/final
$PY -m petnet.training.export --model $D
$PY -m petnet.training.calibrate --model $D --runtime onnx
$PY -m petnet.evaluate --split val --model $D --runtime onnx --out runs/reports/centers-scenes2-val.json
echo CHAIN DONE
