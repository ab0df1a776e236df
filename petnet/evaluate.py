"""Evaluate a PetNet model on a dataset split and write the v1 report: ``python -m petnet.evaluate --split test``.

The evaluator only runs the model and accumulates per-image outcomes and confusion matrices; every
number in the report comes from :mod:`petnet.metrics`. Breed metrics score what :meth:`PetNet.predict`
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
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from petnet import __version__
from petnet.data import (
    OxfordPetDataset,
    PetRecord,
    collate_skipping_failures,
    read_split,
    read_trimap,
    train_val_split,
)
from petnet.hub import BUNDLED_MODEL_DIR, display_source, load_model
from petnet.inference import mask_from_logits, species_conditioned_topk
from petnet.labels import BREEDS, MASK_CLASSES, SPECIES
from petnet.metrics import (
    accuracy,
    binary_pet_iou,
    confusion_matrix,
    dice_per_class,
    iou_per_class,
    most_confused_pairs,
    precision_recall_f1,
    top_k_accuracy,
    weighted_f1,
)
from petnet.model import PetNet
from petnet.paths import OXFORD_PET_ROOT
from petnet.report import (
    BASELINE,
    EVALUATION_SPLITS,
    SCHEMA_VERSION,
    report_path,
    write_report,
)
from petnet.config import TrainConfig
from petnet.transforms import eval_transform

log = logging.getLogger("petnet.evaluate")

OFFICIAL_TEST_TOTAL = 3669
"""Images in the official Oxford-IIIT Pet test split; this copy withholds part of them."""
LOW_IOU = 0.5
"""Per-image mean IoU below which a worst case is flagged "low IoU"."""
TOP_K = 3


@dataclass(frozen=True)
class ImageOutcome:
    """What the model did on one image (``pixel_confusion`` and ``mask`` only with a trimap)."""

    record: PetRecord
    species_probabilities: np.ndarray
    breed_logits: np.ndarray
    conditioned_breed_logits: np.ndarray
    predicted_breeds: tuple[int, ...]
    pixel_confusion: np.ndarray | None
    mask: np.ndarray | None

    @property
    def predicted_species(self) -> int:
        return int(self.species_probabilities.argmax())

    @property
    def true_breed_probability(self) -> float:
        logits = self.breed_logits - self.breed_logits.max()
        return float(np.exp(logits[self.record.breed_index]) / np.exp(logits).sum())

    @property
    def iou(self) -> float:
        """Mean IoU over the classes present in this image's truth or prediction (NaN without a trimap)."""
        return float(np.nanmean(iou_per_class(self.pixel_confusion))) if self.pixel_confusion is not None else math.nan


def split_records(data_root: str | Path, split: str, val_fraction: float, seed: int) -> list[PetRecord]:
    """Records of ``split``; ``val`` is re-carved from ``trainval`` exactly as training did."""
    if split == "val":
        return train_val_split(read_split(data_root, "trainval"), val_fraction, seed)[1]
    return read_split(data_root, split)


def split_description(split: str, records: Sequence[PetRecord], val_fraction: float, seed: int) -> str:
    """E.g. ``official test split, 2,430 of 3,669 images (405 with trimaps)``."""
    counts = f"{len(records):,} images ({sum(r.has_trimap for r in records):,} with trimaps)"
    if split == "test":
        return f"official test split, {len(records):,} of {OFFICIAL_TEST_TOTAL:,} " + counts.split(" ", 1)[1]
    if split == "val":
        return f"validation split carved from trainval (val_fraction {val_fraction}, seed {seed}), {counts}"
    return f"official trainval split (the training data), {counts}"


@torch.inference_mode()
def run_model(model: PetNet, records: Sequence[PetRecord], batch_size: int = 32, num_workers: int = 0) -> tuple[list[ImageOutcome], dict[str, str]]:
    """Predict every record with the evaluation preprocessing; returns outcomes and unreadable images."""
    config = model.config
    dataset = OxfordPetDataset(records, eval_transform(config))
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_skipping_failures)
    breed_species = model.breed_species_index.cpu()
    outcomes: list[ImageOutcome] = []
    model.eval()
    for batch in tqdm(loader, desc="evaluating", unit="batch"):
        if batch is None:
            continue
        output = model.infer(batch["image"].to(model.device))
        species_probabilities = output.species_logits.float().softmax(dim=1).cpu()
        breed_logits = output.breed_logits.float().cpu()
        species_index = species_probabilities.argmax(dim=1)
        conditioned = breed_logits.masked_fill(breed_species[None, :] != species_index[:, None], float("-inf"))
        top_breeds, _ = species_conditioned_topk(breed_logits, species_index, breed_species, TOP_K)
        mask_logits = output.mask_logits.float().cpu()
        for i, index in enumerate(batch["index"].tolist()):
            record = dataset.records[index]
            pixel_confusion = mask = None
            if record.trimap_path is not None:
                trimap = read_trimap(record.trimap_path)
                mask = mask_from_logits(mask_logits[i], trimap.shape).numpy()
                pixel_confusion = confusion_matrix(trimap, mask, len(MASK_CLASSES))
            outcomes.append(
                ImageOutcome(
                    record=record,
                    species_probabilities=species_probabilities[i].numpy(),
                    breed_logits=breed_logits[i].numpy(),
                    conditioned_breed_logits=conditioned[i].numpy(),
                    predicted_breeds=tuple(top_breeds[i].tolist()),
                    pixel_confusion=pixel_confusion,
                    mask=mask,
                )
            )
    return outcomes, dict(dataset.failures)


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
        "species_confidence": float(outcome.species_probabilities.max()),
        "true_breed": BREEDS[record.breed_index].name,
        "predicted_breeds": [BREEDS[i].name for i in outcome.predicted_breeds],
        "true_breed_probability": outcome.true_breed_probability,
        "iou": outcome.iou,
        "reasons": failure_reasons(outcome),
    }


def save_worst_cases(outcomes: Sequence[ImageOutcome], count: int, data_root: Path, report_file: Path) -> list[dict]:
    """Entries for the ``count`` worst images; their predicted masks go to ``<report stem>_masks/``."""
    mask_dir = report_file.parent / f"{report_file.stem}_masks"
    mask_dir.mkdir(parents=True, exist_ok=True)
    for stale in mask_dir.glob("*.png"):
        stale.unlink()
    entries = []
    for outcome in worst_first(outcomes)[:count]:
        mask_path = None
        if outcome.mask is not None:
            Image.fromarray(outcome.mask.astype(np.uint8)).save(mask_dir / f"{outcome.record.name}.png")
            mask_path = f"{mask_dir.name}/{outcome.record.name}.png"
        entries.append(worst_case_entry(outcome, data_root, mask_path))
    return entries


def classification_metrics(outcomes: Sequence[ImageOutcome]) -> tuple[dict, dict]:
    """The ``species`` and ``breed`` report sections."""
    species_truth = np.array([o.record.species_index for o in outcomes], dtype=np.int64)
    breed_truth = np.array([o.record.breed_index for o in outcomes], dtype=np.int64)
    species_confusion = confusion_matrix(species_truth, [o.predicted_species for o in outcomes], len(SPECIES))
    breed_confusion = confusion_matrix(breed_truth, [o.predicted_breeds[0] for o in outcomes], len(BREEDS))
    conditioned = np.stack([o.conditioned_breed_logits for o in outcomes]) if outcomes else np.zeros((0, len(BREEDS)))
    unconditioned = np.stack([o.breed_logits for o in outcomes]) if outcomes else np.zeros((0, len(BREEDS)))
    precision, recall, f1 = precision_recall_f1(breed_confusion)
    species = {"accuracy": accuracy(species_confusion), "confusion": species_confusion}
    breed = {
        "ranking": "breeds of the predicted species only, as PetNet.predict returns them",
        "top1_accuracy": top_k_accuracy(conditioned, breed_truth, 1),
        "top3_accuracy": top_k_accuracy(conditioned, breed_truth, TOP_K),
        "top1_accuracy_all_breeds": top_k_accuracy(unconditioned, breed_truth, 1),
        "top3_accuracy_all_breeds": top_k_accuracy(unconditioned, breed_truth, TOP_K),
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
                 model: PetNet, model_source: str, worst_cases: list[dict], skipped: dict[str, str]) -> dict:  # fmt: skip
    """Assemble the schema-v1 report (see ``docs/report_schema.md``)."""
    species, breed = classification_metrics(outcomes)
    return {
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
        },
        "num_images": len(outcomes),
        "num_images_with_trimap": sum(o.pixel_confusion is not None for o in outcomes),
        "skipped_images": skipped,
        "labels": {
            "species": list(SPECIES),
            "breeds": [b.name for b in BREEDS],
            "breed_display_names": [b.display_name for b in BREEDS],
            "breed_species": [b.species for b in BREEDS],
            "mask_classes": list(MASK_CLASSES),
        },
        "species": species,
        "breed": breed,
        "segmentation": segmentation_metrics(outcomes),
        "worst_cases": worst_cases,
        "baseline": dict(BASELINE),
    }


def summary_table(report: dict) -> str:
    """Plain-text comparison of the headline figures with the original PetNet."""
    rows = [
        ("species accuracy", report["species"]["accuracy"], BASELINE["species_accuracy"]),
        ("breed top-1 accuracy", report["breed"]["top1_accuracy"], None),
        ("breed top-3 accuracy", report["breed"]["top3_accuracy"], BASELINE["breed_top3_accuracy"]),
        ("breed weighted F1", report["breed"]["weighted_f1"], None),
        ("mask mean IoU", report["segmentation"]["mean_iou"], BASELINE["mean_iou"]),
        ("mask min IoU", report["segmentation"]["min_iou"], BASELINE["min_iou"]),
        ("mask pixel accuracy", report["segmentation"]["pixel_accuracy"], None),
    ]

    def cell(value: float | None) -> str:
        return "-" if value is None or math.isnan(value) else f"{value:.3f}"

    lines = [report["split_description"], f"{'metric':<22} {'PetNet now':>10} {'original':>10}"]
    lines += [f"{name:<22} {cell(ours):>10} {cell(theirs):>10}" for name, ours, theirs in rows]
    return "\n".join(lines)


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
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (smoke tests)")
    parser.add_argument(
        "--single-view-mask", action="store_true",
        help="predict masks from the photo alone, not averaged with its mirror image (config.mirror_averaged_mask)",
    )
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="as in training (--split val)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="as in training (--split val)")
    return parser.parse_args(argv)


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
    model = load_model(args.model, device="cuda" if torch.cuda.is_available() else "cpu")
    if args.single_view_mask:
        model.config.mirror_averaged_mask = False
    outcomes, skipped = run_model(model, records, args.batch_size, args.num_workers)
    if skipped:
        log.warning("Skipped %d unreadable images: %s", len(skipped), sorted(skipped))
    worst = save_worst_cases(outcomes, args.worst, args.data_root, out)
    report = build_report(outcomes, split=args.split, description=description, data_root=args.data_root,
                          model=model, model_source=display_source(args.model), worst_cases=worst, skipped=skipped)  # fmt: skip
    write_report(report, out)
    print(summary_table(report))
    print(f"Report written to {out}")
    return report


if __name__ == "__main__":
    main()
