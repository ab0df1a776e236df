"""``petnet-predict``: species, breeds and mask overlays for one image or a folder of images.

Writes ``<stem>_overlay.png`` per image and ``results.csv`` (``results.json`` with ``--json``) into
``--out``. Unreadable files are reported and skipped; the exit status is non-zero only when no
image at all could be predicted.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from petnet.errors import InvalidImageError, PetNetError
from petnet.hub import load_model
from petnet.images import load_image
from petnet.inference.decoding import TOP_K_BREEDS
from petnet.inference.pipeline import PREDICT_BATCH_SIZE
from petnet.inference.results import Prediction
from petnet.inference.visualize import overlay_mask
from petnet.models.network import PetNet

log = logging.getLogger("petnet.predict")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif"})
"""Files picked up from a folder (a file named explicitly is tried whatever its suffix)."""
CSV_COLUMNS = (
    "file", "has_pet", "pet_score", "num_pets", "species", "species_confidence",
    *(f"breed_{i}{part}" for i in range(1, TOP_K_BREEDS + 1) for part in ("", "_confidence")),
    "pet_fraction", "pets", "overlay", "error",
)  # fmt: skip
"""One row per file; species and breeds (of the largest animal) stay empty when there is no pet, and
``pets`` holds every animal as JSON (species, breeds, confidences, box)."""


@dataclass
class ImageResult:
    """Outcome for one input file: a prediction and its overlay, or the reason it failed."""

    path: Path
    prediction: Prediction | None = None
    overlay: Path | None = None
    error: str | None = None

    def csv_row(self) -> dict[str, object]:
        row: dict[str, object] = {"file": str(self.path), "error": self.error or ""}
        if self.prediction is not None:
            summary = self.prediction.to_dict()
            row.update(
                has_pet=summary["has_pet"],
                pet_score=f"{summary['pet_score']:.4f}",
                num_pets=len(summary["pets"]),
                pet_fraction=f"{summary['pet_fraction']:.4f}",
                pets=json.dumps(summary["pets"]),
                overlay=str(self.overlay),
            )
            if not summary["has_pet"]:
                return row
            row.update(species=summary["species"], species_confidence=f"{summary['species_confidence']:.4f}")
            for i, (breed, confidence) in enumerate(zip(summary["breed"], summary["breed_confidences"]), 1):
                row[f"breed_{i}"] = breed
                row[f"breed_{i}_confidence"] = f"{confidence:.4f}"
        return row

    def json_record(self) -> dict[str, object]:
        record: dict[str, object] = {"file": str(self.path)}
        if self.prediction is not None:
            record.update(self.prediction.to_dict(), overlay=str(self.overlay))
        else:
            record["error"] = self.error
        return record


def find_images(inputs: Sequence[Path]) -> list[Path]:
    """Explicit files as given, plus the image files (by suffix) directly inside given folders."""
    found: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return found


def _batches(paths: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


def _overlay_path(out_dir: Path, source: Path, taken: set[str]) -> Path:
    """``<stem>_overlay.png``, made unique when two inputs share a stem (``a.jpg``, ``a.png``)."""
    name, n = f"{source.stem}_overlay.png", 1
    while name in taken:
        n += 1
        name = f"{source.stem}_{n}_overlay.png"
    taken.add(name)
    return out_dir / name


def predict_files(
    model: PetNet, paths: Sequence[Path], out_dir: Path, batch_size: int = PREDICT_BATCH_SIZE, alpha: float = 0.5
) -> list[ImageResult]:
    """Predict every file, writing an overlay PNG per readable image into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[ImageResult] = []
    taken: set[str] = set()
    with tqdm(total=len(paths), unit="image", disable=len(paths) < 2, file=sys.stderr) as progress:
        for batch in _batches(list(paths), batch_size):
            loaded: list[tuple[ImageResult, Image.Image]] = []
            for path in batch:
                result = ImageResult(path)
                results.append(result)
                try:
                    loaded.append((result, load_image(path)))
                except InvalidImageError as error:
                    result.error = str(error)
                    tqdm.write(f"Skipping {path}: {error}", file=sys.stderr)
            predictions = model.predict_batch([image for _, image in loaded], batch_size=batch_size)
            for (result, image), prediction in zip(loaded, predictions):
                result.prediction = prediction
                result.overlay = _overlay_path(out_dir, result.path, taken)
                overlay_mask(image, prediction.full_mask, alpha).save(result.overlay)
            progress.update(len(batch))
    return results


def write_csv(results: Sequence[ImageResult], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(result.csv_row() for result in results)


def write_json(results: Sequence[ImageResult], path: Path, weights_source: str) -> None:
    document = {"model": weights_source, "results": [result.json_record() for result in results]}
    path.write_text(json.dumps(document, indent=2) + "\n")


def _describe(result: ImageResult) -> str:
    prediction = result.prediction
    if not prediction.has_pet:
        return f"{result.path}: no cat or dog found (pet score {prediction.pet_score:.0%})"
    animals = []
    for pet in prediction.pets:
        breeds = ", ".join(f"{b} {c:.0%}" for b, c in zip(pet.breed, pet.breed_confidences))
        animals.append(f"{pet.species} ({pet.species_confidence:.0%}); {breeds}")
    return f"{result.path}: " + " | ".join(animals)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="petnet-predict", description="Predict species, top-3 breeds and a pet mask for images."
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE_OR_DIR", help="image files and/or folders")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="also write results.json")
    parser.add_argument(
        "--model", default=None, metavar="PATH_OR_REPO",
        help="model directory or Hugging Face repo id (default: $PETNET_REPO, else the bundled weights)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=PREDICT_BATCH_SIZE, help="images per batch (default: %(default)s)")
    parser.add_argument("--alpha", type=float, default=0.5, help="mask opacity in overlays, 0..1 (default: 0.5)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if not 0.0 <= args.alpha <= 1.0:
        parser.error("--alpha must be between 0 and 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = find_images(args.inputs)
    if not paths:
        log.error("No images found in %s.", ", ".join(map(str, args.inputs)))
        return 1
    try:
        model = load_model(args.model, device=args.device)
    except PetNetError as error:
        log.error("%s", error)
        return 1
    log.info("Model: %s", model.weights_source)
    results = predict_files(model, paths, args.out, batch_size=args.batch_size, alpha=args.alpha)
    write_csv(results, args.out / "results.csv")
    if args.json:
        write_json(results, args.out / "results.json", model.weights_source)
    succeeded = [result for result in results if result.prediction is not None]
    if len(paths) == 1 and succeeded:
        print(_describe(succeeded[0]))
    failed = len(results) - len(succeeded)
    log.info("%d of %d images predicted, %d skipped; results in %s", len(succeeded), len(results), failed, args.out)
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
