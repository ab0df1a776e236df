"""Plotly figure and table builders for the evaluation dashboard.

Pure functions from report data (lists, arrays, DataFrames) to figures, with no Streamlit import,
so every chart can be unit-tested without a running app and reused in notebooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from petnet.evaluation.report import score

SPECIES_COLORS: dict[str, str] = {"cat": "#EF553B", "dog": "#636EFA"}
"""One colour per species, shared by every breed chart so cats and dogs read the same everywhere."""

CONFUSION_COLORSCALE = "Blues"


def species_block_order(breed_species: Sequence[str], species_order: Sequence[str] | None = None) -> list[int]:
    """Breed indices grouped by species (cats block, then dogs block), official order inside a block.

    Grouping makes the cross-species cells of the confusion matrix two visible off-diagonal blocks.
    ``species_order`` defaults to the species in the order they first appear in ``breed_species``.
    """
    species_order = species_order or list(dict.fromkeys(breed_species))
    return [i for species in species_order for i, s in enumerate(breed_species) if s == species]


def row_normalised(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its total (recall view); rows without samples stay 0 instead of NaN."""
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)


def confusion_heatmap(
    confusion: np.ndarray | Sequence[Sequence[int]],
    labels: Sequence[str],
    *,
    normalise: bool,
    title: str,
    order: Sequence[int] | None = None,
    annotate: bool = False,
) -> go.Figure:
    """Heatmap of a confusion matrix (rows = truth) whose hover names the true and predicted class.

    ``normalise`` colours by row fraction; the hover always shows the raw count as well, so the
    picture answers "how often" and the tooltip "how many".
    """
    counts = np.asarray(confusion, dtype=np.int64)
    order = list(range(len(labels))) if order is None else list(order)
    counts = counts[np.ix_(order, order)]
    names = [labels[i] for i in order]
    fractions = row_normalised(counts)
    z = fractions if normalise else counts
    customdata = np.dstack([counts, fractions])
    heatmap = go.Heatmap(
        z=z,
        x=names,
        y=names,
        customdata=customdata,
        colorscale=CONFUSION_COLORSCALE,
        zmin=0,
        zmax=1 if normalise else None,
        colorbar={"title": {"text": "row fraction" if normalise else "count"}},
        hovertemplate="true: %{y}<br>predicted: %{x}<br>count: %{customdata[0]}"
        "<br>share of true row: %{customdata[1]:.1%}<extra></extra>",
        texttemplate=("%{z:.2f}" if normalise else "%{z}") if annotate else None,
    )
    figure = go.Figure(heatmap)
    figure.update_layout(
        title={"text": title},
        xaxis={"title": {"text": "predicted"}, "side": "bottom", "tickangle": -45},
        yaxis={"title": {"text": "true"}, "autorange": "reversed"},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure


def breed_confusion_figure(
    confusion: np.ndarray | Sequence[Sequence[int]],
    display_names: Sequence[str],
    breed_species: Sequence[str],
    *,
    normalise: bool,
    species: Sequence[str] | None = None,
) -> go.Figure:
    """Breed confusion ordered cats block then dogs block, restricted to ``species``.

    With both species shown, dotted lines mark the block boundary so cross-species mistakes stand out.
    """
    species = species or list(dict.fromkeys(breed_species))
    order = species_block_order(breed_species, species)
    figure = confusion_heatmap(
        confusion,
        display_names,
        normalise=normalise,
        title="Breed confusion",
        order=order,
    )
    first_block = sum(1 for i in order if breed_species[i] == species[0])
    if 0 < first_block < len(order):
        edge, end = first_block - 0.5, len(order) - 0.5
        for line in (
            {"x0": edge, "x1": edge, "y0": -0.5, "y1": end},
            {"y0": edge, "y1": edge, "x0": -0.5, "x1": end},
        ):
            figure.add_shape(type="line", line={"color": "#888", "width": 1, "dash": "dot"}, **line)
    figure.update_layout(
        height=max(420, 22 * len(order) + 160),
        xaxis={"tickfont": {"size": 9}, "dtick": 1},  # every breed named, not plotly's every other one
        yaxis={"tickfont": {"size": 9}, "dtick": 1},
    )
    return figure


def per_breed_frame(per_class: Sequence[Mapping]) -> pd.DataFrame:
    """The report's per-breed metrics as a table (NaN where a metric is undefined)."""
    frame = pd.DataFrame(
        {
            "breed": [row["display_name"] for row in per_class],
            "species": [row["species"] for row in per_class],
            "precision": [row["precision"] for row in per_class],
            "recall": [row["recall"] for row in per_class],
            "f1": [row["f1"] for row in per_class],
            "support": [row["support"] for row in per_class],
        }
    )
    for column in ("precision", "recall", "f1"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def per_breed_bar_figure(frame: pd.DataFrame, metric: str) -> go.Figure:
    """One bar per breed for ``metric``, worst first, coloured by species."""
    ordered = frame.sort_values(metric, ascending=True, na_position="first")
    figure = go.Figure(
        go.Bar(
            x=ordered["breed"],
            y=ordered[metric],
            marker_color=[SPECIES_COLORS.get(s, "#999") for s in ordered["species"]],
            customdata=np.column_stack([ordered["species"], ordered["support"]]),
            hovertemplate="%{x} (%{customdata[0]})<br>"
            + metric
            + ": %{y:.3f}<br>support: %{customdata[1]}<extra></extra>",
        )
    )
    figure.update_layout(
        title={"text": f"Per-breed {metric}, worst first (red = cat, blue = dog)"},
        yaxis={"range": [0, 1.02], "title": {"text": metric}},
        xaxis={"tickangle": -45, "tickfont": {"size": 10}},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure


def most_confused_figure(pairs: Sequence[Mapping], display_of: Mapping[str, str], top: int = 10) -> go.Figure:
    """Horizontal bars for the most frequent (true -> predicted) breed mistakes, largest on top."""
    shown = list(pairs)[:top][::-1]
    labels = [
        f"{display_of.get(p['true'], p['true'])} → {display_of.get(p['predicted'], p['predicted'])}" for p in shown
    ]
    figure = go.Figure(
        go.Bar(
            x=[p["count"] for p in shown],
            y=labels,
            orientation="h",
            marker_color="#636EFA",
            hovertemplate="%{y}<br>%{x} images<extra></extra>",
        )
    )
    figure.update_layout(
        title={"text": "Most confused pairs (true → predicted)"},
        xaxis={"title": {"text": "images"}},
        height=max(260, 40 * len(shown) + 90),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure


BINARY_PET_LABEL = "pet vs background (binary)"
"""Category of the binary pet IoU (pet + boundary pixels against background) in the mask chart."""


def mask_metrics_figure(
    per_class_iou: Mapping[str, float | None],
    per_class_dice: Mapping[str, float | None],
    binary_pet_iou: float | None = None,
) -> go.Figure:
    """IoU and Dice per mask class side by side (pet / background / boundary), and the binary pet IoU
    beside them when the report has it: the figure a cut-out's quality follows."""
    classes = list(per_class_iou)
    iou = dict(per_class_iou)
    if binary_pet_iou is not None:
        iou[BINARY_PET_LABEL] = binary_pet_iou
    figure = go.Figure(
        [
            go.Bar(
                name=name,
                x=list(values),
                y=list(values.values()),
                text=[score(v) for v in values.values()],
                marker_color=color,
                hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>",
            )
            for name, values, color in (
                ("IoU", iou, "#636EFA"),
                ("Dice", {c: per_class_dice.get(c) for c in classes}, "#00CC96"),
            )
        ]
    )
    figure.update_layout(
        title={"text": "Mask quality per class"},
        barmode="group",
        yaxis={"range": [0, 1.05]},
        xaxis={"categoryorder": "array", "categoryarray": list(iou)},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "y": -0.15},
    )
    return figure


def reliability_figure(heads: Mapping[str, Mapping]) -> go.Figure:
    """Reliability diagram (Guo et al. 2017): for each head (a report's ``calibration`` entries,
    keyed by the name to show), how often an answer was right against the confidence shown, one
    point per non-empty bin sized by its photos; the diagonal is perfect calibration."""
    figure = go.Figure(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#888"}, name="perfect", hoverinfo="skip")
    )
    for (name, head), color in zip(heads.items(), ("#636EFA", "#EF553B"), strict=False):
        bins = [b for b in head["bins"] if b["count"]]
        figure.add_trace(
            go.Scatter(
                x=[b["confidence"] for b in bins],
                y=[b["accuracy"] for b in bins],
                mode="lines+markers",
                name=f"{name} (ECE {score(head['ece'])})",
                marker={"size": [6 + 4 * np.log1p(b["count"]) for b in bins], "color": color},
                line={"color": color},
                customdata=[[b["lower"], b["upper"], b["count"]] for b in bins],
                hovertemplate="shown %{customdata[0]:.0%}-%{customdata[1]:.0%}: %{customdata[2]} photos,"
                " %{x:.1%} shown on average, %{y:.1%} right<extra>" + name + "</extra>",
            )
        )
    figure.update_layout(
        title={"text": "Is the shown confidence how often it is right?"},
        xaxis={"title": "confidence shown", "range": [0, 1.02], "tickformat": ".0%"},
        yaxis={"title": "how often right", "range": [0, 1.02], "tickformat": ".0%"},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


LOSS_TASKS: tuple[str, ...] = ("total", "species", "breed", "segmentation", "dice")
"""Loss columns of training_log.csv, written as ``train_<task>`` and ``val_<task>``."""

VALIDATION_METRICS: dict[str, str] = {
    "val_species_accuracy": "species accuracy",
    "val_breed_top1": "breed top-1 (all 37)",
    "val_breed_top3": "breed top-3 (all 37)",
    "val_mean_iou": "mean IoU",
    "val_min_iou": "worst-class IoU",
    "val_named_species_accuracy": "species accuracy (as named)",
    "val_breed_top1_accuracy": "breed top-1",
    "val_breed_top3_accuracy": "breed top-3",
    "val_mean_iou_at_input_size": "mean IoU (network size)",
    "val_min_iou_at_input_size": "worst-class IoU (network size)",
}
"""Validation columns of training_log.csv and their names. The first five are the logs of runs
before December 2026 (the species head's argmax, all 37 breeds); training now logs the last five:
species and breeds as ``petnet.evaluate`` scores them (the species of the top breed, breeds ranked
within it), and the IoUs at the network's input size, cheaper than evaluate's at each trimap's size."""


def loss_curves_figure(log: pd.DataFrame) -> go.Figure:
    """Train (solid) and validation (dotted) loss per task over epochs, one colour per task."""
    figure = go.Figure()
    palette = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A")
    for task, color in zip(LOSS_TASKS, palette, strict=True):
        for split, dash in (("train", "solid"), ("val", "dot")):
            column = f"{split}_{task}"
            if column in log:
                figure.add_scatter(
                    x=log["epoch"],
                    y=log[column],
                    name=f"{split} {task}",
                    mode="lines+markers",
                    line={"color": color, "dash": dash},
                    legendgroup=task,
                )
    figure.update_layout(
        title={"text": "Loss per task (solid = train, dotted = validation)"},
        xaxis={"title": {"text": "epoch"}},
        yaxis={"title": {"text": "loss"}},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure


def validation_curves_figure(log: pd.DataFrame) -> go.Figure:
    """Validation metrics per epoch (accuracies and IoUs share the 0-1 axis)."""
    figure = go.Figure()
    for column, label in VALIDATION_METRICS.items():
        if column in log:
            figure.add_scatter(x=log["epoch"], y=log[column], name=label, mode="lines+markers")
    figure.update_layout(
        title={"text": "Validation metrics per epoch"},
        xaxis={"title": {"text": "epoch"}},
        yaxis={"range": [0, 1.02]},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure
