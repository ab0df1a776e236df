"""Dashboard figure builders: shapes, ordering and values, checked without running Streamlit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from report_factory import write_training_log

from app.dashboard_charts import (
    BINARY_PET_LABEL,
    breed_confusion_figure,
    confusion_heatmap,
    loss_curves_figure,
    mask_metrics_figure,
    most_confused_figure,
    per_breed_bar_figure,
    per_breed_frame,
    reliability_figure,
    row_normalised,
    species_block_order,
    validation_curves_figure,
)
from petnet.labels import BREED_NAMES, BREED_SPECIES, BREEDS, MASK_CLASSES

DISPLAY_NAMES = [b.display_name for b in BREEDS]
CAT_COUNT = BREED_SPECIES.count("cat")


@pytest.fixture
def breed_counts() -> np.ndarray:
    """A 37x37 matrix whose cell (t, p) = 100 * t + p, so every reordering is traceable."""
    n = len(BREED_NAMES)
    return np.arange(n)[:, None] * 100 + np.arange(n)[None, :]


def test_species_block_order_puts_cats_first_in_official_order() -> None:
    order = species_block_order(BREED_SPECIES)
    assert sorted(order) == list(range(37))
    assert CAT_COUNT == 12
    assert all(BREED_SPECIES[i] == "cat" for i in order[:CAT_COUNT])
    assert all(BREED_SPECIES[i] == "dog" for i in order[CAT_COUNT:])
    assert order[:CAT_COUNT] == sorted(order[:CAT_COUNT]) and order[CAT_COUNT:] == sorted(order[CAT_COUNT:])


def test_row_normalised_rows_sum_to_one_and_empty_rows_stay_zero() -> None:
    fractions = row_normalised(np.array([[3, 1], [0, 0]]))
    np.testing.assert_allclose(fractions, [[0.75, 0.25], [0.0, 0.0]])


def test_breed_confusion_raw_is_37x37_reordered_cats_first(breed_counts: np.ndarray) -> None:
    figure = breed_confusion_figure(breed_counts, DISPLAY_NAMES, BREED_SPECIES, normalise=False)
    heatmap = figure.data[0]
    assert isinstance(heatmap, go.Heatmap)
    z = np.asarray(heatmap.z)
    assert z.shape == (37, 37)
    order = species_block_order(BREED_SPECIES)
    np.testing.assert_array_equal(z, breed_counts[np.ix_(order, order)])
    assert list(heatmap.x) == list(heatmap.y) == [DISPLAY_NAMES[i] for i in order]
    assert list(heatmap.x[:CAT_COUNT]) == [b.display_name for b in BREEDS if b.species == "cat"]
    assert len(figure.layout.shapes) == 2  # the cat/dog block boundary, once per axis
    assert figure.layout.shapes[0].x0 == CAT_COUNT - 0.5


def test_breed_confusion_normalised_rows_sum_to_one_and_hover_keeps_counts(breed_counts: np.ndarray) -> None:
    heatmap = breed_confusion_figure(breed_counts, DISPLAY_NAMES, BREED_SPECIES, normalise=True).data[0]
    np.testing.assert_allclose(np.asarray(heatmap.z).sum(axis=1), 1.0)
    order = species_block_order(BREED_SPECIES)
    counts = np.asarray(heatmap.customdata)[..., 0]
    np.testing.assert_array_equal(counts, breed_counts[np.ix_(order, order)])
    assert "true: %{y}" in heatmap.hovertemplate and "predicted: %{x}" in heatmap.hovertemplate
    assert "count: %{customdata[0]}" in heatmap.hovertemplate


def test_breed_confusion_can_show_one_species_block(breed_counts: np.ndarray) -> None:
    figure = breed_confusion_figure(breed_counts, DISPLAY_NAMES, BREED_SPECIES, normalise=False, species=("dog",))
    assert np.asarray(figure.data[0].z).shape == (37 - CAT_COUNT, 37 - CAT_COUNT)
    assert len(figure.layout.shapes) == 0


def test_species_heatmap_annotates_cells() -> None:
    figure = confusion_heatmap([[90, 10], [5, 95]], ["cat", "dog"], normalise=False, title="t", annotate=True)
    assert np.asarray(figure.data[0].z).tolist() == [[90, 10], [5, 95]]
    assert figure.data[0].texttemplate == "%{z}"
    assert figure.layout.yaxis.autorange == "reversed"  # truth rows read top to bottom like the matrix


def _per_class() -> list[dict]:
    return [
        {"name": "Bengal", "display_name": "Bengal", "species": "cat", "precision": 0.5, "recall": 0.9, "f1": 0.6,
         "support": 10},
        {"name": "pug", "display_name": "Pug", "species": "dog", "precision": None, "recall": 0.0, "f1": None,
         "support": 3},
        {"name": "beagle", "display_name": "Beagle", "species": "dog", "precision": 0.9, "recall": 0.8, "f1": 0.85,
         "support": 7},
    ]  # fmt: skip


def test_per_breed_frame_turns_null_metrics_into_nan() -> None:
    frame = per_breed_frame(_per_class())
    assert list(frame.columns) == ["breed", "species", "precision", "recall", "f1", "support"]
    assert frame["f1"].dtype == np.float64 and pd.isna(frame.loc[1, "f1"])


def test_per_breed_bar_is_sorted_worst_first_and_coloured_by_species() -> None:
    figure = per_breed_bar_figure(per_breed_frame(_per_class()), "f1")
    bar = figure.data[0]
    assert list(bar.x) == ["Pug", "Bengal", "Beagle"]  # undefined F1 first, then ascending
    assert bar.marker.color[1] != bar.marker.color[2]


def test_most_confused_lists_largest_pair_on_top() -> None:
    pairs = [{"true": "beagle", "predicted": "pug", "count": 9}, {"true": "Bengal", "predicted": "Birman", "count": 4}]
    bar = most_confused_figure(pairs, {"beagle": "Beagle", "pug": "Pug"}).data[0]
    assert list(bar.x) == [4, 9]  # plotly draws horizontal bars bottom-up
    assert bar.y[-1] == "Beagle → Pug" and bar.y[0] == "Bengal → Birman"


def test_mask_metrics_has_iou_and_dice_per_class() -> None:
    iou = dict(zip(MASK_CLASSES, (0.8, 0.9, None), strict=True))
    figure = mask_metrics_figure(iou, dict(zip(MASK_CLASSES, (0.85, 0.95, 0.7), strict=True)))
    assert [trace.name for trace in figure.data] == ["IoU", "Dice"]
    assert list(figure.data[0].x) == list(MASK_CLASSES)
    assert list(figure.data[0].text) == ["0.800", "0.900", "n/a"]


def test_mask_metrics_puts_binary_pet_iou_beside_the_classes() -> None:
    iou = dict(zip(MASK_CLASSES, (0.8, 0.9, 0.6), strict=True))
    figure = mask_metrics_figure(iou, iou, binary_pet_iou=0.93)
    assert list(figure.data[0].x) == [*MASK_CLASSES, BINARY_PET_LABEL]
    assert figure.data[0].text[-1] == "0.930" and list(figure.data[1].x) == list(MASK_CLASSES)


def test_training_curves_plot_every_logged_task_and_metric(tmp_path: Path) -> None:
    log = pd.read_csv(write_training_log(tmp_path / "training_log.csv", epochs=5))
    losses = loss_curves_figure(log)
    assert len(losses.data) == 10  # 5 tasks x train/val
    assert list(losses.data[0].x) == list(range(5))
    metrics = validation_curves_figure(log)
    assert [t.name for t in metrics.data] == ["species accuracy", "breed top-1 (all 37)", "breed top-3 (all 37)", "mean IoU",
                                              "worst-class IoU"]  # fmt: skip
    assert len(loss_curves_figure(log[["epoch", "train_total"]]).data) == 1


def test_reliability_figure_draws_the_diagonal_and_one_point_per_filled_bin() -> None:
    bins = [{"lower": i / 10, "upper": (i + 1) / 10, "count": c, "confidence": (i + 0.5) / 10 if c else None,
             "accuracy": 0.9 if c else None} for i, c in enumerate([0] * 8 + [3, 40])]  # fmt: skip
    figure = reliability_figure({"species": {"ece": 0.02, "bins": bins}, "first breed": {"ece": 0.03, "bins": bins}})
    assert [trace.name for trace in figure.data] == ["perfect", "species (ECE 0.020)", "first breed (ECE 0.030)"]
    assert list(figure.data[1].x) == [0.85, 0.95] and list(figure.data[1].y) == [0.9, 0.9]
