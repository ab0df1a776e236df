#!/bin/bash
# The shipped centre head fine-tuned with half of its samples placed into scenes, 8 epochs, on the shipped (frozen) network;
# graphs exported (int8), calibrated on int8; the shipped second look and other-animal check added; validation as served.
set -euo pipefail
cd /work/main
PY=.venv/bin/python
$PY -m petnet.training.train_centers --model petnet/weights --output-dir runs/cs5 --head-from petnet/weights \
  --pseudo-mask-dir runs/pseudo-masks --epochs 8 --lr 0.001 --samples-per-epoch 4000 --scene-share 0.5
D=runs/cs5/final
$PY -m petnet.training.export --model $D
cp petnet/weights/animals.int8.onnx $D/
$PY - <<'PY'
import json
from pathlib import Path
from petnet.models.network import write_config_file
d = Path("runs/cs5/final"); a = json.loads((d / "config.json").read_text()); b = json.loads(Path("petnet/weights/config.json").read_text())
for k in ("animal_check_below", "animal_check_threshold", "second_look_confirm_side", "second_look_peaks", "second_look_side"):
    a[k] = b[k]
write_config_file(d, a)
PY
$PY -m petnet.training.calibrate --model $D --runtime onnx
rm -rf runs/cs5-tight && cp -r $D runs/cs5-tight
$PY -m petnet.evaluate --split val --model runs/cs5-tight --runtime onnx --out runs/reports/cs5-tight-val.json
echo CHAIN DONE
