"""Every metric against small cases computed by hand (rows = truth, columns = prediction)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from petnet.evaluation.metrics import (
    accuracy,
    confusion_matrix,
    dice_per_class,
    iou_per_class,
    log_loss,
    most_confused_pairs,
    precision_recall_f1,
    proportion_interval,
    top_k_accuracy,
    weighted_f1,
)

# truth     = [0, 0, 0, 1, 1, 2]
# predicted = [0, 0, 1, 1, 2, 2]
#            pred 0  1  2
# truth 0  [[    2, 1, 0],
# truth 1   [    0, 1, 1],
# truth 2   [    0, 0, 1]]
TRUTH = np.array([0, 0, 0, 1, 1, 2])
PREDICTED = np.array([0, 0, 1, 1, 2, 2])
CONFUSION = np.array([[2, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_confusion_matrix_counts_truth_by_prediction():
    result = confusion_matrix(TRUTH, PREDICTED, 3)
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, CONFUSION)


def test_confusion_matrix_flattens_2d_label_maps():
    truth = np.array([[0, 1], [1, 1]])
    predicted = np.array([[0, 1], [0, 1]])
    # (0,0) once, (1,1) twice, (1,0) once
    np.testing.assert_array_equal(confusion_matrix(truth, predicted, 2), [[1, 0], [1, 2]])


def test_confusion_matrix_skips_ignored_pixels():
    truth = np.array([0, 255, 1, 255])
    predicted = np.array([0, 1, 0, 2])
    # only (0,0) and (1,0) survive
    np.testing.assert_array_equal(confusion_matrix(truth, predicted, 3, ignore_index=255), [[1, 0, 0], [1, 0, 0], [0, 0, 0]])


def test_confusion_matrix_of_nothing_is_zero():
    np.testing.assert_array_equal(confusion_matrix(np.array([255, 255]), np.array([0, 1]), 2, ignore_index=255), np.zeros((2, 2)))


def test_confusion_matrix_rejects_labels_out_of_range():
    # label 3 with 3 classes would otherwise be silently counted in the next row
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix(np.array([0, 1]), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix(np.array([0, -1]), np.array([0, 1]), 3)


def test_accuracy_is_diagonal_fraction():
    # diagonal 2 + 1 + 1 = 4 of 6
    assert accuracy(CONFUSION) == pytest.approx(4 / 6)


def test_accuracy_of_empty_matrix_is_nan():
    assert math.isnan(accuracy(np.zeros((2, 2), dtype=np.int64)))


def test_precision_recall_f1_by_hand():
    precision, recall, f1 = precision_recall_f1(CONFUSION)
    # precision = TP / column sums = 2/2, 1/2, 1/2
    np.testing.assert_allclose(precision, [1.0, 0.5, 0.5])
    # recall = TP / row sums = 2/3, 1/2, 1/1
    np.testing.assert_allclose(recall, [2 / 3, 0.5, 1.0])
    # F1 = 2TP / (row + column): 4/5, 2/4, 2/3
    np.testing.assert_allclose(f1, [0.8, 0.5, 2 / 3])


def test_precision_recall_f1_undefined_classes_are_nan():
    # class 2 never true and never predicted; class 1 predicted but never true
    confusion = np.array([[1, 1, 0], [0, 0, 0], [0, 0, 0]])
    precision, recall, f1 = precision_recall_f1(confusion)
    np.testing.assert_allclose(precision, [1.0, 0.0, np.nan])  # class 1: 0 TP of 1 predicted
    np.testing.assert_allclose(recall, [0.5, np.nan, np.nan])
    np.testing.assert_allclose(f1, [2 / 3, 0.0, np.nan])  # class 0: 2*1 / (2 + 1)


def test_weighted_f1_weights_by_support():
    # supports 3, 2, 1 -> (3 * 0.8 + 2 * 0.5 + 1 * 2/3) / 6
    assert weighted_f1(CONFUSION) == pytest.approx((2.4 + 1.0 + 2 / 3) / 6)


def test_weighted_f1_ignores_classes_absent_from_truth_and_is_nan_when_empty():
    # class 1 only predicted: its NaN recall must not poison the average; class 0 F1 = 2/3, support 2
    assert weighted_f1(np.array([[1, 1], [0, 0]])) == pytest.approx(2 / 3)
    assert math.isnan(weighted_f1(np.zeros((3, 3), dtype=np.int64)))


def test_iou_per_class_by_hand():
    # IoU = TP / (row + column - TP): 2/(3+2-2), 1/(2+2-1), 1/(1+2-1)
    np.testing.assert_allclose(iou_per_class(CONFUSION), [2 / 3, 1 / 3, 0.5])


def test_iou_is_nan_for_class_absent_everywhere_and_zero_when_always_wrong():
    # class 0 perfect, class 1 predicted once but never true (IoU 0), class 2 absent (NaN)
    confusion = np.array([[4, 1, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(iou_per_class(confusion), [0.8, 0.0, np.nan])


def test_iou_accepts_float_counts():
    # the training loop sums matrices across processes as float64
    np.testing.assert_allclose(iou_per_class(CONFUSION.astype(np.float64)), [2 / 3, 1 / 3, 0.5])


def test_dice_is_pixel_f1_and_consistent_with_iou():
    dice = dice_per_class(CONFUSION)
    np.testing.assert_allclose(dice, [0.8, 0.5, 2 / 3])
    iou = iou_per_class(CONFUSION)
    np.testing.assert_allclose(dice, 2 * iou / (1 + iou))  # identity Dice = 2 IoU / (1 + IoU)


def test_top_k_accuracy_by_hand():
    scores = np.array(
        [
            [0.1, 0.7, 0.2],  # ranking 1, 2, 0; truth 1 -> top-1 hit
            [0.5, 0.3, 0.2],  # ranking 0, 1, 2; truth 1 -> top-2 hit
            [0.6, 0.3, 0.1],  # ranking 0, 1, 2; truth 2 -> top-3 hit only
            [0.2, 0.2, 0.6],  # ranking 2, 0, 1 (tie broken by lower index); truth 1 -> top-3 only
        ]
    )
    truth = np.array([1, 1, 2, 1])
    assert top_k_accuracy(scores, truth, 1) == pytest.approx(1 / 4)
    assert top_k_accuracy(scores, truth, 2) == pytest.approx(2 / 4)
    assert top_k_accuracy(scores, truth, 3) == pytest.approx(1.0)


def test_top_k_accuracy_works_on_logits_and_is_nan_for_no_rows():
    logits = np.array([[-3.0, 2.0], [5.0, -1.0]])
    assert top_k_accuracy(logits, np.array([1, 1]), 1) == pytest.approx(0.5)
    assert math.isnan(top_k_accuracy(np.zeros((0, 3)), np.zeros(0, dtype=np.int64), 1))


def test_most_confused_pairs_largest_off_diagonal_first():
    confusion = np.array(
        [
            [9, 3, 0],
            [1, 8, 5],
            [3, 0, 7],
        ]
    )
    # off-diagonal cells: (1,2)=5, (0,1)=3, (2,0)=3, (1,0)=1; ties keep row-major order
    assert most_confused_pairs(confusion) == [(1, 2, 5), (0, 1, 3), (2, 0, 3), (1, 0, 1)]
    assert most_confused_pairs(confusion, top=2) == [(1, 2, 5), (0, 1, 3)]
    assert all(isinstance(v, int) for cell in most_confused_pairs(confusion) for v in cell)


def test_most_confused_pairs_empty_for_perfect_predictions_and_leaves_input_alone():
    confusion = np.diag([3, 4])
    assert most_confused_pairs(confusion) == []
    np.testing.assert_array_equal(confusion, np.diag([3, 4]))


def test_log_loss_by_hand():
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0]])
    assert log_loss(logits, np.array([0, 0])) == pytest.approx((np.log(2) + np.log(4 / 3)) / 2)
    assert log_loss(logits + 1000, np.array([0, 0])) == pytest.approx((np.log(2) + np.log(4 / 3)) / 2)
    assert np.isnan(log_loss(np.zeros((0, 2)), np.array([], dtype=int)))


def test_reliability_bins_and_ece_by_hand() -> None:
    from petnet.evaluation.metrics import expected_calibration_error, reliability_bins

    confidences = np.array([0.95, 0.95, 0.95, 0.95, 0.55, 0.55, 1.0])
    correct = np.array([1, 1, 1, 0, 1, 0, 1], dtype=bool)
    rows = reliability_bins(confidences, correct, bins=10)
    assert [row["count"] for row in rows] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 5]  # 1.0 falls in the last bin
    assert rows[9]["confidence"] == pytest.approx(0.96) and rows[9]["accuracy"] == pytest.approx(0.8)
    assert math.isnan(rows[0]["accuracy"]) and rows[5]["lower"] == 0.5
    assert expected_calibration_error(confidences, correct, 10) == pytest.approx((2 * 0.05 + 5 * 0.16) / 7)
    assert math.isnan(expected_calibration_error(np.array([]), np.array([], dtype=bool)))


def test_species_and_ranking_are_those_petnet_names() -> None:
    from petnet.evaluation.metrics import ranked_within_species, species_of_top_breed

    species = np.array([0, 1, 1])  # breed 0 a cat's, breeds 1 and 2 a dog's
    scores = np.array([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3]])
    assert species_of_top_breed(scores, species).tolist() == [0, 1]
    ranked = ranked_within_species(scores, species)
    assert np.isneginf(ranked[0, 1:]).all() and ranked[0, 0] == 0.5
    assert np.isneginf(ranked[1, 0]) and ranked[1, 1:].tolist() == [0.5, 0.3]
    assert top_k_accuracy(ranked, np.array([0, 2]), 1) == 0.5  # the second is a dog, but not its first breed


def test_proportion_interval_is_wilsons_by_hand() -> None:
    # 47 of 50: centre (0.94 + z^2/100) / (1 + z^2/50), half-width z sqrt(0.94 * 0.06 / 50 + z^2 / 10000) / (1 + z^2/50)
    low, high = proportion_interval(47, 50)
    assert (low, high) == pytest.approx((0.8378, 0.9794), abs=1e-4)
    assert proportion_interval(0, 10)[0] == 0.0 and proportion_interval(10, 10)[1] == 1.0
    assert all(math.isnan(bound) for bound in proportion_interval(0, 0))
