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


class _StubPredictor:
    """Answers a photo's brightness as its one pet, found by the second look where the photo is odd."""

    def prepare(self, photo: int) -> int:
        return photo

    def answer(self, prepared: list[int]) -> list:
        from types import SimpleNamespace

        return [SimpleNamespace(prediction=SimpleNamespace(pets=(photo,)), looked_again=photo % 2 == 1) for photo in prepared]

    def animal_view(self, item: int, pet: int, size: int) -> np.ndarray:
        return np.full((3, size, size), float(pet), dtype=np.float32)


def test_the_small_threshold_is_fitted_on_the_pets_the_second_and_tile_looks_found_alone() -> None:
    from petnet.errors import DatasetError
    from petnet.training.animal_check import pet_views

    photos = list(range(7))
    every = pet_views(_StubPredictor(), photos)  # type: ignore[arg-type]
    assert [view[0, 0, 0] for view in every] == photos
    small = pet_views(_StubPredictor(), photos, looked_again=True)  # type: ignore[arg-type]
    assert [view[0, 0, 0] for view in small] == [1, 3, 5]
    with pytest.raises(DatasetError, match="nothing to fit"):
        pet_views(_StubPredictor(), [0, 2], looked_again=True)  # type: ignore[arg-type]
