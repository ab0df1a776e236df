#!/bin/bash
# The shipped (cs5) centre head fine-tuned 6 more epochs, 70% of its samples in scenes, on the shipped (frozen) network;
# graphs exported (int8), calibrated on int8; the shipped second look and other-animal check kept; validation as served.
set -euo pipefail
cd "$(dirname "$0")/../../../.."  # the project root
PY=.venv/bin/python
$PY -m petnet.training.train_centers --model petnet/weights --output-dir runs/cs6 --head-from petnet/weights \
  --pseudo-mask-dir runs/pseudo-masks --epochs 6 --lr 0.0005 --samples-per-epoch 4000 --scene-share 0.7
D=runs/cs6/final
$PY -m petnet.training.export --model $D
cp petnet/weights/animals.int8.onnx $D/
$PY - <<'PY'
import json
from pathlib import Path
from petnet.models.network import write_config_file
d = Path("runs/cs6/final"); a = json.loads((d / "config.json").read_text()); b = json.loads(Path("petnet/weights/config.json").read_text())
for k in ("animal_check_below", "animal_check_threshold", "second_look_confirm_side", "second_look_peaks", "second_look_side"):
    a[k] = b[k]
write_config_file(d, a)
PY
$PY -m petnet.training.calibrate --model $D --runtime onnx
rm -rf runs/cs6-tight && cp -r $D runs/cs6-tight
$PY -m petnet.evaluate --split val --model runs/cs6-tight --runtime onnx --out runs/reports/cs6-tight-val.json
echo CHAIN DONE
