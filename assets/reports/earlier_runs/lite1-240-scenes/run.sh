#!/bin/bash
# runs/lite1-240-scenes: the third run's recipe with pets placed into scenes from the first epoch (30% of pet photos),
# other animals placed as negatives, scenes left out of the mask losses; then the shipped soup grown by it 3:1 with the
# shipped decoder and centre head, exported, calibrated on int8, validation as served.
set -euo pipefail
cd "$(dirname "$0")/../../../.."  # the project root
PY=.venv/bin/python
[ -f runs/lite1-240-scenes/final/model.safetensors ] || $PY -m petnet.training.train \
  --config assets/reports/runs/lite1-240-s1/train_config.json --output-dir runs/lite1-240-scenes \
  --pseudo-mask-dir runs/pseudo-masks --seed 10 --init-seed 1 --scene-probability 0.3 --scene-other-animals --no-scene-masks
one() {  # name, soup flags...
  local name=$1; shift
  local D=runs/$name
  rm -rf $D
  $PY -m petnet.training.soup "$@" --export final --out $D
  $PY -m petnet.training.export --model $D
  [ -f $D/animals.int8.onnx ] || cp petnet/weights/animals.int8.onnx $D/
  $PY -m petnet.training.calibrate --model $D --runtime onnx
  $PY -m petnet.evaluate --split val --model $D --runtime onnx --out runs/reports/$name-val.json
  echo "DONE $name"
}
# a run straight from train.py has no centre head, and the soup averages only alike models: its export is given the
# shipped centre head (which --decoder-from petnet/weights takes for the soup anyway); petnet.training.soup now
# does without this step, taking the centre head from the --decoder-from runs
$PY - <<'PYEOF'
import dataclasses
from pathlib import Path
from petnet.hub import load_model
from petnet.models.network import PetNet
shipped = load_model("petnet/weights", runtime="torch", fuse=False)
run = load_model("runs/lite1-240-scenes/final", runtime="torch", fuse=False)
model = PetNet(dataclasses.replace(run.config, center_head=True))
heads = {k: v for k, v in shipped.state_dict().items() if k.startswith("center_head.")}
model.load_state_dict({**run.state_dict(), **heads})
model.save_pretrained(Path("runs/lite1-240-scenes/final-centre"))
PYEOF
one scenes-soup31 petnet/weights runs/lite1-240-scenes/final-centre --weights 3 1 --decoder-from petnet/weights
echo CHAIN DONE
