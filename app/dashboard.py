"""PetNet evaluation dashboard over the JSON reports written by ``petnet.evaluate``.

Run: ``streamlit run app/dashboard.py [-- --report PATH | --reports-dir DIR] [--images-root DIR]``.
The same options can come from the environment (``PETNET_REPORT``, ``PETNET_REPORTS_DIR``,
``PETNET_IMAGES_ROOT``), which is how tests and containers configure it; command-line flags win.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # `streamlit run` puts only app/ on sys.path; `app` lives beside petnet
    sys.path.insert(0, str(PROJECT_ROOT))

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from app import REPORTS_DIR
from app.dashboard_charts import (
    breed_confusion_figure,
    confusion_heatmap,
    loss_curves_figure,
    mask_metrics_figure,
    most_confused_figure,
    per_breed_bar_figure,
    per_breed_frame,
    reliability_figure,
    validation_curves_figure,
)
from petnet.data.datasets import read_trimap
from petnet.errors import DatasetError
from petnet.evaluation.metrics import proportion_interval
from petnet.evaluation.report import (
    BASELINE,
    HEADLINE_METRICS,
    TRAINING_LOG_NAME,
    TRAINING_RUNS_DIR,
    HeadlineMetric,
    ReportError,
    find_reports,
    is_finite,
    load_report,
    percent,
    scenes_by_background,
    score,
)
from petnet.inference.visualize import overlay_mask
from petnet.paths import OXFORD_PET_ROOT


def species_filters(report: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The breed filter's choices, from the report's own species names: all, then one per species."""
    species = tuple(report["labels"]["species"])
    return {"all": species, **{f"{name}s": (name,) for name in species}}


@dataclass(frozen=True)
class DashboardOptions:
    """Where to read reports and images from; ``report`` pins a single file, else ``reports_dir`` is listed."""

    report: Path | None
    reports_dir: Path
    images_root: Path | None


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> DashboardOptions:
    """Options from the arguments after ``--`` of ``streamlit run``, falling back to ``PETNET_*`` variables.

    Unknown arguments are ignored so the script also runs under hosts with their own argv (pytest).
    """
    parser = argparse.ArgumentParser(prog="streamlit run app/dashboard.py --", allow_abbrev=False)
    parser.add_argument("--report", type=Path, default=environ.get("PETNET_REPORT") or None)
    parser.add_argument(
        "--reports-dir",
        type=Path,
        default=environ.get("PETNET_REPORTS_DIR") or REPORTS_DIR,
    )
    parser.add_argument("--images-root", type=Path, default=environ.get("PETNET_IMAGES_ROOT") or None)
    args, _ = parser.parse_known_args(list(argv))
    return DashboardOptions(
        report=args.report,
        reports_dir=Path(args.reports_dir),
        images_root=args.images_root,
    )


def _mtime_ns(path: Path) -> int:
    """Modification time used as a cache key, so an updated file is re-read; -1 when it does not exist."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_report(path: str, mtime_ns: int) -> dict:
    return load_report(path)


def read_report(path: Path) -> dict:
    """Validated report, parsed once per file version (path + mtime); raises ReportError."""
    return _cached_report(str(path), _mtime_ns(path))


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_csv(path: str, mtime_ns: int) -> pd.DataFrame:
    return pd.read_csv(path)


def image_root_candidates(typed: str, report: dict) -> list[Path]:
    """Where the dataset may be, in order: the sidebar/CLI value, the report's ``data_root``, and
    :data:`petnet.paths.OXFORD_PET_ROOT` (where a checkout finds it); relative paths are taken from
    the project root, so a fresh clone finds the data whatever folder Streamlit was started in."""
    candidates = [Path(typed.strip())] if typed.strip() else []
    candidates += [Path(report["data_root"])] if report.get("data_root") else []
    candidates.append(OXFORD_PET_ROOT)
    resolved = [path if path.is_absolute() else (PROJECT_ROOT / path).resolve() for path in candidates]
    return list(dict.fromkeys(resolved))


def resolve_images_root(typed: str, report: dict) -> Path | None:
    """The first candidate (see :func:`image_root_candidates`) that holds an ``images/`` folder."""
    return next((path for path in image_root_candidates(typed, report) if (path / "images").is_dir()), None)


def show_images_prompt(typed: str, report: dict) -> None:
    """Say where the photos were looked for and how to make them appear."""
    places = ", ".join(f"`{path}`" for path in image_root_candidates(typed, report))
    st.info(
        f"Photos not found: the Oxford-IIIT Pet dataset (its `images/` and `annotations/` folders) was looked for "
        f"in {places}. Put the dataset there or type its folder under **Dataset folder** in the sidebar."
    )


def split_caption(report: dict) -> str:
    """What was evaluated: the split description, image counts (unless the description has them), model."""
    counts = f"{report['num_images']:,} images ({report['num_images_with_trimap']:,} with trimaps)"
    description = report["split_description"]
    already_counted = f"({report['num_images_with_trimap']:,} with trimaps)" in description
    parts = [f"**{description}**"] + ([] if already_counted else [counts])
    model = report["model"]
    parts += [f"{model.get('backbone')} at {model.get('image_size')} px", f"report {report.get('created_utc', '')}"]
    return " · ".join(parts)


def headline_cards(report: dict) -> list[HeadlineMetric]:
    """The report's cards: :data:`petnet.evaluation.report.HEADLINE_METRICS` marked ``card``, without the sections
    an older report lacks (``detection``)."""
    return [metric for metric in HEADLINE_METRICS if metric.card and isinstance(report.get(metric.section), dict)]


def baseline_line(baseline: dict) -> str:
    """One sentence saying what the arrows compare with: the original PetNet and what it published."""
    published = [
        f"{metric.label} {metric.format(metric.baseline(baseline))}"
        for metric in HEADLINE_METRICS
        if metric.baseline(baseline) is not None
    ]
    return (
        f"Arrows compare with the **{baseline.get('name', 'original PetNet')}**, the model this project replaces; "
        f"it published {'; '.join(published)} and no other figure shown here."
    )


def counting_line(detection: Mapping[str, Any]) -> str | None:
    """One sentence on counting animals: two-animal composites counted right (per layout) and
    single pets given one answer; ``None`` when the report has neither."""
    parts = []
    two = detection.get("two_animal")
    if two and two.get("num_images"):
        n = two["num_images"]
        layouts = ", ".join(
            f"{layout.replace('_', ' ')} {counts['count_right']}/{counts['num_images']}"
            for layout, counts in (two.get("by_layout") or {}).items()
        )
        parts.append(f"Two-animal composites: count right {percent(two['count_right'] / n)}, both species right "
                     f"{percent(two['both_species_right'] / n)} of {n}" + (f" ({layouts})" if layouts else ""))  # fmt: skip
    if detection.get("single_pets_one_answer") is not None:
        parts.append(f"single-pet photos given one answer {percent(detection['single_pets_one_answer'])}")
    return "; ".join(parts) + "." if parts else None


def show_headline(report: dict) -> None:
    """Our headline figures as cards, with the change against the original PetNet where it published one."""
    baseline = report.get("baseline") or BASELINE
    cards = headline_cards(report)
    per_row = math.ceil(len(cards) / math.ceil(len(cards) / 4))  # rows of at most 4: labels stay readable
    for start in range(0, len(cards), per_row):
        row = cards[start : start + per_row]
        for column, metric in zip(st.columns(per_row), row, strict=False):
            ours, theirs = metric.value(report), metric.baseline(baseline)
            delta, description = None, "no published baseline"
            if ours is not None and theirs is not None:
                difference = (ours - theirs) * 100 if metric.is_percent else ours - theirs
                delta = f"{difference:+.1f} pp" if metric.is_percent else f"{difference:+.3f}"
                description = f"vs {metric.format(theirs)}"
            column.metric(metric.label, metric.format(ours), delta, delta_description=description, border=True)
    st.caption(baseline_line(baseline))
    counting = counting_line(report.get("detection") or {})
    if counting:
        st.caption(counting)


def show_classification(report: dict, normalise: bool, species: tuple[str, ...]) -> None:
    labels = report["labels"]
    display_of = dict(zip(labels["breeds"], labels["breed_display_names"], strict=True))
    left, right = st.columns([2, 3])
    species_figure = confusion_heatmap(
        report["species"]["confusion"], labels["species"], normalise=normalise, title="Cat or dog?", annotate=True
    )
    left.plotly_chart(species_figure, key="species_confusion")
    right.plotly_chart(most_confused_figure(report["breed"]["most_confused"], display_of), key="most_confused")
    breed_figure = breed_confusion_figure(
        report["breed"]["confusion"],
        labels["breed_display_names"],
        labels["breed_species"],
        normalise=normalise,
        species=species,
    )
    st.plotly_chart(breed_figure, key="breed_confusion")


def show_calibration(report: dict) -> None:
    """Shown confidence against how often it is right, for the species and the first breed."""
    calibration = report.get("calibration")
    if not calibration:
        st.info("This report has no calibration figures; regenerate it with `python -m petnet.evaluate`.")
        return
    heads = {"species": calibration["species"], "first breed": calibration["top_breed"]}
    st.plotly_chart(reliability_figure(heads), key="reliability")
    st.caption(
        " ".join(
            f"{name.capitalize()}: {percent(head['mean_confidence'])} shown on average, right {percent(head['accuracy'])}"
            f" of the time (ECE {score(head['ece'])})."
            for name, head in heads.items()
        )
        + f" Breed temperature {report['model'].get('breed_temperature', 1.0):.3f}, fitted on validation."
    )


def _scene_shares(cell: Mapping[str, int]) -> dict[str, object]:
    """A scene cell's photos and shares: found as one animal (with the 95% interval of that share: a
    band holds a few hundred scenes at most) and of the right species, and breed where counted."""
    n = cell["num_images"] or 1
    low, high = proportion_interval(cell["found_one"], cell["num_images"])
    interval = f"{percent(low)}-{percent(high)}" if cell["num_images"] else "n/a"
    shares = {"photos": cell["num_images"], "found as one animal": percent(cell["found_one"] / n),
              "95% interval": interval, "species right": percent(cell["species_right"] / n)}  # fmt: skip
    if "breed_right" in cell:
        shares["breed right"] = percent(cell["breed_right"] / n)
    return shares


def scene_frame(groups: Mapping[str, Mapping[str, Mapping[str, int]]]) -> pd.DataFrame:
    """One row per group of scenes (a report's kinds, or :func:`~petnet.evaluation.report.scenes_by_background`'s
    backgrounds) and size band, with :func:`_scene_shares`."""
    return pd.DataFrame([{"scene": group.replace("_", "-"), "pet size (of the short side)": band, **_scene_shares(cell)}
                         for group, bands in groups.items() for band, cell in bands.items()])  # fmt: skip


def show_scenes(report: dict) -> None:
    """Where does the pet check fail? Pets that do not fill the frame, and other animals."""
    detection = report.get("detection") or {}
    if "scenes" not in detection:
        st.info("This report has no pets in scenes; regenerate it with `python -m petnet.evaluate`.")
        return
    st.subheader("Is a pet found when it does not fill the frame?")
    st.dataframe(scene_frame(detection["scenes"]), hide_index=True, key="scenes_table")
    backgrounds = scenes_by_background(detection["scenes"])
    if backgrounds:
        st.caption("Both kinds together, apart for the scenes that are photos of another animal:")
        st.dataframe(scene_frame(backgrounds), hide_index=True, key="scene_backgrounds_table")
    parts = [(detection.get(key) or {}, label) for key, label in
             (("other_animals", "other animals"), ("other_non_pets", "other photos without a cat or dog"))]  # fmt: skip
    st.caption(
        "Accepted as a pet: "
        + "; ".join(f"{label} {part['accepted']} of {part['num_images']}" for part, label in parts if part)
        + f" ({detection.get('non_pet_part', 'non-pet photos')})."
    )


def show_per_breed(report: dict, species: tuple[str, ...], metric: str) -> None:
    frame = per_breed_frame(report["breed"]["per_class"])
    frame = frame[frame["species"].isin(species)]
    st.plotly_chart(per_breed_bar_figure(frame, metric), key="per_breed_bar")
    progress = {
        name: st.column_config.ProgressColumn(name, format="%.3f", min_value=0.0, max_value=1.0)
        for name in ("precision", "recall", "f1")
    }
    st.dataframe(
        frame.sort_values(metric),
        hide_index=True,
        column_config=progress,
        key="per_breed_table",
    )


def show_segmentation(report: dict, normalise: bool) -> None:
    segmentation = report["segmentation"]
    per_class = " · ".join(f"{name} {score(value)}" for name, value in segmentation["per_class_iou"].items())
    st.caption(
        f"{report['num_images_with_trimap']:,} images with trimaps · {segmentation.get('resolution', '')} · "
        f"pixel accuracy {percent(segmentation['pixel_accuracy'])} · mean Dice {score(segmentation['mean_dice'])}  \n"
        f"IoU per class: {per_class} · **binary pet IoU** (pet + boundary against background) "
        f"{score(segmentation.get('binary_pet_iou'))}"
    )
    left, right = st.columns(2)
    left.plotly_chart(
        mask_metrics_figure(
            segmentation["per_class_iou"], segmentation["per_class_dice"], segmentation.get("binary_pet_iou")
        ),
        key="mask_iou",
    )
    right.plotly_chart(
        confusion_heatmap(
            segmentation["confusion"],
            report["labels"]["mask_classes"],
            normalise=normalise,
            title="Pixel confusion",
            annotate=True,
        ),
        key="pixel_confusion",
    )


def lowest_iou_cases(report: dict) -> tuple[list[dict], bool]:
    """Images with the lowest per-image IoU, lowest first, and whether the report ranked them itself.

    Reports with ``segmentation.lowest_iou`` list them over the whole split; older ones only over
    the worst cases (picked mostly by classification), so the gallery says so.
    """
    listed = report["segmentation"].get("lowest_iou")
    if listed:
        return list(listed), True
    scored = [case for case in report["worst_cases"] if is_finite(case.get("iou")) and case.get("predicted_mask")]
    return sorted(scored, key=lambda case: case["iou"]), False


def show_mask_gallery(report: dict, report_path: Path, images_root: Path | None, typed: str, count: int) -> None:
    """Where does the mask fail? The lowest-IoU images, true trimap beside predicted mask."""
    st.subheader("Where does the mask fail?")
    cases, ranked_by_report = lowest_iou_cases(report)
    if not cases:
        st.info("The report lists no images with a per-image IoU.")
        return
    st.caption(
        ("Lowest per-image IoU of the split" if ranked_by_report else
         "Lowest per-image IoU among the report's worst cases (regenerate the report for a ranking over the split)")
        + " · truth | prediction (orange = pet, blue = background, yellow = boundary)"
    )  # fmt: skip
    if images_root is None or not (images_root / cases[0]["image"]).is_file():
        show_images_prompt(typed, report)
        return
    for index, case in enumerate(cases[:count]):
        if index % 3 == 0:
            row = st.columns(3)
        with row[index % 3].container(border=True):
            st.markdown(f"**{case['name']}** · image IoU {score(case.get('iou'))}")
            _, truth, predicted = case_pictures(case, report_path, images_root)
            for column, picture, caption in zip(st.columns(2), (truth, predicted), ("truth", "predicted"), strict=True):
                if picture is None:
                    column.caption(f"no {caption} mask")
                else:
                    column.image(picture, caption=caption, width="stretch")


def show_training(report_path: Path) -> None:
    """Curves of the run that trained the model, or a pick of runs when its weights average several."""
    runs_dir = report_path.parent / TRAINING_RUNS_DIR
    logs = sorted(runs_dir.glob(f"*/{TRAINING_LOG_NAME}"))
    if not logs:
        st.info(f"No training logs next to the report ({runs_dir}/<run>/{TRAINING_LOG_NAME}); copy a run's "
                f"{TRAINING_LOG_NAME} there to see its curves.")  # fmt: skip
        return
    log_path = logs[0] if len(logs) == 1 else st.selectbox("Training run", logs, format_func=lambda p: p.parent.name)
    try:
        log = _cached_csv(str(log_path), _mtime_ns(log_path))
    except (OSError, ValueError) as error:
        st.warning(f"Could not read {log_path}: {error}")
        return
    if "epoch" not in log:
        st.warning(f"{log_path} has no `epoch` column; expected the log written by `python -m petnet.training.train`.")
        return
    left, right = st.columns(2)
    left.plotly_chart(loss_curves_figure(log), key="loss_curves")
    right.plotly_chart(validation_curves_figure(log), key="validation_curves")
    st.caption(
        "Training validation ranks breeds over all 37 classes; the headline cards rank only the breeds of "
        "the predicted species, as `predict` does, so their top-3 can differ slightly (top-1 is the same "
        "in reports written since the top breed names the species)."
    )


def _breed_label(report: dict, name: str) -> str:
    labels = report["labels"]
    return dict(zip(labels["breeds"], labels["breed_display_names"], strict=True)).get(name, name)


def worst_cases_frame(report: dict, cases: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": [c["name"] for c in cases],
            "true breed": [_breed_label(report, c["true_breed"]) for c in cases],
            "predicted (top-3)": [", ".join(_breed_label(report, b) for b in c["predicted_breeds"]) for c in cases],
            "p(true breed)": [c.get("true_breed_probability") for c in cases],
            "species": [f"{c['true_species']} → {c['predicted_species']}" for c in cases],
            "image IoU": [c.get("iou") for c in cases],
            "why": [", ".join(c.get("reasons", [])) for c in cases],
        }
    )


def _overlay_or_none(photo: Image.Image, mask_path: Path | None, reader) -> Image.Image | None:
    if mask_path is None or not mask_path.is_file():
        return None
    try:
        return overlay_mask(photo, reader(mask_path))
    except (OSError, ValueError, DatasetError):
        return None


def show_worst_cases(report: dict, report_path: Path, images_root: Path | None, typed: str, count: int) -> None:
    cases = report["worst_cases"][:count]
    if not cases:
        st.info("The report lists no worst cases.")
        return
    reachable = images_root is not None and (images_root / cases[0]["image"]).is_file()
    if not reachable:
        show_images_prompt(typed, report)
        st.dataframe(worst_cases_frame(report, cases), hide_index=True, key="worst_cases_table")
        return
    st.caption("Photo · true trimap · predicted mask (orange = pet, blue = background, yellow = boundary)")
    for index, case in enumerate(cases):
        if index % 2 == 0:
            row = st.columns(2)
        with row[index % 2].container(border=True):
            show_case(report, case, report_path, images_root)


def show_case(report: dict, case: dict, report_path: Path, images_root: Path) -> None:
    """One worst case: what was predicted against the truth, then photo, true and predicted mask."""
    guesses = ", ".join(_breed_label(report, b) for b in case["predicted_breeds"])
    st.markdown(
        f"**{case['name']}** · {', '.join(case.get('reasons', []))}  \n"
        f"true **{_breed_label(report, case['true_breed'])}** ({case['true_species']}) · "
        f"predicted {guesses} ({case['predicted_species']})  \n"
        f"p(true breed) {score(case.get('true_breed_probability'))} · image IoU {score(case.get('iou'))}"
    )
    photo, truth, predicted = case_pictures(case, report_path, images_root)
    if photo is None:
        st.warning(f"Cannot open {images_root / case['image']}.")
        return
    for column, picture, caption in zip(
        st.columns(3), (photo, truth, predicted), ("photo", "truth", "predicted"), strict=True
    ):
        if picture is None:
            column.caption(f"no {caption} mask")
        else:
            column.image(picture, caption=caption, width="stretch")


def case_pictures(
    case: dict, report_path: Path, images_root: Path
) -> tuple[Image.Image | None, Image.Image | None, Image.Image | None]:
    """A listed image's photo, true-trimap overlay and predicted-mask overlay (None where missing)."""
    try:
        photo = Image.open(images_root / case["image"]).convert("RGB")
    except OSError:
        return None, None, None
    truth_path = images_root / case["trimap"] if case.get("trimap") else None
    predicted_path = report_path.parent / case["predicted_mask"] if case.get("predicted_mask") else None
    return (
        photo,
        _overlay_or_none(photo, truth_path, read_trimap),
        _overlay_or_none(photo, predicted_path, lambda path: np.asarray(Image.open(path))),
    )


def pick_report(options: DashboardOptions) -> Path | None:
    """The pinned report, or the sidebar's choice among the reports folder (test first when present)."""
    if options.report is not None:
        st.sidebar.caption(f"Report: `{options.report}`")
        return options.report
    reports = find_reports(options.reports_dir)
    if not reports:
        st.error(
            f"No evaluation reports in {options.reports_dir}; run `python -m petnet.evaluate --split test` "
            "or pass `-- --report PATH`."
        )
        return None
    names = [p.stem for p in reports]
    default = names.index("test") if "test" in names else 0
    choice = st.sidebar.selectbox("Report (split)", names, index=default) if len(reports) > 1 else names[0]
    return reports[names.index(choice)]


def main() -> None:
    st.set_page_config(page_title="PetNet evaluation", page_icon="🐾", layout="wide")
    options = parse_options(sys.argv[1:], os.environ)
    st.title("PetNet evaluation")
    path = pick_report(options)
    if path is None:
        return
    try:
        report = read_report(path)
    except ReportError as error:
        st.error(str(error))
        return
    with st.sidebar:
        normalise = st.toggle("Normalise confusion rows", value=True)
        filters = species_filters(report)
        species = filters[st.radio("Breeds", list(filters), horizontal=True)]
        metric = st.radio("Per-breed metric", ["f1", "precision", "recall"], horizontal=True)
        listed = len(report["worst_cases"])
        count = st.slider("Worst cases shown", 1, listed, min(8, listed)) if listed > 1 else listed
        typed_root = st.text_input(
            "Dataset folder (images)",
            str(options.images_root or ""),
            placeholder=str(OXFORD_PET_ROOT),
        )
    images_root = resolve_images_root(typed_root, report)
    try:
        st.caption(split_caption(report))
        show_headline(report)
        breeds, per_breed, calibration, scenes, segmentation, training, worst = st.tabs(
            ["Species & breeds", "Per breed", "Calibration", "Pets in scenes", "Segmentation", "Training", "Worst cases"]
        )
        with breeds:
            show_classification(report, normalise, species)
        with per_breed:
            show_per_breed(report, species, metric)
        with calibration:
            show_calibration(report)
        with scenes:
            show_scenes(report)
        with segmentation:
            show_segmentation(report, normalise)
            show_mask_gallery(report, path, images_root, typed_root, count)
        with training:
            show_training(path)
        with worst:
            show_worst_cases(report, path, images_root, typed_root, count)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        st.error(
            f"{path} passed the schema check but could not be drawn ({type(error).__name__}: {error}); "
            "regenerate it with `python -m petnet.evaluate`."
        )


if __name__ == "__main__":  # also true under `streamlit run` and AppTest, false on import
    main()
