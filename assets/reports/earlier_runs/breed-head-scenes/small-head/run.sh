#!/bin/bash
# breed-scenes' re-fit run again (only the breed head trains, so no pseudo masks), for a head used by the second look alone.
# Measured with a throwaway patch of Predictor.look_again (docs/experiments.md, "A breed head of its own for the second look's finds"); not built.
set -euo pipefail
cd "$(dirname "$0")/../../../../.."  # the project root
.venv/bin/python -m petnet.training.train --config assets/reports/earlier_runs/refit-breed-head/train_config.json \
  --output-dir runs/small-head --pseudo-mask-dir "" --init-from petnet/weights --train-only breed_head. \
  --scene-probability 0.5 --scene-smallest 0.5 --scene-other-animals --other-animal-repeats 3 \
  --teacher petnet/weights --distill-weight 1 --seed 8 "$@"
