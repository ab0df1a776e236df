"""Choosing the pet-presence threshold on validation scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petnet.labels import IGNORE_INDEX
from petnet.training.calibrate import choose_threshold, fit_temperature
from petnet.training.pseudolabel import pseudo_mask


def test_separable_scores_get_a_threshold_between_them():
    pets, non_pets = np.linspace(0.9, 0.999, 200), np.linspace(0.001, 0.2, 100)
    threshold = choose_threshold(pets, non_pets)
    assert 0.2 < threshold < 0.9
    assert np.mean(pets >= threshold) == 1 and np.mean(non_pets >= threshold) == 0


def test_overlapping_scores_keep_the_pets():
    rng = np.random.default_rng(0)
    pets, non_pets = rng.uniform(0.3, 1, 400), rng.uniform(0, 0.8, 400)
    threshold = choose_threshold(pets, non_pets, min_pets_kept=0.99)
    assert np.mean(pets >= threshold) >= 0.99


def test_needs_both_populations():
    with pytest.raises(ValueError):
        choose_threshold([0.9], [])


def test_pseudo_masks_keep_only_confident_pixels():
    logits = torch.zeros(3, 2, 2)
    logits[0, 0, 0] = 10  # confident pet
    logits[1, 1, 1] = 10  # confident background
    labels = pseudo_mask(logits, (4, 4), min_confidence=0.9)
    assert labels.shape == (4, 4) and labels.dtype == np.uint8
    assert labels[0, 0] == 0 and labels[3, 3] == 1
    assert labels[0, 3] == IGNORE_INDEX, "an undecided pixel stays unlabelled"


def test_fit_temperature_recovers_the_temperature_that_made_the_labels() -> None:
    """Labels drawn from softmax(logits / 0.5): the fit finds a temperature near 0.5, and scaling
    changes no argmax."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 5))
    probabilities = np.exp(logits / 0.5) / np.exp(logits / 0.5).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(5, p=row) for row in probabilities])
    assert fit_temperature(logits, truth) == pytest.approx(0.5, rel=0.1)
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((0, 5)), np.zeros(0, dtype=int))
