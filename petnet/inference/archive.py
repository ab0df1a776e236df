"""Labelling a photo archive: one result row per file, and the same rows from Ray Data on a cluster.

:func:`prediction_row` and :func:`error_row` are the one definition of a result row, shared by the
local engine (``petnet-predict``, :mod:`petnet.predict`) and :class:`PredictBatch`, the callable class
Ray Data's ``map_batches`` runs with one model per actor. Use it in your own Ray pipeline::

    import ray
    from petnet.inference.archive import PredictBatch
    photos = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
    rows = photos.map_batches(PredictBatch, batch_size=8, concurrency=4, num_cpus=2)
    rows.write_parquet("s3://bucket/labels/")

Ray is an extra (``pip install petnet[ray]``); nothing here imports it until :func:`run_on_ray`.
:func:`prepare_or_error` and :func:`answer_each` are how both engines label a batch.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petnet.errors import InvalidImageError
from petnet.images import IMAGE_SUFFIXES, ImageInput
from petnet.inference.decoding import TOP_K_BREEDS
from petnet.inference.pipeline import Predictor, PreparedImage
from petnet.inference.results import Prediction

log = logging.getLogger(__name__)

RESULTS_PARQUET = "results.parquet"
"""What the Ray engine writes into ``--out`` (a folder of Parquet files, as Ray Data writes them)."""
CSV_COLUMNS = (
    "file", "size_bytes", "modified_ns", "has_pet", "other_animal", "pet_score", "num_pets", "species", "species_confidence",
    *(f"breed_{i}{part}" for i in range(1, TOP_K_BREEDS + 1) for part in ("", "_confidence")),
    "pet_fraction", "pets", "overlay", "mask", "error",
)  # fmt: skip
"""One row per file; species and breeds (of the largest animal) stay empty when there is no pet, and
``pets`` holds every animal as JSON (species, breeds, confidences, box); ``other_animal`` is True
for a photo the other-animal check turned away. ``size_bytes`` and ``modified_ns`` say which version
of the file the row is for (a resumed run redoes a changed file)."""


@dataclass(frozen=True)
class FileKey:
    """A file's identity for resuming: its absolute path, size and modification time (ns)."""

    file: str
    size_bytes: int
    modified_ns: int

    @classmethod
    def of_path(cls, path: Path) -> FileKey:
        """The key of ``path`` as it is now (-1, -1 when it cannot be looked at)."""
        try:
            stat = path.stat()
        except OSError:
            return cls(str(path), -1, -1)
        return cls(str(path), stat.st_size, stat.st_mtime_ns)

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> FileKey:
        """The key a result row was written for."""
        return cls(str(row["file"]), int(row["size_bytes"]), int(row["modified_ns"]))


def _base_row(key: FileKey) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CSV_COLUMNS, "")
    row.update(file=key.file, size_bytes=key.size_bytes, modified_ns=key.modified_ns)
    return row


def error_row(path: Path | str, key: FileKey, message: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row and JSON record of a file that could not be used: its plain error message."""
    row = _base_row(key)
    row["error"] = message
    return row, {"file": str(path), "error": message}


def prediction_row(
    path: Path | str, key: FileKey, prediction: Prediction, written: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row and JSON record of one prediction (``written``: the overlay and mask files, if any)."""
    written = written or {}
    summary = prediction.to_dict()
    row = _base_row(key)
    row.update(
        has_pet=summary["has_pet"],
        other_animal=summary["other_animal"],
        pet_score=f"{summary['pet_score']:.4f}",
        num_pets=len(summary["pets"]),
        pet_fraction=f"{summary['pet_fraction']:.4f}",
        pets=json.dumps(summary["pets"]),
        overlay=written.get("overlay", ""),
        mask=written.get("mask", ""),
    )
    if summary["has_pet"]:
        row.update(species=summary["species"], species_confidence=f"{summary['species_confidence']:.4f}")
        for i, (breed, confidence) in enumerate(zip(summary["breed"], summary["breed_confidences"]), 1):
            row[f"breed_{i}"] = breed
            row[f"breed_{i}_confidence"] = f"{confidence:.4f}"
    return row, {"file": str(path), **summary, **written}


@dataclass(frozen=True)
class Source:
    """One file to label and where its overlay and mask go (relative to ``--out``)."""

    path: Path
    shown: str
    """The path as the user named it (for messages)."""
    mirror: Path
    """Its place in the mirror of the input folders, without suffix: ``cats/tom``."""


@dataclass
class Found:
    """What :func:`find_sources` found in the inputs."""

    sources: list[Source] = field(default_factory=list)
    skipped_suffix: int = 0
    """Files in the folders whose suffix is not a picture's."""


def find_sources(inputs: Sequence[Path], recursive: bool = False) -> Found:
    """Explicit files as given (whatever their suffix), plus the picture files (by suffix) in the given
    folders, and in their subfolders with ``recursive``; sorted, each once. Mirror paths keep the
    folder structure (prefixed by the folder's name when several folders are given) and tell files
    that share a stem apart by their suffix."""
    found = Found()
    folders = [path for path in inputs if path.is_dir()]
    seen: set[Path] = set()

    def add(path: Path, mirror: Path) -> None:
        absolute = Path(os.path.abspath(path))
        if absolute not in seen:
            seen.add(absolute)
            found.sources.append(Source(absolute, str(path), mirror))

    for path in inputs:
        if not path.is_dir():
            add(path, Path(_mirror_stem(path, shared=len(_pictures_beside(path)) > 1)))
            continue
        pattern = path.rglob("*") if recursive else path.iterdir()
        files = sorted(p for p in pattern if p.is_file())
        pictures = [file for file in files if file.suffix.lower() in IMAGE_SUFFIXES]
        found.skipped_suffix += len(files) - len(pictures)
        stems = Counter((file.parent, file.stem) for file in pictures)
        prefix = Path(path.resolve().name) if len(folders) > 1 else Path()
        for file in pictures:
            name = _mirror_stem(file, shared=stems[file.parent, file.stem] > 1)
            add(file, prefix / file.relative_to(path).with_name(name))
    return found


def _pictures_beside(file: Path) -> list[Path]:
    """The picture files in ``file``'s folder that share its stem."""
    return [p for p in file.parent.glob(f"{file.stem}.*") if p.suffix.lower() in IMAGE_SUFFIXES]


def _mirror_stem(file: Path, shared: bool) -> str:
    """``tom``, or ``tom_jpg`` when another picture in its folder ``shared`` the stem (``tom.png``)."""
    return f"{file.stem}_{file.suffix.lstrip('.').lower()}" if shared else file.stem


ACTOR_THREADS = 2
"""Network threads per model replica: one replica per two CPUs. Each actor reserves one CPU of Ray's
(``num_cpus=1``), not two, so that on a machine with two the file-reading tasks still get one; a
replica reserving every CPU would wait forever for the reads it needs."""


def prepare_or_error(predictor: Predictor, source: ImageInput) -> PreparedImage | str:
    """One file read and preprocessed, or the plain message saying why it cannot be used."""
    try:
        return predictor.prepare(source)
    except InvalidImageError as error:
        return str(error)


def answer_each(predictor: Predictor, items: Sequence[PreparedImage | str]) -> list[Prediction | str]:
    """Each item's prediction, the prepared ones in one pass of the pipeline; an error message stays
    in its place. Both engines label a batch this way."""
    prepared = [item for item in items if isinstance(item, PreparedImage)]
    answers = iter(predictor.answer(prepared)) if prepared else iter(())
    return [item if isinstance(item, str) else next(answers).prediction for item in items]


class PredictBatch:
    """Ray Data's ``map_batches`` callable: one model per actor, a batch of files in, their rows out.

    The batch holds ``bytes`` and ``path`` columns (``ray.data.read_binary_files(...,
    include_paths=True)``); the rows have :data:`CSV_COLUMNS`, all as strings, so a Parquet file of
    them reads like ``results.csv``. A file that cannot be used gets its error, never an exception."""

    def __init__(self, model: str | None = None, threads: int | None = None) -> None:
        from petnet.hub import load_model  # the loader sits above the pipeline this module belongs to

        # Ray sets OMP_NUM_THREADS to the reserved num_cpus (1); the replica computes with ``threads``.
        self.predictor = load_model(model, threads=threads or int(os.environ.get("OMP_NUM_THREADS") or 1)).predictor

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        paths = [str(path) for path in batch["path"]]
        keys = [_key_of(path, len(data)) for path, data in zip(paths, batch["bytes"], strict=True)]
        answers = answer_each(self.predictor, [prepare_or_error(self.predictor, bytes(data)) for data in batch["bytes"]])
        rows = [
            error_row(path, key, answer)[0] if isinstance(answer, str) else prediction_row(path, key, answer)[0]
            for path, key, answer in zip(paths, keys, answers, strict=True)
        ]
        return {column: [str(row[column]) for row in rows] for column in CSV_COLUMNS}


def _key_of(path: str, size: int) -> FileKey:
    """A local file's :class:`FileKey`; a remote one's size with no modification time (-1)."""
    local = Path(path)
    return FileKey.of_path(local) if local.is_file() else FileKey(path, size, -1)


def run_on_ray(
    inputs: list[str], out: Path, *, model: str | None, batch_size: int, actors: int, recursive: bool
) -> int:
    """``petnet-predict --engine ray``: the inputs read as binary files by Ray Data (local folders or
    any URL its readers take), labelled by :class:`PredictBatch` actors, written to
    ``OUT/results.parquet`` (one row per file, :data:`CSV_COLUMNS`). Connects to ``$RAY_ADDRESS``'s
    cluster when set, else starts a local one. Returns the exit status. It writes every row at the
    end and does not resume, so an ``OUT`` that already holds results is refused: appended to, the
    folder would hold each photo twice, and older parts without a newer column lose it on reading."""
    target = out / RESULTS_PARQUET
    if target.exists():
        log.error("%s already exists: the Ray engine does not resume; pass another --out or move it away.", target)
        return 1
    try:
        import ray
    except ImportError:
        log.error("--engine ray needs Ray: pip install 'petnet[ray]' (or pip install 'ray[data]').")
        return 1
    ray.init(address=os.environ.get("RAY_ADDRESS") or None, logging_level=logging.WARNING, log_to_driver=False)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    concurrency = actors or max(1, cpus // ACTOR_THREADS)
    urls = [name for name in inputs if "://" in name]
    local = find_sources([Path(name) for name in inputs if "://" not in name], recursive).sources
    paths = urls + [str(source.path) for source in local]  # the files the local engine would label, and URLs
    if not paths:
        log.error("No images found in %s.", ", ".join(inputs))
        return 1
    suffixes = [suffix.lstrip(".") for suffix in IMAGE_SUFFIXES] if urls else None
    photos = ray.data.read_binary_files(paths, include_paths=True, file_extensions=suffixes)
    rows = photos.map_batches(
        PredictBatch, fn_constructor_kwargs={"model": model, "threads": ACTOR_THREADS}, batch_size=batch_size,
        concurrency=concurrency, num_cpus=1, batch_format="numpy",
    )  # fmt: skip
    rows.write_parquet(str(target))
    log.info("Wrote %s", target)
    return 0
