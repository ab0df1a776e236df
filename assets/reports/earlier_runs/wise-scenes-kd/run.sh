#!/bin/bash
# The shipped network and scenes-kd averaged: three candidates, exported, calibrated on int8, validation as served.
set -euo pipefail
cd "$(dirname "$0")/../../../.."  # the project root
PY=.venv/bin/python
one() {  # name, soup flags...
  local name=$1; shift
  local D=runs/$name
  rm -rf $D
  $PY -m petnet.training.soup petnet/weights runs/scenes-kd --export final --out $D "$@"
  $PY -m petnet.training.export --model $D
  [ -f $D/animals.int8.onnx ] || cp petnet/weights/animals.int8.onnx $D/
  $PY -m petnet.training.calibrate --model $D --runtime onnx
  $PY -m petnet.evaluate --split val --model $D --runtime onnx --out runs/reports/$name-val.json
  echo "DONE $name"
}
one wise50
one wise50-dec --decoder-from petnet/weights
one wise30-dec --decoder-from petnet/weights --weights 7 3
echo CHAIN DONE
