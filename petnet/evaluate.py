"""Evaluate a PetNet model on a dataset split and write the v1 report: ``python -m petnet.evaluate --split test``.

The evaluator only runs the model and accumulates per-image outcomes and confusion matrices; every
number in the report comes from :mod:`petnet.evaluation.metrics`. Breed metrics score what :meth:`PetNet.predict`
returns: breeds ranked among those of the predicted species. Segmentation is scored only on images
with a real trimap, at the trimap's own resolution (mask logits upsampled bilinearly before the argmax),
so the figures do not depend on the network's input size.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from petnet import __version__
from petnet.config import TrainConfig
from petnet.data.composites import LAYOUTS, Composite, build_composites
from petnet.data.datasets import (
    PetRecord,
    is_other_animal,
    load_record_image,
    non_pet_split,
    read_non_pets,
    read_trimap,
    split_records,
)
from petnet.data.scenes import Scene, band_key, build_scenes
from petnet.errors import InvalidImageError, WeightsError
from petnet.evaluation.metrics import (
    accuracy,
    binary_auroc,
    binary_pet_iou,
    confusion_matrix,
    dice_per_class,
    expected_calibration_error,
    iou_per_class,
    log_loss,
    most_confused_pairs,
    precision_recall_f1,
    ranked_within_species,
    reliability_bins,
    top_k_accuracy,
    weighted_f1,
)
from petnet.evaluation.report import (
    BASELINE,
    EVALUATION_SPLITS,
    HEADLINE_METRICS,
    ON_ANIMALS,
    SCHEMA_VERSION,
    report_path,
    scenes_by_background,
    write_report,
)
from petnet.hub import ALL_PRECISIONS, BUNDLED_MODEL_DIR, RUNTIMES, display_source, load_model
from petnet.inference.decoding import TOP_K_BREEDS, mask_from_logits
from petnet.inference.pipeline import Answer, Predictor, PreparedImage
from petnet.inference.results import Prediction
from petnet.labels import BREED_NAMES, BREED_SPECIES_INDEX, BREEDS, MASK_CLASSES, SPECIES, display_name
from petnet.models.network import PetNet
from petnet.paths import NON_PET_ROOT, OXFORD_PET_ROOT

log = logging.getLogger("petnet.evaluate")

OFFICIAL_TEST_TOTAL = 3669
"""Images in the official Oxford-IIIT Pet test split; this copy withholds part of them."""
CALIBRATION_BINS = 10
"""Equal-width confidence bins of the calibration figures (as Guo et al. 2017 report ECE)."""
LOW_IOU = 0.5
"""Per-image mean IoU below which a worst case is flagged "low IoU"."""
SCENES_PER_CELL = 100
"""Pets in scenes per kind and size band (``--scenes``), 200 a band. At 25 one photo moved a band's
share by two points: the validation draw found pets at 20-45% of the side as one in 49 of 50, six
draws 281 of 300 (docs/experiments.md, "How many scenes the checks need")."""
SCENE_SEED_OFFSET = 2
"""The report's draw of scenes is seeded ``--seed`` plus this, a draw apart from the composites' (``--seed``)."""
SCENE_COUNTS = ("num_images", "found", "found_one", "species_right", "breed_right", *(f"{key}_on_animals" for key in ON_ANIMALS))
"""What :func:`scene_counts` counts in each cell (docs/report_schema.md)."""
NON_PET_PART = {"test": "holdout", "val": "calibration", "trainval": "train"}
"""The part of the non-pet photos scored with each split: test never sees what was tuned on."""


@dataclass(frozen=True)
class ImageOutcome:
    """What the model did on one image (``pixel_confusion`` and ``mask`` only with a trimap)."""

    record: PetRecord
    species_probabilities: np.ndarray
    breed_logits: np.ndarray
    """Log of the breed probabilities ``predict`` shows (all views combined, calibrated)."""
    conditioned_breed_logits: np.ndarray
    predicted_breeds: tuple[int, ...]
    pet_score: float
    has_pet: bool
    """What ``predict`` says: the pet score reached the threshold and the other-animal check let it be."""
    pixel_confusion: np.ndarray | None
    mask: np.ndarray | None
    animals_found: int
    """Animals ``predict`` would answer for, were the photo taken to hold a pet (1 = one answer)."""

    @property
    def predicted_species(self) -> int:
        """The first breed's species: ``predict`` ranks breeds within the species it names."""
        return SPECIES.index(BREEDS[self.predicted_breeds[0]].species)

    @property
    def top_breed_probability(self) -> float:
        """Softmax probability of the first breed named, over all 37 breeds: what ``predict`` shows."""
        return math.exp(-log_loss(self.breed_logits[None], np.array([self.predicted_breeds[0]])))

    @property
    def true_breed_probability(self) -> float:
        """Softmax probability of the true breed over all 37 breed logits (what the log loss averages)."""
        return math.exp(-log_loss(self.breed_logits[None], np.array([self.record.breed_index])))

    @property
    def iou(self) -> float:
        """Mean IoU over the classes present in this image's truth or prediction (NaN without a trimap)."""
        return float(np.nanmean(iou_per_class(self.pixel_confusion))) if self.pixel_confusion is not None else math.nan


def split_description(split: str, records: Sequence[PetRecord], val_fraction: float, seed: int) -> str:
    """E.g. ``official test split, 2,430 of 3,669 images (405 with trimaps)``."""
    counts = f"{len(records):,} images ({sum(r.has_trimap for r in records):,} with trimaps)"
    if split == "test":
        return f"official test split, {len(records):,} of {OFFICIAL_TEST_TOTAL:,} " + counts.split(" ", 1)[1]
    if split == "val":
        return f"validation split carved from trainval (val_fraction {val_fraction}, seed {seed}), {counts}"
    return f"official trainval split (the training data), {counts}"


def run_model(model: PetNet, records: Sequence[PetRecord], batch_size: int = 32, num_workers: int = 0) -> tuple[list[ImageOutcome], dict[str, str]]:
    """Answer every record through the prediction pipeline (``model.predictor``, what ``predict``
    answers: the closer look and each animal's crop included); returns outcomes and unreadable images.

    The photos are read and preprocessed by a ``DataLoader`` (``num_workers`` processes)."""
    loader = DataLoader(_PreparedRecords(model.predictor, records), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=list)  # fmt: skip
    outcomes: list[ImageOutcome] = []
    failures: dict[str, str] = {}
    for batch in tqdm(loader, desc="evaluating", unit="batch"):
        failures.update((record.name, item) for record, item in batch if isinstance(item, str))
        readable = [(record, item) for record, item in batch if isinstance(item, PreparedImage)]
        answers = model.predictor.answer([item for _, item in readable]) if readable else []
        outcomes.extend(score_answer(record, answer) for (record, _), answer in zip(readable, answers, strict=True))
    return outcomes, failures


class _PreparedRecords(Dataset):
    """Each record with its photo read (:func:`load_record_image`) and prepared as ``predict``
    prepares it, or with the reason it cannot be used."""

    def __init__(self, predictor: Predictor, records: Sequence[PetRecord]) -> None:
        self.predictor = predictor
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[PetRecord, PreparedImage | str]:
        record = self.records[index]
        try:
            return record, self.predictor.prepare(load_record_image(record))
        except (InvalidImageError, OSError) as error:
            return record, str(error)


def score_answer(record: PetRecord, answer: Answer) -> ImageOutcome:
    """What one image's answer scores: its probabilities and breeds as arrays in label order, and
    the mask against the trimap at the trimap's resolution (logits resampled before the argmax)."""
    prediction = answer.prediction
    pixel_confusion = mask = None
    if record.trimap_path is not None:
        trimap = read_trimap(record.trimap_path)
        mask = mask_from_logits(answer.mask_logits, trimap.shape)
        pixel_confusion = confusion_matrix(trimap, mask, len(MASK_CLASSES))
    breed_logits = np.log(np.array([prediction.breed_probabilities[b.name] for b in BREEDS], dtype=np.float64).clip(1e-300))
    return ImageOutcome(
        record=record,
        species_probabilities=np.array([prediction.species_probabilities[name] for name in SPECIES]),
        breed_logits=breed_logits,
        conditioned_breed_logits=ranked_within_species(breed_logits[None], np.array(BREED_SPECIES_INDEX))[0],
        predicted_breeds=tuple(BREED_NAMES.index(name) for name in prediction.breed),
        pet_score=prediction.pet_score,
        has_pet=prediction.has_pet,
        pixel_confusion=pixel_confusion,
        mask=mask,
        animals_found=answer.animals_found,
    )


def detection_metrics(pet_scores: Sequence[float], non_pet_scores: Sequence[float], threshold: float,
                      pets_found: Sequence[bool], non_pets_found: Sequence[bool]) -> dict:  # fmt: skip
    """Pet-presence figures: pets kept and non-pets accepted as ``predict`` decided (``*_found``: the
    score at the model's ``threshold``, then the other-animal check), and the scores' AUROC."""
    pets, non_pets = np.asarray(pet_scores, dtype=float), np.asarray(non_pet_scores, dtype=float)
    scores = np.concatenate([pets, non_pets])
    truth = np.concatenate([np.ones(len(pets), dtype=bool), np.zeros(len(non_pets), dtype=bool)])
    return {
        "threshold": threshold,
        "num_pets": len(pets),
        "num_non_pets": len(non_pets),
        "pets_kept": float(np.mean(pets_found)) if len(pets) else math.nan,
        "non_pets_accepted": float(np.mean(non_pets_found)) if len(non_pets) else math.nan,
        "auroc": binary_auroc(scores, truth),
    }


def scene_counts(scenes: Sequence[Scene], predictions: Sequence[Prediction]) -> dict:
    """Per kind of scene and size band: scenes, pets found (``has_pet``), found as one animal, and
    found as one animal of the right species and breed; and of those scenes, the ones that are photos
    of another animal (``*_on_animals``), where the pet has another animal beside it."""
    counts: dict = {}
    for scene, prediction in zip(scenes, predictions, strict=True):
        cell = counts.setdefault(scene.kind, {}).setdefault(band_key(scene.band), dict.fromkeys(SCENE_COUNTS, 0))
        one = prediction.has_pet and len(prediction.pets) == 1
        outcome = {"num_images": True, "found": prediction.has_pet, "found_one": one,
                   "species_right": one and prediction.species == scene.species,
                   "breed_right": one and prediction.breed[0] == scene.breed}  # fmt: skip
        for key, value in outcome.items():
            cell[key] += value
        for key in ON_ANIMALS:
            cell[f"{key}_on_animals"] += outcome[key] and scene.on_animal
    return counts


def two_animal_counts(truths: Sequence[Composite], predictions: Sequence[Prediction]) -> dict:
    """How often a composite of two animals gets two answers, and both species right."""
    count_right = [len(p.pets) == 2 for p in predictions]
    species_right = [
        right and sorted(pet.species for pet in p.pets) == sorted(t.species)
        for t, p, right in zip(truths, predictions, count_right, strict=True)
    ]
    by_layout = {
        layout: {
            "num_images": sum(t.layout == layout for t in truths),
            "count_right": sum(r for t, r in zip(truths, count_right) if t.layout == layout),
            "both_species_right": sum(r for t, r in zip(truths, species_right) if t.layout == layout),
        }
        for layout in LAYOUTS
    }
    return {"num_images": len(truths), "count_right": sum(count_right), "both_species_right": sum(species_right),
            "by_layout": by_layout}  # fmt: skip


def worst_first(outcomes: Sequence[ImageOutcome]) -> list[ImageOutcome]:
    """Wrong species first, then lowest probability of the true breed, then lowest per-image IoU
    (images without a trimap count as IoU 1 in this last key)."""

    def severity(outcome: ImageOutcome) -> tuple[bool, float, float]:
        iou = outcome.iou
        return (outcome.predicted_species == outcome.record.species_index, outcome.true_breed_probability,
                1.0 if math.isnan(iou) else iou)  # fmt: skip

    return sorted(outcomes, key=severity)


def failure_reasons(outcome: ImageOutcome) -> list[str]:
    truth = outcome.record
    reasons = []
    if outcome.predicted_species != truth.species_index:
        reasons.append("species wrong")
    if outcome.predicted_breeds[0] != truth.breed_index:
        reasons.append("breed wrong")
    if truth.breed_index not in outcome.predicted_breeds:
        reasons.append("breed not in top 3")
    if outcome.iou < LOW_IOU:  # False for NaN
        reasons.append("low IoU")
    return reasons


def worst_case_entry(outcome: ImageOutcome, data_root: Path, mask_path: str | None) -> dict:
    record = outcome.record

    def relative(path: Path | None) -> str | None:
        return path.relative_to(data_root).as_posix() if path is not None else None

    return {
        "name": record.name,
        "image": relative(record.image_path),
        "trimap": relative(record.trimap_path),
        "predicted_mask": mask_path,
        "true_species": SPECIES[record.species_index],
        "predicted_species": SPECIES[outcome.predicted_species],
        "species_confidence": float(outcome.species_probabilities[outcome.predicted_species]),
        "true_breed": BREEDS[record.breed_index].name,
        "predicted_breeds": [BREEDS[i].name for i in outcome.predicted_breeds],
        "true_breed_probability": outcome.true_breed_probability,
        "iou": outcome.iou,
        "reasons": failure_reasons(outcome),
    }


def lowest_iou_first(outcomes: Sequence[ImageOutcome]) -> list[ImageOutcome]:
    """Images with a trimap, lowest per-image mean IoU first: where the mask fails."""
    return sorted((o for o in outcomes if o.pixel_confusion is not None), key=lambda o: o.iou)


def save_cases(chosen: dict[str, Sequence[ImageOutcome]], data_root: Path, report_file: Path) -> dict[str, list[dict]]:
    """Report entries for each list of ``chosen`` outcomes; their predicted masks go to ``<report stem>_masks/``."""
    mask_dir = report_file.parent / f"{report_file.stem}_masks"
    mask_dir.mkdir(parents=True, exist_ok=True)
    for stale in mask_dir.glob("*.png"):
        stale.unlink()
    entries: dict[str, list[dict]] = {}
    for key, outcomes in chosen.items():
        entries[key] = []
        for outcome in outcomes:
            mask_path = None
            if outcome.mask is not None:
                Image.fromarray(outcome.mask.astype(np.uint8)).save(mask_dir / f"{outcome.record.name}.png")
                mask_path = f"{mask_dir.name}/{outcome.record.name}.png"
            entries[key].append(worst_case_entry(outcome, data_root, mask_path))
    return entries


def check_labels(model: PetNet) -> None:
    """Refuse a model whose label set is not the dataset's: its scores would be read against the wrong names."""
    config = model.config
    theirs = (config.species_names, config.breed_names, config.breed_species, config.mask_classes)
    ours = (list(SPECIES), [b.name for b in BREEDS], [b.species for b in BREEDS], list(MASK_CLASSES))
    if tuple(map(list, theirs)) != ours:
        raise WeightsError(
            "The model's labels (config.json species_names, breed_names, breed_species, mask_classes) differ from "
            "the Oxford-IIIT Pet labels in petnet.labels, so it cannot be scored on this dataset."
        )


def classification_metrics(outcomes: Sequence[ImageOutcome]) -> tuple[dict, dict]:
    """The ``species`` and ``breed`` report sections."""
    species_truth = np.array([o.record.species_index for o in outcomes], dtype=np.int64)
    breed_truth = np.array([o.record.breed_index for o in outcomes], dtype=np.int64)
    species_confusion = confusion_matrix(species_truth, [o.predicted_species for o in outcomes], len(SPECIES))
    breed_confusion = confusion_matrix(breed_truth, [o.predicted_breeds[0] for o in outcomes], len(BREEDS))
    conditioned = np.stack([o.conditioned_breed_logits for o in outcomes]) if outcomes else np.zeros((0, len(BREEDS)))
    unconditioned = np.stack([o.breed_logits for o in outcomes]) if outcomes else np.zeros((0, len(BREEDS)))
    precision, recall, f1 = precision_recall_f1(breed_confusion)
    species = {"rule": "species of the most likely breed, as PetNet.predict names it",
               "accuracy": accuracy(species_confusion), "confusion": species_confusion}  # fmt: skip
    breed = {
        "ranking": "breeds of the predicted species only, as PetNet.predict returns them",
        "top1_accuracy": top_k_accuracy(conditioned, breed_truth, 1),
        "top3_accuracy": top_k_accuracy(conditioned, breed_truth, TOP_K_BREEDS),
        "top1_accuracy_all_breeds": top_k_accuracy(unconditioned, breed_truth, 1),
        "top3_accuracy_all_breeds": top_k_accuracy(unconditioned, breed_truth, TOP_K_BREEDS),
        "log_loss_all_breeds": log_loss(unconditioned, breed_truth),
        "weighted_f1": weighted_f1(breed_confusion),
        "confusion": breed_confusion,
        "per_class": [
            {"name": b.name, "display_name": b.display_name, "species": b.species, "precision": precision[b.index],
             "recall": recall[b.index], "f1": f1[b.index], "support": int(breed_confusion[b.index].sum())}
            for b in BREEDS
        ],
        "most_confused": [
            {"true": BREEDS[t].name, "predicted": BREEDS[p].name, "count": c}
            for t, p, c in most_confused_pairs(breed_confusion)
        ],
    }
    return species, breed


def calibration_metrics(outcomes: Sequence[ImageOutcome]) -> dict:
    """The ``calibration`` section: for the species confidence and the top breed's confidence as
    ``predict`` shows them, their expected calibration error, mean confidence, accuracy and
    reliability bins (:func:`~petnet.evaluation.metrics.reliability_bins`)."""

    def head(confidences: list[float], correct: list[bool], shown: str) -> dict:
        confidence, right = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=bool)
        return {
            "shown": shown,
            "ece": expected_calibration_error(confidence, right, CALIBRATION_BINS),
            "mean_confidence": float(confidence.mean()) if len(confidence) else math.nan,
            "accuracy": float(right.mean()) if len(right) else math.nan,
            "bins": reliability_bins(confidence, right, CALIBRATION_BINS),
        }

    species = head([float(o.species_probabilities[o.predicted_species]) for o in outcomes],
                   [o.predicted_species == o.record.species_index for o in outcomes],
                   "probability of the species named (its breeds' summed probability)")  # fmt: skip
    top_breed = head([o.top_breed_probability for o in outcomes],
                     [o.predicted_breeds[0] == o.record.breed_index for o in outcomes],
                     "probability of the first breed named, out of all breeds")  # fmt: skip
    return {"bins": CALIBRATION_BINS, "species": species, "top_breed": top_breed}


def segmentation_metrics(outcomes: Sequence[ImageOutcome]) -> dict:
    """The ``segmentation`` section, from the pixel confusion summed over images with a trimap."""
    with_trimap = [o for o in outcomes if o.pixel_confusion is not None]
    confusion = sum((o.pixel_confusion for o in with_trimap), np.zeros((len(MASK_CLASSES),) * 2, dtype=np.int64))
    sizes = sorted({o.mask.shape for o in with_trimap})
    iou, dice = iou_per_class(confusion), dice_per_class(confusion)
    defined = confusion.sum() > 0
    return {
        "resolution": ", ".join(f"{w}x{h}" for h, w in sizes) + " (trimap)" if sizes else "none (no trimaps)",
        "per_class_iou": dict(zip(MASK_CLASSES, iou)),
        "mean_iou": float(np.nanmean(iou)) if defined else math.nan,
        "min_iou": float(np.nanmin(iou)) if defined else math.nan,
        "per_class_dice": dict(zip(MASK_CLASSES, dice)),
        "mean_dice": float(np.nanmean(dice)) if defined else math.nan,
        "pixel_accuracy": accuracy(confusion),
        "binary_pet_iou": binary_pet_iou(confusion, MASK_CLASSES.index("background")),
        "confusion": confusion,
    }


def build_report(outcomes: Sequence[ImageOutcome], *, split: str, description: str, data_root: Path,
                 model: PetNet, model_source: str, cases: dict[str, list[dict]], skipped: dict[str, str],
                 detection: dict | None = None) -> dict:  # fmt: skip
    """Assemble the schema-v1 report (see ``docs/report_schema.md``); ``detection`` only when non-pet
    photos were scored."""
    species, breed = classification_metrics(outcomes)
    config = model.config
    report = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "petnet_version": __version__,
        "split": split,
        "split_description": description,
        "data_root": str(data_root),
        "model": {
            "source": model_source,
            "backbone": model.config.backbone,
            "image_size": model.config.image_size,
            "mirror_averaged_mask": model.config.mirror_averaged_mask,
            "closer_look": model.config.closer_look,
            "runtime": model.runtime,
            "precision": model.runtime.split()[-1],
            "pet_threshold": model.config.pet_threshold,
            "animal_check_threshold": model.config.animal_check_threshold,
            "breed_temperature": model.config.breed_temperature,
            "center_threshold": model.config.center_threshold if model.config.center_head else None,
            "center_off_mask_threshold": model.config.center_off_mask_threshold if model.config.center_head else None,
        },
        "num_images": len(outcomes),
        "num_images_with_trimap": sum(o.pixel_confusion is not None for o in outcomes),
        "skipped_images": skipped,
        "labels": {
            "species": list(config.species_names),
            "breeds": list(config.breed_names),
            "breed_display_names": [display_name(name) for name in config.breed_names],
            "breed_species": list(config.breed_species),
            "mask_classes": list(config.mask_classes),
        },
        "species": species,
        "breed": breed,
        "segmentation": {**segmentation_metrics(outcomes), "lowest_iou": cases["lowest_iou"]},
        "calibration": calibration_metrics(outcomes),
        "worst_cases": cases["worst_cases"],
        "baseline": dict(BASELINE),
    }
    if detection is not None:
        report["detection"] = detection
    return report


def summary_table(report: dict) -> str:
    """Plain-text comparison of the headline figures with the original PetNet."""
    lines = [report["split_description"], f"{'metric':<26} {'PetNet now':>10} {'original':>10}"]
    for metric in HEADLINE_METRICS:
        ours, theirs = metric.value(report), metric.baseline(report.get("baseline"))
        if ours is not None or metric.section != "detection":
            lines.append(f"{metric.label:<26} {metric.format(ours):>10} {metric.format(theirs) if theirs else '-':>10}")
    two = (report.get("detection") or {}).get("two_animal")
    if two:
        lines.append(f"two-animal composites: count right {two['count_right']}/{two['num_images']}, "
                     f"both species right {two['both_species_right']}/{two['num_images']}")  # fmt: skip
    single = (report.get("detection") or {}).get("single_pets_one_answer")
    if single is not None:
        lines.append(f"single-pet photos given one answer: {single:.1%}")
    lines += scene_lines(report.get("detection") or {})
    return "\n".join(lines)


def scene_lines(detection: dict) -> list[str]:
    """The summary's lines on other animals and pets in scenes (none for reports without them)."""
    lines = []
    for key, label in (("other_animals", "other animals accepted as pets"), ("other_non_pets", "other non-pets accepted")):
        if key in detection:
            part = detection[key]
            lines.append(f"{label}: {part['accepted']}/{part['num_images']}")
    scenes = detection.get("scenes") or {}
    groups = [(f", {kind.replace('_', '-')},", bands) for kind, bands in scenes.items()]
    groups += [(f" {background}, both kinds,", bands) for background, bands in scenes_by_background(scenes).items()]
    for label, bands in groups:
        cells = ", ".join(f"{band} {c['found_one']}/{c['num_images']} (species {c['species_right']})" for band, c in bands.items())
        lines.append(f"pets in scenes{label} found as one animal: {cells}")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="petnet-evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=EVALUATION_SPLITS, default="test")
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR), help="save_pretrained folder or Hub repo id (default: bundled)")
    parser.add_argument("--data-root", type=Path, default=OXFORD_PET_ROOT)
    parser.add_argument("--out", type=Path, help="report file (default: assets/reports/<split>.json)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--worst", type=int, default=24, help="how many worst cases to keep (default 24)")
    parser.add_argument("--lowest-iou", type=int, default=12, help="how many lowest-IoU masks to keep (default 12)")
    parser.add_argument("--non-pet-root", default=str(NON_PET_ROOT),
                        help="photos with no cat or dog for the detection figures ('' to skip them)")
    parser.add_argument("--composites", type=int, default=100,
                        help="two-animal composites per layout built from the split (0 to skip them)")
    parser.add_argument("--scenes", type=int, default=SCENES_PER_CELL,
                        help=f"pets in scenes per kind (cut-out, zoomed-out) and size band (default {SCENES_PER_CELL}; 0 to skip them)")
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (smoke tests)")
    parser.add_argument(
        "--single-view-mask", action="store_true",
        help="predict masks from the photo alone, not averaged with its mirror image (config.mirror_averaged_mask)",
    )
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="what runs the network (default $PETNET_RUNTIME, else auto: ONNX Runtime on a CPU where installed)")
    parser.add_argument("--precision", choices=ALL_PRECISIONS, default="auto",
                        help="what the network computes in (auto: the ONNX graphs config.json names; on PyTorch "
                             "bfloat16 on CPUs that have it in hardware)")  # fmt: skip
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="as in training (--split val)")
    parser.add_argument("--seed", type=int, default=defaults.split_seed, help="the validation split's, training's --split-seed (--split val); also seeds the composites")
    return parser.parse_args(argv)


def evaluate_detection(model: PetNet, outcomes: Sequence[ImageOutcome], records: Sequence[PetRecord],
                       args: argparse.Namespace) -> dict:  # fmt: skip
    """The ``detection`` section: the split's pets against the non-pet part meant for this split
    (predicted through ``predict``, as users get them), and two-animal composites of the split."""
    non_pet_root = Path(args.non_pet_root)
    non_pets = non_pet_split(read_non_pets(non_pet_root), NON_PET_PART[args.split])
    non_pet_predictions = model.predict_batch([record.image_path for record in non_pets])
    detection = detection_metrics([o.pet_score for o in outcomes], [p.pet_score for p in non_pet_predictions],
                                  model.config.pet_threshold, [o.has_pet for o in outcomes],
                                  [p.has_pet for p in non_pet_predictions])  # fmt: skip
    detection["non_pet_part"] = f"{NON_PET_PART[args.split]} part of {non_pet_root.name}/ ({len(non_pets)} photos)"
    animals = [is_other_animal(record) for record in non_pets]
    for key, wanted in (("other_animals", True), ("other_non_pets", False)):
        accepted = [p.has_pet for p, animal in zip(non_pet_predictions, animals, strict=True) if animal == wanted]
        detection[key] = {"num_images": len(accepted), "accepted": sum(accepted)}
    if args.scenes:
        scenes = build_scenes(records, non_pets, args.scenes, seed=args.seed + SCENE_SEED_OFFSET)
        predictions = model.predict_batch([scene.image for scene in tqdm(scenes, desc="pets in scenes")])
        detection["scenes"] = scene_counts(scenes, predictions)
    detection["single_pets_one_answer"] = float(np.mean([o.animals_found == 1 for o in outcomes])) if outcomes else math.nan
    if args.composites:
        composites = build_composites(records, args.composites, seed=args.seed)
        predictions = model.predict_batch([c.image for c in tqdm(composites, desc="two-animal composites")])
        detection["two_animal"] = two_animal_counts(composites, predictions)
    return detection


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    out = args.out or report_path(args.split)
    records = split_records(args.data_root, args.split, args.val_fraction, args.seed)
    if args.limit:
        records = records[: args.limit]
    description = split_description(args.split, records, args.val_fraction, args.seed)
    if args.limit:
        description += f", limited to the first {len(records)} by --limit"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(args.model, device=device, runtime=args.runtime, precision=args.precision)
    if args.single_view_mask:
        model.config.mirror_averaged_mask = False
    check_labels(model)
    outcomes, skipped = run_model(model, records, args.batch_size, args.num_workers)
    if skipped:
        log.warning("Skipped %d unreadable images: %s", len(skipped), sorted(skipped))
    cases = save_cases({"worst_cases": worst_first(outcomes)[: args.worst],
                        "lowest_iou": lowest_iou_first(outcomes)[: args.lowest_iou]}, args.data_root, out)  # fmt: skip
    detection = evaluate_detection(model, outcomes, records, args) if args.non_pet_root else None
    report = build_report(outcomes, split=args.split, description=description, data_root=args.data_root,
                          model=model, model_source=display_source(args.model), cases=cases, skipped=skipped,
                          detection=detection)  # fmt: skip
    write_report(report, out)
    print(summary_table(report))
    print(f"Report written to {out}")
    return report


if __name__ == "__main__":
    main()
