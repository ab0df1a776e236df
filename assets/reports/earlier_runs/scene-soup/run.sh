#!/bin/bash
# Three runs of runs/lite1-240-scenes' recipe (seeds 11-13), one per session (about 80 minutes each; a run cut short
# is continued with --resume), then the two candidates of docs/experiments.md ("Three whole-recipe scene runs
# averaged"): S3 (the three averaged) and S3+3 (the shipped soup and the three, equal weight per run), each with the
# centre head re-fitted on its features, exported, calibrated on int8, validation as served; then S3-dec and S4-dec
# (below: a decoder re-fit, and a fourth run for S4-dec).
set -euo pipefail
cd "$(dirname "$0")/../../../.."  # the project root
PY=.venv/bin/python
[ -d runs/pseudo-masks ] || $PY -m petnet.training.pseudolabel --model petnet/weights --out runs/pseudo-masks
KEPT=assets/reports/earlier_runs/scene-soup  # each finished run's config, log and final weights (8.5 MB), committed
for seed in 11 12 13 14; do  # 14 for S4-dec, below
  D=runs/scenes-s$seed
  if [ ! -f $D/final/model.safetensors ] && [ -f $KEPT/scenes-s$seed/final/model.safetensors ]; then
    mkdir -p $D && cp -r $KEPT/scenes-s$seed/. $D/  # a fresh work tree: the committed run
  fi
  [ -f $D/final/model.safetensors ] && continue
  resume=""; [ -f $D/checkpoint.pt ] && resume="--resume"
  $PY -m petnet.training.train --config assets/reports/runs/lite1-240-s1/train_config.json --output-dir $D $resume \
    --pseudo-mask-dir runs/pseudo-masks --seed $seed --init-seed 1 --scene-probability 0.3 --scene-other-animals --no-scene-masks
  mkdir -p $KEPT/scenes-s$seed && cp -r $D/train_config.json $D/training_log.csv $D/final $KEPT/scenes-s$seed/
done
candidate() {  # name, soup flags... (or --from DIR: a model built already, copied)
  local name=$1; shift
  local D=runs/$name
  [ -f runs/reports/$name-val.json ] && return  # built in this work tree already
  if ! $PY -c "import sys; from petnet.hub import int8_may_saturate; sys.exit(int8_may_saturate())"; then
    echo "No AVX-512 VNNI here: int8 overflows, and the bar's figures are int8 (docs/serving.md, Runtimes)"; exit 1
  fi
  rm -rf $D runs/$name-centres
  if [ "$1" = --from ]; then mkdir -p $D && cp -r "$2"/. $D/; else $PY -m petnet.training.soup "$@" --export final --out $D; fi
  # the shipped pipeline's looks and other-animal check (a soup of train.py runs has the runs' config); the pet
  # threshold, breed temperature and peak thresholds are fitted again below
  cp petnet/weights/animals.int8.onnx $D/
  $PY - "$D" <<'PYEOF'
import json, sys
from pathlib import Path
from petnet.models.network import write_config_file
d = Path(sys.argv[1]); a = json.loads((d / "config.json").read_text()); b = json.loads(Path("petnet/weights/config.json").read_text())
for k in ("animal_check_below", "animal_check_threshold", "closer_look", "closer_look_below", "look_past_other_animals",
          "onnx_precision", "pet_pooling_sharpness", "presence_second_look", "second_look_confirm_side", "second_look_peaks",
          "second_look_side", "tile_look_from", "tile_look_side", "tile_look_threshold"):
    a[k] = b[k]
write_config_file(d, a)
PYEOF
  $PY -m petnet.training.train_centers --model $D --output-dir runs/$name-centres --head-from petnet/weights \
    --pseudo-mask-dir runs/pseudo-masks --epochs 8 --lr 0.001 --samples-per-epoch 4000 --scene-share 0.5
  D=runs/$name-centres/final
  $PY -m petnet.training.export --model $D
  $PY -m petnet.training.calibrate --model $D --runtime onnx --precision int8
  $PY -m petnet.evaluate --split val --model $D --runtime onnx --precision int8 --out runs/reports/$name-val.json
  cp runs/reports/$name-val.json $KEPT/  # the validation report, committed with the result
  echo "DONE $name"
}
# S3+3 first: it keeps the shipped decoder, where the scene runs' own give 0.773-0.776 mean IoU (the midway look)
candidate scene-s3plus3 petnet/weights runs/scenes-s11 runs/scenes-s12 runs/scenes-s13 --weights 3 1 1 1 --decoder-from petnet/weights
candidate scene-s3 runs/scenes-s11 runs/scenes-s12 runs/scenes-s13
# S3-dec: S3 with its decoder re-fitted on the frozen backbone and heads (the refit-dec-all recipe, committed in
# scene-s3dec-decoder/: python -m petnet.training.train --config assets/reports/earlier_runs/refit-dec-all/train_config.json
# --init-from runs/scene-s3 --pseudo-mask-dir runs/pseudo-masks --output-dir runs/scene-s3dec)
candidate scene-s3dec --from $KEPT/scene-s3dec-decoder/final
# S4-dec: a fourth scene run (seed 14, trained on its own beforehand with the loop's command), the four averaged,
# the decoder re-fitted as for S3-dec, then the same steps
if [ -f runs/scenes-s14/final/model.safetensors ]; then
  if [ ! -f $KEPT/scene-s4dec-decoder/final/model.safetensors ]; then
    $PY -m petnet.training.soup runs/scenes-s11 runs/scenes-s12 runs/scenes-s13 runs/scenes-s14 --export final --out runs/scene-s4
    rm -rf runs/scene-s4dec-decoder
    $PY -m petnet.training.train --config assets/reports/earlier_runs/refit-dec-all/train_config.json --init-from runs/scene-s4 \
      --pseudo-mask-dir runs/pseudo-masks --output-dir runs/scene-s4dec-decoder
    mkdir -p $KEPT/scene-s4dec-decoder
    cp -r runs/scene-s4dec-decoder/train_config.json runs/scene-s4dec-decoder/training_log.csv runs/scene-s4dec-decoder/final $KEPT/scene-s4dec-decoder/
  fi
  candidate scene-s4dec --from $KEPT/scene-s4dec-decoder/final  # the committed copy: candidate empties runs/scene-s4dec
fi
echo CHAIN DONE
