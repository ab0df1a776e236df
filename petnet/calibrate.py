"""Choose the pet-presence threshold on validation and write it into the model's ``config.json``.

``python -m petnet.calibrate --model DIR`` scores the validation pets (carved from ``trainval`` as in
training) and the calibration part of the non-pet photos, picks ``pet_threshold`` with
:func:`choose_threshold` and saves it next to the weights, so it travels with them. The test split
and the held-out non-pet part are never looked at here.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from huggingface_hub import constants

from petnet.config import TrainConfig
from petnet.data import non_pet_split, read_non_pets, split_records
from petnet.hub import load_model
from petnet.model import write_config_file
from petnet.paths import NON_PET_ROOT

log = logging.getLogger("petnet.calibrate")

MIN_PETS_KEPT = 0.995
"""Validation pets the threshold must keep: pets outside Oxford-IIIT score lower than these, so the
threshold leaves room below the validation pets rather than sitting at their edge."""
MAX_NON_PETS_ACCEPTED = 0.02


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def threshold_keeping(pet_scores: Sequence[float], fraction: float) -> float:
    """The largest threshold that at least ``fraction`` of ``pet_scores`` reach."""
    pets = np.sort(np.asarray(pet_scores, dtype=float))
    return float(pets[math.floor(len(pets) * (1 - fraction))])


def validation_photos(data_root: Path, non_pet_root: Path, val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """The photos thresholds are chosen on: the validation pets (carved from ``trainval`` as in
    training) and the calibration part of the non-pet photos."""
    val_pets = split_records(data_root, "val", val_fraction, seed)
    non_pets = non_pet_split(read_non_pets(non_pet_root), "calibration")
    return [r.image_path for r in val_pets], [r.image_path for r in non_pets]


def choose_threshold(
    pet_scores: Sequence[float],
    non_pet_scores: Sequence[float],
    min_pets_kept: float = MIN_PETS_KEPT,
    max_non_pets_accepted: float = MAX_NON_PETS_ACCEPTED,
) -> float:
    """A threshold between the two score populations.

    ``high`` is the largest threshold that keeps ``min_pets_kept`` of the pets, ``low`` the smallest
    that accepts at most ``max_non_pets_accepted`` of the non-pets. When ``low <= high`` any value
    between meets both, and the midpoint in logit space leaves the widest margin on either side;
    otherwise the pets win (``high``): missing a pet is the worse error for a pet app.
    """
    non_pets = np.sort(np.asarray(non_pet_scores, dtype=float))
    if not len(pet_scores) or not len(non_pets):
        raise ValueError("choose_threshold needs pet and non-pet scores")
    high = threshold_keeping(pet_scores, min_pets_kept)
    allowed_accepts = math.floor(len(non_pets) * max_non_pets_accepted)
    low = float(np.nextafter(non_pets[len(non_pets) - 1 - allowed_accepts], np.inf))
    if low > high:
        return high
    return float(1 / (1 + math.exp(-(_logit(low) + _logit(high)) / 2)))


def main(argv: list[str] | None = None) -> float:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="petnet-calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder to calibrate (its config.json is updated)")
    parser.add_argument("--data-root", type=Path, default=Path(defaults.data_root))
    parser.add_argument("--non-pet-root", type=Path, default=NON_PET_ROOT)
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="as in training")
    parser.add_argument("--seed", type=int, default=defaults.split_seed, help="the validation split's, training's --split-seed")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    pets, non_pets = validation_photos(args.data_root, args.non_pet_root, args.val_fraction, args.seed)
    pet_scores = [p.pet_score for p in model.predict_batch(pets)]
    non_pet_scores = [p.pet_score for p in model.predict_batch(non_pets)]
    threshold = choose_threshold(pet_scores, non_pet_scores)
    kept = np.mean(np.asarray(pet_scores) >= threshold)
    accepted = np.mean(np.asarray(non_pet_scores) >= threshold)
    config = json.loads((args.model / constants.CONFIG_NAME).read_text())
    config["pet_threshold"] = threshold
    config_file = write_config_file(args.model, config)
    log.info("pet_threshold %.4f: keeps %.1f%% of %d validation pets, accepts %.1f%% of %d calibration non-pets; "
             "written to %s", threshold, 100 * kept, len(pet_scores), 100 * accepted, len(non_pet_scores), config_file)  # fmt: skip
    return threshold


if __name__ == "__main__":
    main()
