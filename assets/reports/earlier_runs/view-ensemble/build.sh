#!/usr/bin/env bash
# V2: the shipped network on the photo, S4-dec (assets/reports/earlier_runs/scene-soup/run.sh) on its
# mirror image. Needs the ViewEnsemble code of commit 00ed9a8 (reverted after V2 failed).
set -euo pipefail
rm -rf runs/v2 && mkdir -p runs/v2/scenes
cp petnet/weights/* runs/v2/ && rm runs/v2/README.md
for f in config.json model.int8.onnx classify.int8.onnx model.onnx classify.onnx model.safetensors; do
  cp runs/scene-s4dec-centres/final/$f runs/v2/scenes/
done
python - <<'PY'
import json
path = "runs/v2/config.json"
config = json.load(open(path))
config["mirror_network"] = "scenes"
open(path, "w").write(json.dumps(config, indent=2, sort_keys=True) + "\n")
PY
python -m petnet.training.calibrate --model runs/v2 --runtime onnx
python -m petnet.evaluate --split val --model runs/v2 --runtime onnx --out runs/v2-val.json
