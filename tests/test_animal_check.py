"""Fitting the other-animal check (``petnet.training.animal_check``); the pipeline's use of it is in
test_inference.py, loading it in test_onnx.py."""

from __future__ import annotations

import numpy as np
import pytest

from petnet.training.animal_check import fit_threshold


def test_the_animal_check_threshold_keeps_the_share_of_training_pets_it_names() -> None:
    odds = np.linspace(-10, 10, 1001)
    threshold = fit_threshold(odds, keep=0.999)
    assert (odds < threshold).mean() == pytest.approx(0.999, abs=1e-3)
    assert fit_threshold(odds, keep=1.0) == 10
