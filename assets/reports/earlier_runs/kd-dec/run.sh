#!/bin/bash
# scenes-kd's backbone and heads frozen, the whole decoder re-fitted on close-ups (the refit-dec-all recipe), the centre
# head re-fitted on the new decoder, graphs exported (int8), calibrated on int8, validation measured as served.
set -euo pipefail
cd /work/main
PY=.venv/bin/python
mkdir -p runs/kd-dec-start
cp runs/centers-kd/final/model.safetensors runs/kd-dec-start/
$PY - <<'PYEOF'
import json
from pathlib import Path
from petnet.models.network import write_config_file
c = json.loads(Path("runs/centers-kd/final/config.json").read_text())
c["presence_second_look"] = True; c["closer_look_below"] = 0.6
write_config_file(Path("runs/kd-dec-start"), c)
PYEOF
$PY -m petnet.training.train --config assets/reports/earlier_runs/refit-dec-all/train_config.json --output-dir runs/kd-dec \
  --init-from runs/kd-dec-start --train-only decoder. --pseudo-mask-dir runs/pseudo-masks
$PY -m petnet.training.train_centers --model runs/kd-dec/final --output-dir runs/centers-kd-dec --head-from runs/kd-dec/final \
  --pseudo-mask-dir runs/pseudo-masks --epochs 5 --lr 0.001 --samples-per-epoch 4000
D=runs/centers-kd-dec/final
$PY -m petnet.training.export --model $D
$PY -m petnet.training.calibrate --model $D --runtime onnx
$PY -m petnet.evaluate --split val --model $D --runtime onnx --out runs/reports/kd-dec-val.json
echo CHAIN DONE
