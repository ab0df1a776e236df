#!/bin/bash
# After runs/scenes-kd: the centre head re-fitted, graphs exported (int8), calibrated on int8, validation measured.
set -euo pipefail
cd /work/main
PY=.venv/bin/python
$PY -m petnet.training.train_centers --model runs/scenes-kd/final --output-dir runs/centers-kd --head-from runs/scenes-kd/final \
  --pseudo-mask-dir runs/pseudo-masks --epochs 5 --lr 0.001 --samples-per-epoch 4000
D=runs/centers-kd/final
$PY - <<'PYEOF'
import json
path = "runs/centers-kd/final/config.json"
c = json.load(open(path)); c["onnx_precision"] = "int8"; json.dump(c, open(path, "w"), indent=2)
PYEOF
$PY -m petnet.training.export --model $D
$PY -m petnet.training.calibrate --model $D --runtime onnx
$PY -m petnet.evaluate --split val --model $D --runtime onnx --out runs/reports/scenes-kd-val.json
# the same with the second look for small pets (shipped since the run started)
mkdir -p runs/centers-kd-second
for f in $D/*.onnx $D/model.safetensors; do ln -sf $PWD/$f runs/centers-kd-second/; done
$PY - <<'PYEOF'
import json
from pathlib import Path
from petnet.models.network import write_config_file
c = json.loads(Path("runs/centers-kd/final/config.json").read_text()); c["presence_second_look"] = True
write_config_file(Path("runs/centers-kd-second"), c)
PYEOF
$PY -m petnet.evaluate --split val --model runs/centers-kd-second --runtime onnx --out runs/reports/scenes-kd-second-val.json
echo CHAIN DONE
