"""Generate schema-v1 evaluation reports (plus masks and a training log) for dashboard tests and screenshots.

Numbers are derived from random but plausible confusion matrices with :mod:`petnet.evaluation.metrics`, so a
generated report is internally consistent (accuracies match confusions) like a real one.
Run as a script to write a realistic report over real images for a dashboard screenshot:
``python tests/report_factory.py OUT_DIR [DATA_ROOT]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from petnet.evaluation.metrics import (
    accuracy,
    dice_per_class,
    iou_per_class,
    most_confused_pairs,
    precision_recall_f1,
    weighted_f1,
)
from petnet.evaluation.report import BASELINE, SCHEMA_VERSION, TRAINING_LOG_NAME, TRAINING_RUNS_DIR, write_report
from petnet.labels import (
    BREED_NAMES,
    BREED_SPECIES,
    MASK_CLASSES,
    SPECIES,
    display_name,
)

TRAINING_LOG_COLUMNS = (
    "epoch",
    "lr",
    "frozen_backbone",
    "train_total",
    "train_species",
    "train_breed",
    "train_segmentation",
    "train_dice",
    "val_total",
    "val_species",
    "val_breed",
    "val_segmentation",
    "val_dice",
    "val_species_accuracy",
    "val_breed_top1",
    "val_breed_top3",
    "val_mean_iou",
    "val_min_iou",
    "seconds",
)


def breed_confusion(rng: np.random.Generator, per_breed: int) -> np.ndarray:
    """Mostly-diagonal 37x37 counts with mistakes concentrated inside each species."""
    n = len(BREED_NAMES)
    confusion = np.zeros((n, n), dtype=np.int64)
    species = np.array(BREED_SPECIES)
    for row in range(n):
        same = np.flatnonzero(species == species[row])
        weights = np.where(np.isin(np.arange(n), same), 1.0, 0.05) * rng.random(n) ** 3
        weights[row] = 0
        mistakes = rng.binomial(per_breed, rng.uniform(0.02, 0.3))
        confusion[row] = rng.multinomial(mistakes, weights / weights.sum())
        confusion[row, row] = per_breed - mistakes
    return confusion


def species_confusion(breed: np.ndarray) -> np.ndarray:
    """Species confusion implied by a breed confusion (a breed mistake across species is a species mistake)."""
    membership = np.array([[s == species for species in SPECIES] for s in BREED_SPECIES], dtype=np.int64)
    return membership.T @ breed @ membership


def synthetic_case(data_root: Path, name: str, seed: int, size: int = 96) -> None:
    """A tiny photo + trimap in the official layout (ellipse 'pet' on noise)."""
    rng = np.random.default_rng(seed)
    (data_root / "images").mkdir(parents=True, exist_ok=True)
    (data_root / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(rng.integers(0, 90, (size, size, 3), dtype=np.uint8))
    box = [size * 0.2, size * 0.2, size * 0.8, size * 0.85]
    ImageDraw.Draw(image).ellipse(box, fill=(220, 160, 90))
    trimap = Image.new("L", (size, size), 2)
    ImageDraw.Draw(trimap).ellipse(box, fill=3)
    ImageDraw.Draw(trimap).ellipse([box[0] + 3, box[1] + 3, box[2] - 3, box[3] - 3], fill=1)
    image.save(data_root / "images" / f"{name}.jpg")
    trimap.save(data_root / "annotations" / "trimaps" / f"{name}.png")


def degraded_mask(trimap_path: Path, rng: np.random.Generator) -> np.ndarray:
    """A plausible wrong prediction: the true 0/1/2 mask shifted sideways with a noisy blob."""
    truth = np.asarray(Image.open(trimap_path).convert("L"), dtype=np.uint8) - 1
    shifted = np.roll(truth, int(rng.integers(5, 25)), axis=1)
    height, width = shifted.shape
    y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
    shifted[y : y + height // 4, x : x + width // 4] = 0
    return shifted


def write_training_log(path: Path, epochs: int = 12, seed: int = 0) -> Path:
    """A training_log.csv with the columns petnet.training.train writes and smoothly improving values."""
    rng = np.random.default_rng(seed)
    lines = [",".join(TRAINING_LOG_COLUMNS)]
    for epoch in range(epochs):
        decay = np.exp(-epoch / 4)
        noise = lambda: float(rng.normal(0, 0.01))
        losses = {
            "species": 0.05 + 0.6 * decay,
            "breed": 0.35 + 3.2 * decay,
            "segmentation": 0.3 + 0.7 * decay,
            "dice": 0.15 + 0.4 * decay,
        }
        train = {k: v * 0.9 + noise() for k, v in losses.items()}
        val = {k: v + 0.05 + noise() for k, v in losses.items()}
        row = {
            "epoch": epoch,
            "lr": 1e-3 * (0.5 + 0.5 * np.cos(np.pi * epoch / epochs)),
            "frozen_backbone": int(epoch < 2),
            **{f"train_{k}": v for k, v in train.items()},
            "train_total": sum(train.values()),
            **{f"val_{k}": v for k, v in val.items()},
            "val_total": sum(val.values()),
            "val_species_accuracy": 0.99 - 0.3 * decay,
            "val_breed_top1": 0.88 - 0.7 * decay,
            "val_breed_top3": 0.97 - 0.5 * decay,
            "val_mean_iou": 0.80 - 0.35 * decay,
            "val_min_iou": 0.62 - 0.4 * decay,
            "seconds": 300 + 10 * rng.random(),
        }
        lines.append(
            ",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]) for c in TRAINING_LOG_COLUMNS)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def make_report(
    directory: Path,
    data_root: Path,
    *,
    split: str = "test",
    seed: int = 0,
    per_breed: int = 20,
    case_names: list[str] | None = None,
    with_log: bool = True,
) -> Path:
    """Write ``<directory>/<split>.json`` (+ ``<split>_masks/``, ``runs/sample-run/training_log.csv``); return the report path.

    ``case_names`` are images with trimaps under ``data_root`` to list as worst cases; without them,
    four synthetic images are created under ``data_root``.
    """
    rng = np.random.default_rng(seed)
    if case_names is None:
        case_names = [f"{BREED_NAMES[i]}_{n}" for n, i in enumerate((0, 4, 25, 33), start=9001)]  # not in the real data
        for n, name in enumerate(case_names):
            synthetic_case(data_root, name, seed=seed * 100 + n)
    breed = breed_confusion(rng, per_breed)
    species = species_confusion(breed)
    precision, recall, f1 = precision_recall_f1(breed)
    pixels = np.array(
        [
            [8_000_000, 500_000, 700_000],
            [400_000, 15_000_000, 600_000],
            [900_000, 700_000, 2_200_000],
        ]
    )
    pixels = (pixels * rng.uniform(0.9, 1.1, pixels.shape)).astype(np.int64)
    iou, dice = iou_per_class(pixels), dice_per_class(pixels)
    top1 = accuracy(breed)
    mask_dir = directory / f"{split}_masks"
    mask_dir.mkdir(parents=True, exist_ok=True)
    worst_cases = []
    for n, name in enumerate(case_names):
        true_breed = name.rsplit("_", 1)[0]
        trimap = data_root / "annotations" / "trimaps" / f"{name}.png"
        Image.fromarray(degraded_mask(trimap, rng)).save(mask_dir / f"{name}.png")
        same_species = [
            b
            for b, s in zip(BREED_NAMES, BREED_SPECIES, strict=True)
            if s == BREED_SPECIES[BREED_NAMES.index(true_breed)]
        ]
        guesses = [b for b in rng.permutation(same_species) if b != true_breed][:2]
        worst_cases.append(
            {
                "name": name,
                "image": f"images/{name}.jpg",
                "trimap": f"annotations/trimaps/{name}.png",
                "predicted_mask": f"{split}_masks/{name}.png",
                "true_species": BREED_SPECIES[BREED_NAMES.index(true_breed)],
                "predicted_species": BREED_SPECIES[BREED_NAMES.index(true_breed)],
                "species_confidence": 0.97,
                "true_breed": true_breed,
                "predicted_breeds": [guesses[0], true_breed, guesses[1]],
                "true_breed_probability": round(0.1 + 0.05 * n, 3),
                "iou": round(0.35 + 0.04 * n, 3),
                "reasons": ["breed wrong", "low IoU"],
            }
        )
    report = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": "2026-11-22T22:00:00Z",
        "petnet_version": "0.1.0",
        "split": split,
        "split_description": f"generated sample report, not model results: {int(breed.sum()):,} images (405 with trimaps)",
        "data_root": str(data_root),
        "model": {
            "source": "petnet/weights",
            "backbone": "tf_efficientnet_lite0",
            "image_size": 224,
        },
        "num_images": int(breed.sum()),
        "num_images_with_trimap": 405,
        "labels": {
            "species": list(SPECIES),
            "breeds": list(BREED_NAMES),
            "breed_display_names": [display_name(b) for b in BREED_NAMES],
            "breed_species": list(BREED_SPECIES),
            "mask_classes": list(MASK_CLASSES),
        },
        "species": {"accuracy": accuracy(species), "confusion": species},
        "breed": {
            "top1_accuracy": top1,
            "top3_accuracy": min(1.0, top1 + 0.08),
            "weighted_f1": weighted_f1(breed),
            "confusion": breed,
            "per_class": [
                {
                    "name": b,
                    "display_name": display_name(b),
                    "species": s,
                    "precision": precision[i],
                    "recall": recall[i],
                    "f1": f1[i],
                    "support": int(breed[i].sum()),
                }
                for i, (b, s) in enumerate(zip(BREED_NAMES, BREED_SPECIES, strict=True))
            ],
            "most_confused": [
                {"true": BREED_NAMES[t], "predicted": BREED_NAMES[p], "count": c}
                for t, p, c in most_confused_pairs(breed, top=10)
            ],
        },
        "segmentation": {
            "resolution": "256x256 (trimap)",
            "per_class_iou": dict(zip(MASK_CLASSES, iou, strict=True)),
            "mean_iou": float(iou.mean()),
            "min_iou": float(iou.min()),
            "per_class_dice": dict(zip(MASK_CLASSES, dice, strict=True)),
            "mean_dice": float(dice.mean()),
            "pixel_accuracy": accuracy(pixels),
            "confusion": pixels,
        },
        "worst_cases": worst_cases,
        "baseline": dict(BASELINE),
    }
    if with_log:
        log = directory / TRAINING_RUNS_DIR / "sample-run" / TRAINING_LOG_NAME
        log.parent.mkdir(parents=True, exist_ok=True)
        write_training_log(log, seed=seed)
    return write_report(report, directory / f"{split}.json")


def real_case_names(data_root: Path, count: int = 8) -> list[str]:
    """The first ``count`` test images that have a trimap (for a realistic screenshot report)."""
    names = [
        line.split()[0] for line in (data_root / "annotations" / "test.txt").read_text().splitlines() if line.strip()
    ]
    with_trimap = [n for n in names if (data_root / "annotations" / "trimaps" / f"{n}.png").is_file()]
    return with_trimap[:: max(1, len(with_trimap) // count)][:count]


if __name__ == "__main__":
    out = Path(sys.argv[1])
    root = (
        Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[2] / "shared/data/oxford-iiit-pet"
    )
    print(make_report(out, root.resolve(), per_breed=66, case_names=real_case_names(root), seed=7))
