#!/bin/bash
# The shipped network's encoder and species and breed heads fine-tuned on pets placed into scenes (filling 50-100% of the scene's
# short side, as a second-look crop shows a small pet), the close-ups taught by the shipped model: a network to name the second look's finds.
set -euo pipefail
cd "$(dirname "$0")/../../../.."  # the project root
.venv/bin/python -m petnet.training.train --config assets/reports/earlier_runs/refit-breed-head/train_config.json \
  --output-dir runs/finds-net --pseudo-mask-dir "" --init-from petnet/weights --train-only encoder.,species_head.,breed_head. \
  --backbone-lr-scale 0.5 --scene-probability 0.7 --scene-smallest 0.5 --scene-other-animals --other-animal-repeats 3 --no-scene-masks \
  --teacher petnet/weights --distill-weight 1 --seed 11 --epochs 4 "$@"
