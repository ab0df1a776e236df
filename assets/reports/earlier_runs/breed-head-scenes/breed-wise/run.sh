#!/bin/bash
# The mean of the shipped weights and runs/breed-scenes/final (they differ only in the breed head): graphs exported (int8),
# calibrated on int8; the shipped check and second look kept; validation as served.
set -euo pipefail
cd "$(dirname "$0")/../../../../.."  # the project root
PY=.venv/bin/python
$PY -m petnet.training.soup petnet/weights runs/breed-scenes/final --out runs/breed-wise
D=runs/breed-wise
$PY -m petnet.training.export --model $D
cp petnet/weights/animals.int8.onnx $D/
$PY - <<'PY'
import json
from pathlib import Path
from petnet.models.network import write_config_file
d = Path("runs/breed-wise"); a = json.loads((d / "config.json").read_text()); b = json.loads(Path("petnet/weights/config.json").read_text())
for k in ("animal_check_below", "animal_check_threshold", "second_look_confirm_side", "second_look_peaks", "second_look_side"):
    a[k] = b[k]
write_config_file(d, a)
PY
$PY -m petnet.training.calibrate --model $D --runtime onnx
$PY -m petnet.evaluate --split val --model $D --runtime onnx --out runs/reports/breed-wise-val.json
echo CHAIN DONE
