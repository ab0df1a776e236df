#!/bin/bash
# The shipped breed head re-fitted with half of the training pets placed into scenes at 50-100%, the shipped model
# teaching on close-ups; graphs exported (int8), calibrated on int8; the shipped check and second look kept; validation as served.
set -euo pipefail
cd "$(dirname "$0")/../../../../.."  # the project root
PY=.venv/bin/python
$PY -m petnet.training.train --config assets/reports/earlier_runs/refit-breed-head/train_config.json \
  --output-dir runs/breed-scenes --pseudo-mask-dir runs/pseudo-masks --init-from petnet/weights --train-only breed_head. \
  --scene-probability 0.5 --scene-smallest 0.5 --scene-other-animals --other-animal-repeats 3 \
  --teacher petnet/weights --distill-weight 1 --seed 8 "$@"
D=runs/breed-scenes/final
$PY -m petnet.training.export --model $D
cp petnet/weights/animals.int8.onnx $D/
$PY - <<'PY'
import json
from pathlib import Path
from petnet.models.network import write_config_file
d = Path("runs/breed-scenes/final"); a = json.loads((d / "config.json").read_text()); b = json.loads(Path("petnet/weights/config.json").read_text())
for k in ("animal_check_below", "animal_check_threshold", "second_look_confirm_side", "second_look_peaks", "second_look_side"):
    a[k] = b[k]
write_config_file(d, a)
PY
$PY -m petnet.training.calibrate --model $D --runtime onnx
$PY -m petnet.evaluate --split val --model $D --runtime onnx --out runs/reports/breed-scenes-val.json
echo CHAIN DONE
