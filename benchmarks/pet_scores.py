"""Which score tells a pet photo from another best? Prints AUROC and rates on validation data.

``python benchmarks/pet_scores.py [--model DIR]`` scores the validation pets (carved from ``trainval``
as in training) and the calibration part of the non-pet photos with four candidate signals: the
pet-presence head's ``pet_score``, the largest species probability, the largest breed probability
and the fraction of pet pixels in the mask. For each it prints the AUROC and, at the threshold that
keeps 99.5% of the pets, the share of non-pet photos accepted. Validation data only: this is how the
signal was chosen, the test figures come from ``petnet.evaluate``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from petnet.calibrate import threshold_keeping, validation_photos
from petnet.config import TrainConfig
from petnet.hub import load_model
from petnet.metrics import binary_auroc
from petnet.paths import BUNDLED_MODEL_DIR, NON_PET_ROOT

KEPT = 0.995


def signals(prediction) -> dict[str, float]:
    return {
        "pet-presence head (pet_score)": prediction.pet_score,
        "largest species probability": max(prediction.species_probabilities.values()),
        "largest breed probability": max(prediction.breed_probabilities.values()),
        "pet pixels in the mask": float((prediction.full_mask == 0).float().mean()),
    }


def main() -> None:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR))
    args = parser.parse_args()
    model = load_model(args.model)
    pet_photos, non_pet_photos = validation_photos(Path(defaults.data_root), NON_PET_ROOT, defaults.val_fraction,
                                                   defaults.split_seed)  # fmt: skip
    pets = [signals(p) for p in model.predict_batch(pet_photos)]
    others = [signals(p) for p in model.predict_batch(non_pet_photos)]
    print(f"{len(pets)} validation pets, {len(others)} calibration non-pet photos")
    print(f"{'signal':<32} {'AUROC':>7} {'non-pets accepted at 99.5% pets kept':>38}")
    for name in pets[0]:
        pet_scores = np.array([s[name] for s in pets])
        other_scores = np.array([s[name] for s in others])
        threshold = threshold_keeping(pet_scores, KEPT)
        auroc = binary_auroc(np.concatenate([pet_scores, other_scores]),
                             np.r_[np.ones(len(pet_scores), bool), np.zeros(len(other_scores), bool)])  # fmt: skip
        print(f"{name:<32} {auroc:7.3f} {np.mean(other_scores >= threshold):38.1%}")


if __name__ == "__main__":
    main()
