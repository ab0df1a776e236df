"""``petnet-predict``: species, breeds and masks for a photo archive, streamed, resumable, on one machine or a Ray cluster.

``petnet-predict SRC... --out OUT`` appends one row per file to ``OUT/results.csv`` (and
``OUT/results.jsonl`` with ``--json``), flushed after every batch, so a crash or ``kill -9`` loses at
most the batch in flight. The same command again resumes: files already in the results, matched by
path, size and modification time, are skipped and counted; a changed file is done again (its old
row is dropped). Ctrl-C finishes the batch in hand, writes it, prints a one-line summary and exits
with status 130. Photos are decoded and preprocessed in worker threads, a few batches ahead of the
network, at most :data:`petnet.images.MAX_SIDE` on their longer side (JPEG draft decoding; other
formats' large photos decoded one at a time), so memory does not grow with the folder or the photo
size. Overlays and masks are written only when asked (``--overlays``, ``--masks``), beside their
photo's place in a mirror of the input folders. A file
that cannot be read gets a row with a plain error and never stops the run. ``--engine ray`` runs the
same rows on Ray Data (:mod:`petnet.inference.archive`) into ``OUT/results.parquet``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from petnet.errors import PetNetError
from petnet.hub import load_model
from petnet.inference.archive import (
    CSV_COLUMNS,
    FileKey,
    Source,
    answer_each,
    error_row,
    find_sources,
    prediction_row,
    prepare_or_error,
)
from petnet.inference.pipeline import PREDICT_BATCH_SIZE, Predictor, PreparedImage
from petnet.inference.results import Prediction
from petnet.inference.visualize import overlay_mask, palette_mask

log = logging.getLogger("petnet.predict")

RESULTS_CSV = "results.csv"
CSV_COLUMNS_BEFORE_OTHER_ANIMAL = (
    "file", "size_bytes", "modified_ns", "has_pet", "pet_score", "num_pets", "species", "species_confidence",
    "breed_1", "breed_1_confidence", "breed_2", "breed_2_confidence", "breed_3", "breed_3_confidence",
    "pet_fraction", "pets", "overlay", "mask", "error",
)  # fmt: skip
"""The columns of results files written before ``other_animal`` was one: a run resumes them (below)."""
RESULTS_JSONL = "results.jsonl"
INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


def _jsonl_records(path: Path) -> list[tuple[str, dict]]:
    """Each whole line of the JSONL file at ``path`` with its record (none when there is no file); a
    line that is not JSON, the last one cut short by a crash, is left out."""
    records = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            records.append((line, json.loads(line)))
        except json.JSONDecodeError:
            continue
    return records


class ResultsFile:
    """``results.csv`` (and ``results.jsonl``) in ``--out``: which files are done, and appending rows.

    Opening reads the rows already there. A row whose file has changed since (size or modification
    time) is dropped, as is a last line cut short by a crash; the files are then rewritten once,
    atomically, before anything is appended. A file from before the ``other_animal`` column gets it:
    False where there was a pet (a photo the check turns away is left without one), and blank for
    errors and for photos without a pet, whose rows cannot say whether the check turned them away
    (their JSON records can: ``results.jsonl`` fills them in where there is one)."""

    def __init__(self, out: Path, jsonl: bool) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.csv_path, self.jsonl_path = out / RESULTS_CSV, (out / RESULTS_JSONL if jsonl else None)
        rows, upgraded = self._read_csv()
        kept = [row for row in rows if self._still_current(row)]
        if upgraded or len(kept) != len(rows) or not self._csv_is_clean():
            self._rewrite_csv(kept)
        self.done: set[FileKey] = {FileKey.of_row(row) for row in kept}
        if self.jsonl_path is not None:
            self._keep_jsonl({row["file"] for row in kept})
        new = not self.csv_path.is_file() or self.csv_path.stat().st_size == 0  # killed before its header
        self._csv = self.csv_path.open("a", newline="")
        self._writer = csv.DictWriter(self._csv, fieldnames=CSV_COLUMNS)
        if new:
            self._writer.writeheader()
            self._csv.flush()
        self._jsonl = self.jsonl_path.open("a") if self.jsonl_path is not None else None

    def _read_csv(self) -> tuple[list[dict[str, str]], bool]:
        """The complete rows, and whether they come from a file of the columns before ``other_animal``."""
        if not self.csv_path.is_file():
            return [], False
        with self.csv_path.open(newline="") as file:
            reader = csv.DictReader(file)
            columns = tuple(reader.fieldnames or CSV_COLUMNS)
            if columns not in (CSV_COLUMNS, CSV_COLUMNS_BEFORE_OTHER_ANIMAL):
                raise PetNetError(
                    f"{self.csv_path} has other columns than this petnet-predict writes; "
                    "pass another --out (or move the file away) to start afresh."
                )
            rows = [row for row in reader if None not in row.values() and row.get("modified_ns")]
        if columns == CSV_COLUMNS:
            return rows, False
        recorded = self._recorded_other_animals()
        for row in rows:
            if row["error"]:
                row["other_animal"] = ""
            elif row["has_pet"] == "True":
                row["other_animal"] = "False"
            else:
                row["other_animal"] = recorded.get(row["file"], "")
        unknown = sum(not row["error"] and row["other_animal"] == "" for row in rows)
        log.info("%s is from before the other_animal column: added to its %d rows (%d left blank: no pet, and no "
                 "JSON record to say whether the other-animal check turned the photo away).", self.csv_path, len(rows), unknown)  # fmt: skip
        return rows, True

    def _recorded_other_animals(self) -> dict[str, str]:
        """``other_animal`` of each file in ``results.jsonl`` beside the CSV, as the CSV writes it."""
        records = _jsonl_records(self.csv_path.with_name(RESULTS_JSONL))
        return {record["file"]: str(bool(record["other_animal"])) for _, record in records if "other_animal" in record}

    def _csv_is_clean(self) -> bool:
        data = self.csv_path.read_bytes() if self.csv_path.is_file() else b""
        return not data or data.endswith(b"\n")

    @staticmethod
    def _still_current(row: dict[str, str]) -> bool:
        return FileKey.of_path(Path(row["file"])) == FileKey.of_row(row)

    def _rewrite_csv(self, rows: list[dict[str, str]]) -> None:
        partial = self.csv_path.with_suffix(".csv.partial")
        with partial.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        partial.replace(self.csv_path)

    def _keep_jsonl(self, files: set[str]) -> None:
        if not self.jsonl_path.is_file():
            return
        kept = [line + "\n" for line, record in _jsonl_records(self.jsonl_path) if record.get("file") in files]
        partial = self.jsonl_path.with_suffix(".jsonl.partial")
        partial.write_text("".join(kept))
        partial.replace(self.jsonl_path)

    def append(self, rows: Sequence[dict], records: Sequence[dict]) -> None:
        """Write one batch's rows and flush them to disk: the JSON records first, so that a crash in
        between leaves records the CSV does not list (dropped on resume, the files redone), never a
        file the CSV calls done without its record."""
        if self._jsonl is not None:
            self._jsonl.writelines(json.dumps(record) + "\n" for record in records)
            self._jsonl.flush()
            os.fsync(self._jsonl.fileno())
        self._writer.writerows(rows)
        self._csv.flush()
        os.fsync(self._csv.fileno())

    def close(self) -> None:
        self._csv.close()
        if self._jsonl is not None:
            self._jsonl.close()


@dataclass
class Tally:
    """The run's counts, for the summary line."""

    done: int = 0
    resumed: int = 0
    failed: int = 0
    skipped_suffix: int = 0
    seconds: float = 0.0

    def summary(self, out: Path, interrupted: bool = False) -> str:
        rate = self.done / self.seconds if self.seconds else 0.0
        state = "Interrupted: " if interrupted else ""
        return (
            f"{state}{self.done} done ({self.failed} failed), {self.resumed} already in the results, "
            f"{self.skipped_suffix} skipped for their suffix; {rate:.1f} images/s; results in {out / RESULTS_CSV}"
        )


class Interrupt:
    """Whether Ctrl-C asked the run to stop after the batch in hand (see :func:`interruptible`)."""

    requested = False


@contextmanager
def interruptible() -> Iterator[Interrupt]:
    """Meanwhile, the first Ctrl-C sets ``requested`` (the loop stops between batches); a second one
    stops at once."""
    interrupt = Interrupt()

    def handle(signum: int, frame: object) -> None:
        if interrupt.requested:
            raise KeyboardInterrupt
        interrupt.requested = True
        tqdm.write("Stopping after this batch (Ctrl-C again to stop now)...", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)


def _prefetched(predictor: Predictor, sources: Sequence[Source], workers: int, ahead: int) -> Iterator[tuple[Source, PreparedImage | str]]:
    """``sources`` with their prepared images, in order, read by ``workers`` threads at most ``ahead`` files ahead."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="petnet-read") as pool:
        pending: deque[tuple[Source, Future]] = deque()
        queue = iter(sources)
        for source in queue:
            pending.append((source, pool.submit(prepare_or_error, predictor, source.path)))
            if len(pending) >= ahead:
                break
        while pending:
            source, future = pending.popleft()
            following = next(queue, None)
            if following is not None:
                pending.append((following, pool.submit(prepare_or_error, predictor, following.path)))
            yield source, future.result()


def label_files(
    predictor: Predictor, sources: Sequence[Source], results: ResultsFile, out: Path, *, batch_size: int,
    workers: int, overlays: bool, masks: bool, alpha: float, tally: Tally, interrupt: Interrupt | None = None,
) -> list[tuple[Source, Prediction]]:  # fmt: skip
    """Label ``sources`` batch by batch, appending each batch's rows to ``results``; returns the
    predictions only for a single file (the CLI prints it), never the archive's."""
    started = time.perf_counter()
    kept: list[tuple[Source, Prediction]] = []
    batch: list[tuple[Source, PreparedImage | str]] = []
    progress = tqdm(total=len(sources), unit="image", disable=len(sources) < 2, file=sys.stderr, smoothing=0.1)
    for item in _prefetched(predictor, sources, workers, ahead=2 * batch_size + workers):
        batch.append(item)
        if len(batch) == batch_size:
            kept += _finish(predictor, batch, results, out, overlays, masks, alpha, tally, single=len(sources) == 1)
            progress.update(len(batch))
            batch = []
            if interrupt is not None and interrupt.requested:
                break
    else:
        if batch:
            kept += _finish(predictor, batch, results, out, overlays, masks, alpha, tally, single=len(sources) == 1)
            progress.update(len(batch))
    progress.close()
    tally.seconds += time.perf_counter() - started
    return kept


def _finish(
    predictor: Predictor, batch: list[tuple[Source, PreparedImage | str]], results: ResultsFile, out: Path,
    overlays: bool, masks: bool, alpha: float, tally: Tally, single: bool,
) -> list[tuple[Source, Prediction]]:  # fmt: skip
    """Predict one batch's readable photos, write their files and the batch's rows."""
    answers = answer_each(predictor, [prepared for _, prepared in batch])
    rows, records, kept = [], [], []
    for (source, prepared), prediction in zip(batch, answers, strict=True):
        key = FileKey.of_path(source.path)
        if isinstance(prediction, str):
            tqdm.write(f"Skipping {source.shown}: {prediction}", file=sys.stderr)
            row, record = error_row(source.path, key, prediction)
            tally.failed += 1
        else:
            written = _write_pictures(prediction, prepared, out / source.mirror, overlays, masks, alpha)
            row, record = prediction_row(source.path, key, prediction, written)
            if single:
                kept.append((source, prediction))
        rows.append(row)
        records.append(record)
        tally.done += 1
    results.append(rows, records)
    return kept


def _write_pictures(
    prediction: Prediction, prepared: PreparedImage, stem: Path, overlays: bool, masks: bool, alpha: float
) -> dict[str, str]:
    """The overlay and palette mask PNGs asked for, at ``<stem>_overlay.png`` / ``<stem>_mask.png``."""
    written = {}
    if overlays or masks:
        stem.parent.mkdir(parents=True, exist_ok=True)
    if overlays:
        path = stem.with_name(f"{stem.name}_overlay.png")
        overlay_mask(prepared.photo, prediction.full_mask, alpha).save(path)
        written["overlay"] = str(path)
    if masks:
        path = stem.with_name(f"{stem.name}_mask.png")
        palette_mask(prediction.full_mask).save(path)
        written["mask"] = str(path)
    return written


def _describe(source: Source, prediction: Prediction) -> str:
    if prediction.other_animal:
        return f"{source.shown}: no cat or dog found, another kind of animal (pet score {prediction.pet_score:.0%})"
    if not prediction.has_pet:
        return f"{source.shown}: no cat or dog found (pet score {prediction.pet_score:.0%})"
    animals = []
    for pet in prediction.pets:
        breeds = ", ".join(f"{b} {c:.0%}" for b, c in zip(pet.breed, pet.breed_confidences))
        animals.append(f"{pet.species} ({pet.species_confidence:.0%}); {breeds}")
    return f"{source.shown}: " + " | ".join(animals)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="petnet-predict", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", metavar="SRC",
                        help="image files and/or folders (with --engine ray also any URL Ray's readers take, e.g. s3://)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default: %(default)s)")
    parser.add_argument("--recursive", action="store_true", help="also look into subfolders")
    parser.add_argument("--json", action="store_true", help="also write results.jsonl (one JSON record per file)")
    parser.add_argument("--overlays", action="store_true", help="write <photo>_overlay.png beside each result")
    parser.add_argument("--masks", action="store_true", help="write <photo>_mask.png (values 0 pet, 1 background, 2 boundary)")
    parser.add_argument(
        "--model", default=None, metavar="PATH_OR_REPO",
        help="model directory or Hugging Face repo id (default: $PETNET_REPO, else the bundled weights)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=PREDICT_BATCH_SIZE, help="images per network pass (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="threads reading photos ahead of the network (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="threads of the network (default: the CPUs available)")
    parser.add_argument("--alpha", type=float, default=0.5, help="mask opacity in overlays, 0..1 (default: 0.5)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: %(default)s)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this process; ray: Ray Data, on $RAY_ADDRESS's cluster or a local one (default: local)")  # fmt: skip
    parser.add_argument("--actors", type=int, default=0, help="with --engine ray: model replicas (default: one per 2 CPUs)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.workers < 1 or args.threads < 0:
        parser.error("--batch-size and --workers must be at least 1, --threads at least 0")
    if not 0.0 <= args.alpha <= 1.0:
        parser.error("--alpha must be between 0 and 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.engine == "ray":
        from petnet.inference.archive import run_on_ray  # Ray is an extra: imported only when asked for

        return run_on_ray(args.inputs, args.out, model=args.model, batch_size=args.batch_size,
                          actors=args.actors, recursive=args.recursive)  # fmt: skip
    found = find_sources([Path(name) for name in args.inputs], args.recursive)
    if not found.sources:
        log.error("No images found in %s.", ", ".join(args.inputs))
        return 1
    try:
        results = ResultsFile(args.out, args.json)
    except PetNetError as error:
        log.error("%s", error)
        return 1
    tally = Tally(skipped_suffix=found.skipped_suffix)
    todo = [source for source in found.sources if FileKey.of_path(source.path) not in results.done]
    tally.resumed = len(found.sources) - len(todo)
    if not todo:
        results.close()
        log.info(tally.summary(args.out))
        return 0
    try:
        model = load_model(args.model, device=args.device, threads=args.threads or None)
    except PetNetError as error:
        results.close()
        log.error("%s", error)
        return 1
    log.info("Model: %s", model.weights_source)
    with interruptible() as interrupt:
        try:
            kept = label_files(model.predictor, todo, results, args.out, batch_size=args.batch_size, workers=args.workers,
                               overlays=args.overlays, masks=args.masks, alpha=args.alpha, tally=tally,
                               interrupt=interrupt)  # fmt: skip
        finally:
            results.close()
    if interrupt.requested:
        log.info(tally.summary(args.out, interrupted=True))
        return INTERRUPTED
    for source, prediction in kept:
        print(_describe(source, prediction))
    log.info(tally.summary(args.out))
    return 0 if tally.done > tally.failed or tally.resumed else 1


if __name__ == "__main__":
    sys.exit(main())
