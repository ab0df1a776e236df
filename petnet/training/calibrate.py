"""Calibrate a model on validation: its pet-presence threshold and its breed temperature, written
into the model's ``config.json``.

``python -m petnet.training.calibrate --model DIR`` predicts the validation pets (carved from ``trainval`` as
in training) and the calibration part of the non-pet photos as users get them (``predict_batch``),
picks ``pet_threshold`` with :func:`choose_threshold`, fits ``breed_temperature`` to the final
breed probabilities with :func:`fit_temperature`, and saves both next to the weights, so they
travel with them. A step of the recipe that every new network (a new run, a soup, another runtime
or precision) repeats. The test split and the held-out non-pet part are never looked at here.
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
from scipy.optimize import minimize_scalar

from petnet.config import TrainConfig
from petnet.data.datasets import PetRecord, non_pet_split, read_non_pets, split_records
from petnet.evaluation.metrics import expected_calibration_error, log_loss
from petnet.hub import ALL_PRECISIONS, RUNTIMES, load_model
from petnet.inference.results import Prediction
from petnet.labels import BREEDS
from petnet.models.network import write_config_file
from petnet.paths import NON_PET_ROOT

log = logging.getLogger("petnet.training.calibrate")

MIN_PETS_KEPT = 0.995
"""Validation pets the threshold must keep: pets outside Oxford-IIIT score lower than these, so the
threshold leaves room below the validation pets rather than sitting at their edge."""
MAX_NON_PETS_ACCEPTED = 0.02
TEMPERATURE_BOUNDS = (0.05, 20.0)
"""The range a breed temperature is searched in (about 300x sharper to 20x softer)."""


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def threshold_keeping(pet_scores: Sequence[float], fraction: float) -> float:
    """The largest threshold that at least ``fraction`` of ``pet_scores`` reach."""
    pets = np.sort(np.asarray(pet_scores, dtype=float))
    return float(pets[math.floor(len(pets) * (1 - fraction))])


def validation_photos(data_root: Path, non_pet_root: Path, val_fraction: float, seed: int) -> tuple[list[PetRecord], list[Path]]:
    """The photos thresholds are chosen on: the validation pets (carved from ``trainval`` as in
    training) and the calibration part of the non-pet photos."""
    val_pets = split_records(data_root, "val", val_fraction, seed)
    non_pets = non_pet_split(read_non_pets(non_pet_root), "calibration")
    return val_pets, [r.image_path for r in non_pets]


def fit_temperature(logits: np.ndarray, truth: np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature ``T`` within ``bounds`` that minimises the log loss of ``softmax(logits / T)``
    against ``truth`` (temperature scaling, Guo et al. 2017): one scalar, so no ranking changes."""
    logits, truth = np.asarray(logits, dtype=np.float64), np.asarray(truth)
    if not len(truth):
        raise ValueError("fit_temperature needs at least one row")
    result = minimize_scalar(lambda log_t: log_loss(logits / math.exp(log_t), truth),
                             bounds=tuple(map(math.log, bounds)), method="bounded", options={"xatol": 1e-4})  # fmt: skip
    return float(math.exp(result.x))


def shown_confidences(predictions: Sequence[Prediction]) -> tuple[np.ndarray, np.ndarray]:
    """The species and first-breed confidences ``predictions`` show, as arrays."""
    return (np.array([p.species_confidence for p in predictions]), np.array([p.breed_confidences[0] for p in predictions]))


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


def main(argv: list[str] | None = None) -> tuple[float, float]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="petnet-calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder to calibrate (its config.json is updated)")
    parser.add_argument("--data-root", type=Path, default=Path(defaults.data_root))
    parser.add_argument("--non-pet-root", type=Path, default=NON_PET_ROOT)
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="as in training")
    parser.add_argument("--seed", type=int, default=defaults.split_seed, help="the validation split's, training's --split-seed")
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="the runtime to calibrate for (default $PETNET_RUNTIME, else auto: what load_model runs)")
    parser.add_argument("--precision", choices=ALL_PRECISIONS, default="auto", help="and its precision (as load_model)")
    args = parser.parse_args(argv)
    model = load_model(args.model, runtime=args.runtime, precision=args.precision)
    log.info("Calibrating %s on %s", args.model, model.runtime)
    # the threshold judges the first look (the second and the tile look reuse it on their crops, the look past
    # other animals on a painted photo): off for the fit, back on after it
    second_look, model.config.presence_second_look = model.config.presence_second_look, False
    tile_look, model.config.tile_look_side = model.config.tile_look_side, None
    look_past, model.config.look_past_other_animals = model.config.look_past_other_animals, False
    in_use = model.config.breed_temperature  # which photos get the closer look depends on it (closer_look_below)
    records, non_pets = validation_photos(args.data_root, args.non_pet_root, args.val_fraction, args.seed)
    predictions = model.predict_batch([record.image_path for record in records])
    pet_scores = [p.pet_score for p in predictions]
    non_pet_scores = [p.pet_score for p in model.predict_batch(non_pets)]
    threshold = choose_threshold(pet_scores, non_pet_scores)
    kept = np.mean(np.asarray(pet_scores) >= threshold)
    accepted = np.mean(np.asarray(non_pet_scores) >= threshold)
    names = model.config.breed_names
    # the final logits, up to a constant per photo: the temperature in use undone
    logits = in_use * np.log(np.array([[p.breed_probabilities[name] for name in names] for p in predictions]).clip(1e-45))
    truth = np.array([record.breed_index for record in records])
    temperature = fit_temperature(logits, truth)
    config = json.loads((args.model / constants.CONFIG_NAME).read_text())
    config["pet_threshold"], config["breed_temperature"] = threshold, temperature
    config_file = write_config_file(args.model, config)
    log.info("pet_threshold %.4f: keeps %.1f%% of %d validation pets, accepts %.1f%% of %d calibration non-pets",
             threshold, 100 * kept, len(pet_scores), 100 * accepted, len(non_pet_scores))  # fmt: skip
    before = _calibration_summary(predictions, records)
    model.config.breed_temperature, model.config.pet_threshold = temperature, threshold
    model.config.presence_second_look, model.config.tile_look_side = second_look, tile_look
    model.config.look_past_other_animals = look_past
    served = model.predict_batch([record.image_path for record in records])
    log.info("breed_temperature %.4f: validation %s at %.4f before, %s after; written to %s",
             temperature, before, in_use, _calibration_summary(served, records), config_file)  # fmt: skip
    if second_look or tile_look is not None or look_past:
        served_non_pets = model.predict_batch(non_pets)
        log.info("with every look on: keeps %.1f%% of the validation pets, accepts %.1f%% of the calibration non-pets",
                 100 * np.mean([p.has_pet for p in served]), 100 * np.mean([p.has_pet for p in served_non_pets]))  # fmt: skip
    return threshold, temperature


def _calibration_summary(predictions: Sequence[Prediction], records: Sequence[PetRecord]) -> str:
    """Expected calibration errors of the shown species and first-breed confidences, for the log."""
    species, breed = shown_confidences(predictions)
    species_right = [p.species == BREEDS[r.breed_index].species for p, r in zip(predictions, records, strict=True)]
    breed_right = [p.breed[0] == BREEDS[r.breed_index].name for p, r in zip(predictions, records, strict=True)]
    return (f"species ECE {expected_calibration_error(species, np.array(species_right)):.4f}, "
            f"top-breed ECE {expected_calibration_error(breed, np.array(breed_right)):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
