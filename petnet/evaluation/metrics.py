"""Pure metric functions over labels and confusion matrices (rows = truth, columns = prediction).

The evaluator and the training loop only accumulate confusion matrices; every number in a report
is derived here, so each definition exists once and is unit-tested against hand-computed cases.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """Counts of (truth, predicted) pairs as an int64 ``num_classes x num_classes`` matrix.

    Pairs whose truth is ``ignore_index`` are skipped. Any other label outside ``[0, num_classes)``
    is an error: flattened indexing would otherwise count it silently in a neighbouring cell.
    """
    truth = np.asarray(truth).ravel().astype(np.int64)
    predicted = np.asarray(predicted).ravel().astype(np.int64)
    if ignore_index is not None:
        keep = truth != ignore_index
        truth, predicted = truth[keep], predicted[keep]
    for name, labels in (("truth", truth), ("predicted", predicted)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} labels out of range [0, {num_classes}): {sorted(set(labels.tolist()))[:10]}")
    return np.bincount(truth * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise division that yields NaN where the denominator is 0 (metric undefined)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def accuracy(confusion: np.ndarray) -> float:
    """Fraction of samples on the diagonal."""
    return float(_safe_divide(np.trace(confusion), confusion.sum()))


def precision_recall_f1(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 (NaN where a class is never predicted / never true)."""
    true_positive = np.diag(confusion).astype(np.float64)
    precision = _safe_divide(true_positive, confusion.sum(axis=0))
    recall = _safe_divide(true_positive, confusion.sum(axis=1))
    f1 = _safe_divide(2 * true_positive, confusion.sum(axis=0) + confusion.sum(axis=1))
    return precision, recall, f1


def weighted_f1(confusion: np.ndarray) -> float:
    """F1 averaged over classes weighted by their true counts (classes absent from truth weigh 0)."""
    support = confusion.sum(axis=1)
    _, _, f1 = precision_recall_f1(confusion)
    return float(np.sum(np.nan_to_num(f1) * support) / support.sum()) if support.sum() else float("nan")


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """Intersection over union per class: TP / (TP + FP + FN)."""
    true_positive = np.diag(confusion)
    return _safe_divide(true_positive, confusion.sum(axis=0) + confusion.sum(axis=1) - true_positive)


def dice_per_class(confusion: np.ndarray) -> np.ndarray:
    """Dice (pixel F1) per class: 2 TP / (2 TP + FP + FN)."""
    return precision_recall_f1(confusion)[2]


def binary_pet_iou(confusion: np.ndarray, background_index: int) -> float:
    """IoU of "animal" (every class but background) against background, from a multi-class pixel
    confusion: the binary score segmentation_models.pytorch's Oxford-IIIT Pet example reports
    (trimap pet + boundary as foreground, IoU over all pixels of the dataset); NaN when undefined."""
    foreground = np.ones(len(confusion), dtype=bool)
    foreground[background_index] = False
    intersection = confusion[np.ix_(foreground, foreground)].sum()
    union = confusion[foreground, :].sum() + confusion[:, foreground].sum() - intersection
    return float(intersection / union) if union else float("nan")


def top_k_accuracy(scores: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the ``k`` highest scores (ties: lower index first;
    NaN when there are no rows)."""
    if len(truth) == 0:
        return float("nan")
    top_k = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top_k == np.asarray(truth)[:, None], axis=1)))


def log_loss(logits: np.ndarray, truth: np.ndarray) -> float:
    """Mean negative log softmax probability of the true class, in nats (NaN when there are no rows):
    how much probability a model puts on the right answer, which accuracy does not see; what breaks a
    tie between models of equal accuracy."""
    if len(truth) == 0:
        return float("nan")
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probabilities[np.arange(len(truth)), np.asarray(truth)]))


def species_of_top_breed(breed_scores: np.ndarray, breed_species: np.ndarray) -> np.ndarray:
    """(N,) species index of each row's highest-scoring breed (``breed_species[j]`` is breed j's
    species): the species PetNet names, as evaluation and training's validation both score it."""
    return np.asarray(breed_species)[np.argmax(np.asarray(breed_scores), axis=1)]


def ranked_within_species(breed_scores: np.ndarray, breed_species: np.ndarray) -> np.ndarray:
    """Breed scores with every breed of another species than the named one at -inf: the ranking
    PetNet answers with (its top-k breeds are of the species it names), for :func:`top_k_accuracy`."""
    scores = np.asarray(breed_scores, dtype=np.float64)
    named = species_of_top_breed(scores, breed_species)
    return np.where(np.asarray(breed_species)[None, :] == named[:, None], scores, -np.inf)


def most_confused_pairs(confusion: np.ndarray, top: int = 10) -> list[tuple[int, int, int]]:
    """Off-diagonal (truth, predicted, count) cells with the largest counts, largest first."""
    off_diagonal = confusion.copy()
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(-off_diagonal, axis=None, kind="stable")[:top]
    cells = [(*np.unravel_index(i, confusion.shape), off_diagonal.flat[i]) for i in order]
    return [(int(t), int(p), int(c)) for t, p, c in cells if c > 0]


def binary_auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative
    (ties count half); NaN without both classes. Mann-Whitney U over average ranks."""
    scores, positives = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average_rank = first + (counts + 1) / 2  # 1-based average rank of each tie group
    ranks[order] = np.repeat(average_rank, counts)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliability_bins(confidences: np.ndarray, correct: np.ndarray, bins: int = 10) -> list[dict]:
    """Shown confidence against how often it is right, in ``bins`` equal-width bins of [0, 1] (the
    last one closed): per bin its edges, ``count``, mean ``confidence`` and ``accuracy`` (NaN when
    empty). What a reliability diagram draws (Guo et al., ICML 2017)."""
    confidences, correct = np.asarray(confidences, dtype=np.float64), np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidences, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        rows.append({
            "lower": round(float(edges[b]), 6), "upper": round(float(edges[b + 1]), 6), "count": count,
            "confidence": float(confidences[inside].mean()) if count else float("nan"),
            "accuracy": float(correct[inside].mean()) if count else float("nan"),
        })  # fmt: skip
    return rows


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE: the gap between mean confidence and accuracy in each of ``bins`` equal-width bins,
    weighted by the bin's share of the samples (NaN without samples)."""
    rows = reliability_bins(confidences, correct, bins)
    total = sum(row["count"] for row in rows)
    if not total:
        return float("nan")
    return float(sum(row["count"] * abs(row["confidence"] - row["accuracy"]) for row in rows if row["count"]) / total)


def proportion_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a share ``successes`` / ``trials`` (NaN, NaN without trials): how far a
    count of a few hundred scenes can be from the rate it estimates (Wilson 1927; ``scipy.stats``)."""
    if trials == 0:
        return float("nan"), float("nan")
    interval = binomtest(successes, trials).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)
