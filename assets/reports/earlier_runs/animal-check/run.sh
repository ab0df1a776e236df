#!/bin/bash
# The shipped weights with the other-animal check (ImageNet's Lite0 at 160 px, threshold fitted on the training pets),
# validation measured as served, then the bench against the project at 5946b38.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
PY=.venv/bin/python
rm -rf runs/check160 && cp -r petnet/weights runs/check160
$PY -m petnet.training.animal_check --model runs/check160
$PY -m petnet.evaluate --split val --model runs/check160 --runtime onnx --out runs/reports/check160-val.json
$PY -m petnet.bench --model runs/check160 --threads 2 --baseline-ref 5946b38 --json runs/reports/check160-bench.json
