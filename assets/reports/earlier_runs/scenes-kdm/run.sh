#!/bin/bash
# runs/scenes-kdm: the scenes-kd recipe with the scene photos' masks ignored and the teacher's masks distilled on close-ups;
# then the centre head re-fitted, graphs exported (int8), calibrated on int8, validation measured as served.
set -euo pipefail
cd /work/main
PY=.venv/bin/python
$PY -m petnet.training.train --config runs/scenes-kdm.config.json
$PY -m petnet.training.train_centers --model runs/scenes-kdm/final --output-dir runs/centers-kdm --head-from runs/scenes-kdm/final \
  --pseudo-mask-dir runs/pseudo-masks --epochs 5 --lr 0.001 --samples-per-epoch 4000
D=runs/centers-kdm/final
$PY - <<'PYEOF'
import json
from pathlib import Path
from petnet.models.network import write_config_file
c = json.loads(Path("runs/centers-kdm/final/config.json").read_text()); c["onnx_precision"] = "int8"
write_config_file(Path("runs/centers-kdm/final"), c)
PYEOF
$PY -m petnet.training.export --model $D
$PY -m petnet.training.calibrate --model $D --runtime onnx
$PY -m petnet.evaluate --split val --model $D --runtime onnx --out runs/reports/scenes-kdm-val.json
echo CHAIN DONE
