"""Evaluation report files: the v1 JSON contract between ``petnet.evaluate`` (writer) and the dashboard.

The field-by-field description lives in ``docs/report_schema.md``. Readers go through
:func:`load_report`, which refuses files it cannot trust (missing, not JSON, other schema version,
missing sections) with a :class:`ReportError` that says how to regenerate them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from petnet import paths
from petnet.errors import PetNetError

SCHEMA_VERSION = 1
EVALUATION_SPLITS = ("test", "val", "trainval")
"""Splits a report can describe; ``val`` is carved from ``trainval`` as in training."""
REPORTS_DIR = paths.REPORTS_DIR
"""Default home of ``<split>.json`` reports and their ``<split>_masks/`` folders."""
TRAINING_LOG_NAME = "training_log.csv"
TRAIN_CONFIG_NAME = "train_config.json"
"""The per-epoch log and the settings ``petnet.training.train`` writes into each run's output folder."""
TRAINING_RUNS_DIR = "runs"
"""Sub-folder of a reports folder with one ``<run>/`` (the run's log and config, copied) per
training run behind the evaluated weights: several when they average runs (``petnet.training.soup``)."""
SOUP_RECIPE_NAME = "soup.json"
"""What ``petnet.training.soup`` writes beside a soup's weights: the runs, export and ``--decoder-from`` it
was made with. The shipped soup's is copied into ``TRAINING_RUNS_DIR``, where the model card reads it."""

BASELINE: dict[str, Any] = {
    "name": "original PetNet (from-scratch CNN, 128x128)",
    "species_accuracy": 0.96,
    "breed_top3_accuracy": 0.87,
    "mean_iou": 0.74,
    "min_iou": 0.54,
}
"""Published figures of the original PetNet, the numbers every report is compared against."""

def is_finite(value: object) -> bool:
    """Whether a report value is a finite number (missing figures are None or NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def percent(value: float | None) -> str:
    """``97.4%``; ``n/a`` for a missing or non-finite figure (never ``nan%``): how every report
    reader (summary, dashboard, charts, model card) writes a share."""
    return f"{100 * value:.1f}%" if is_finite(value) else "n/a"


ON_ANIMALS = ("num_images", "found_one", "species_right")
"""What a report's scene cells also count among the scenes that are photos of another animal
(``<key>_on_animals``, ``petnet.evaluate.scene_counts``)."""
SCENE_BACKGROUNDS = ("on photos of other animals", "on other photos")
"""How :func:`scenes_by_background` names the scenes that are photos of another animal, and the rest."""


def scenes_by_background(scenes: Mapping[str, Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, dict[str, int]]]:
    """A report's ``detection.scenes`` summed over kinds per size band, apart for the scenes that are
    photos of another animal (:data:`SCENE_BACKGROUNDS`): ``{background: {band: {"num_images",
    "found_one", "species_right"}}}``. A quarter of the non-pet photos show an animal, and a pet beside
    one is harder to find as one animal than in a street or a kitchen. Empty for reports without the
    split (written before it)."""
    cells = [(band, cell) for bands in scenes.values() for band, cell in bands.items()]
    if not cells or any("num_images_on_animals" not in cell for _, cell in cells):
        return {}
    result: dict[str, dict[str, dict[str, int]]] = {background: {} for background in SCENE_BACKGROUNDS}
    for band, cell in cells:
        beside, other = (result[background].setdefault(band, dict.fromkeys(ON_ANIMALS, 0)) for background in SCENE_BACKGROUNDS)
        for key in ON_ANIMALS:
            beside[key] += cell[f"{key}_on_animals"]
            other[key] += cell[key] - cell[f"{key}_on_animals"]
    return result


def score(value: float | None) -> str:
    """``0.788``; ``n/a`` for a missing or non-finite figure: how every report reader writes an IoU,
    an AUROC, an ECE or a log loss."""
    return f"{value:.3f}" if is_finite(value) else "n/a"


@dataclass(frozen=True)
class HeadlineMetric:
    """One headline figure of a report: where it is, how to show it, the original PetNet's value."""

    label: str
    section: str
    key: str
    """The figure's key in ``section``; dots reach into sub-sections (``species.ece``)."""
    baseline_key: str | None = None
    """Key in :data:`BASELINE` when the original PetNet published this figure."""
    is_percent: bool = True
    card: bool = True
    """Shown as a dashboard card (the rest appear in tables only)."""

    def value(self, report: Mapping[str, Any]) -> float | None:
        """The figure in ``report``; None when absent or not finite."""
        value: Any = report.get(self.section)
        for part in self.key.split("."):  # "species.ece": a figure inside a sub-section
            value = value.get(part) if isinstance(value, Mapping) else None
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def baseline(self, baseline: Mapping[str, Any] | None = None) -> float | None:
        return (baseline or BASELINE).get(self.baseline_key) if self.baseline_key else None

    def format(self, value: float | None) -> str:
        """``97.4%`` or ``0.788``; ``n/a`` for a missing or non-finite figure."""
        return percent(value) if self.is_percent else score(value)


HEADLINE_METRICS: tuple[HeadlineMetric, ...] = (
    HeadlineMetric("Species accuracy", "species", "accuracy", "species_accuracy"),
    HeadlineMetric("Breed top-1 accuracy", "breed", "top1_accuracy"),
    HeadlineMetric("Breed top-3 accuracy", "breed", "top3_accuracy", "breed_top3_accuracy"),
    HeadlineMetric("Breed weighted F1", "breed", "weighted_f1", card=False),
    HeadlineMetric("Mask mean IoU", "segmentation", "mean_iou", "mean_iou", is_percent=False),
    HeadlineMetric("Mask worst-class IoU", "segmentation", "min_iou", "min_iou", is_percent=False),
    HeadlineMetric("Binary pet IoU", "segmentation", "binary_pet_iou", is_percent=False),
    HeadlineMetric("Mask pixel accuracy", "segmentation", "pixel_accuracy", card=False),
    HeadlineMetric("Pet photos recognised", "detection", "pets_kept"),
    HeadlineMetric("Non-pet photos accepted", "detection", "non_pets_accepted"),
    HeadlineMetric("Pet detection AUROC", "detection", "auroc", is_percent=False, card=False),
    HeadlineMetric("Species confidence ECE", "calibration", "species.ece", is_percent=False, card=False),
    HeadlineMetric("Top-breed confidence ECE", "calibration", "top_breed.ece", is_percent=False, card=False),
    HeadlineMetric("Breed log loss (nats)", "breed", "log_loss_all_breeds", is_percent=False, card=False),
)
"""The figures the evaluate summary, the model card and the dashboard cards show, in order."""

REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "": ("schema_version", "split", "split_description", "model", "num_images", "num_images_with_trimap",
         "labels", "species", "breed", "segmentation", "worst_cases", "baseline"),
    "labels": ("species", "breeds", "breed_display_names", "breed_species", "mask_classes"),
    "species": ("accuracy", "confusion"),
    "breed": ("top1_accuracy", "top3_accuracy", "weighted_f1", "confusion", "per_class", "most_confused"),
    "segmentation": ("per_class_iou", "mean_iou", "min_iou", "per_class_dice", "mean_dice", "pixel_accuracy",
                     "confusion"),
}  # fmt: skip
"""Keys a reader may rely on, per section ("" = top level)."""


class ReportError(PetNetError):
    """An evaluation report is missing, unreadable or does not follow the expected schema."""


def report_path(split: str, directory: str | Path = REPORTS_DIR) -> Path:
    """Where the report of ``split`` lives: ``<directory>/<split>.json``."""
    return Path(directory) / f"{split}.json"


def _regenerate_hint(path: Path) -> str:
    split = path.stem if path.stem in EVALUATION_SPLITS else "test"
    return f"run `python -m petnet.evaluate --split {split} --out {path}` to (re)create it"


def load_report(path: str | Path) -> dict:
    """Read and validate a report; raise :class:`ReportError` saying what to do when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"No evaluation report at {path}; {_regenerate_hint(path)}.")
    try:
        report = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_non_finite)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as error:
        raise ReportError(f"{path} is not valid JSON ({error}); {_regenerate_hint(path)}.") from error
    if not isinstance(report, dict):
        raise ReportError(f"{path} holds a JSON {type(report).__name__}, not a report object; {_regenerate_hint(path)}.")
    version = report.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"{path} has schema_version {version!r} but this PetNet reads version {SCHEMA_VERSION}; "
            f"{_regenerate_hint(path)}."
        )
    missing = _missing_keys(report)
    if missing:
        raise ReportError(f"{path} lacks required keys {missing}; {_regenerate_hint(path)}.")
    return report


def _refuse_non_finite(name: str) -> None:
    """``json.loads`` hook for ``NaN``/``Infinity``: a report stores an undefined figure as null."""
    raise ValueError(f"non-finite number {name} (write undefined figures as null)")


def _missing_keys(report: dict) -> list[str]:
    """Dotted names of the :data:`REQUIRED_KEYS` absent from ``report``."""
    missing = []
    for section, keys in REQUIRED_KEYS.items():
        values = report.get(section) if section else report
        present = values if isinstance(values, Mapping) else {}
        missing.extend(f"{section}.{key}" if section else key for key in keys if key not in present)
    return missing


def to_json_ready(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays become Python numbers/lists, NaN and infinities None."""
    if isinstance(value, Mapping):
        return {str(k): to_json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_json_ready(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``report`` as JSON atomically (temporary file + rename), so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_json_ready(report), indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o644)  # mkstemp creates 0600; a report is meant to be shared and served
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def find_reports(directory: str | Path = REPORTS_DIR) -> list[Path]:
    """Report files (``*.json``) in ``directory``, sorted by name; empty if the folder does not exist.

    JSON objects without ``schema_version`` (the benchmark figures kept beside the reports) are left
    out; unreadable files stay in, so that opening one says what is wrong with it.
    """
    directory = Path(directory)
    return sorted(p for p in directory.glob("*.json") if p.is_file() and _may_be_report(p)) if directory.is_dir() else []


def _may_be_report(path: Path) -> bool:
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return True
    return not isinstance(content, dict) or "schema_version" in content
