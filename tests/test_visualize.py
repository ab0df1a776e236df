"""Overlay and cut-out composition: colours, sizes, transparency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from petnet.labels import MASK_CLASSES
from petnet.visualize import MASK_COLORS, colorize_mask, overlay_mask, pet_cutout


def _mask() -> np.ndarray:
    """4x6 mask: left two columns pet, middle two boundary, right two background."""
    return np.array([[0, 0, 2, 2, 1, 1]] * 4, dtype=np.uint8)


def test_mask_colours_cover_every_class_and_differ() -> None:
    assert set(MASK_COLORS) == set(MASK_CLASSES)
    assert len(set(MASK_COLORS.values())) == len(MASK_CLASSES)


def test_colorize_mask_paints_each_class() -> None:
    pixels = np.asarray(colorize_mask(_mask()))
    assert pixels.shape == (4, 6, 3)
    assert tuple(pixels[0, 0]) == MASK_COLORS["pet"]
    assert tuple(pixels[0, 2]) == MASK_COLORS["boundary"]
    assert tuple(pixels[0, 5]) == MASK_COLORS["background"]


@pytest.mark.parametrize("as_tensor", [False, True])
def test_overlay_blends_mask_colour_over_photo(as_tensor: bool) -> None:
    photo = Image.new("RGB", (6, 4), (0, 0, 0))
    mask = torch.from_numpy(_mask()) if as_tensor else _mask()
    result = overlay_mask(photo, mask, alpha=0.5)
    assert result.mode == "RGB" and result.size == photo.size
    pixels = np.asarray(result).astype(int)
    for column, name in [(0, "pet"), (2, "boundary"), (5, "background")]:
        assert np.abs(pixels[0, column] - np.array(MASK_COLORS[name]) / 2).max() <= 1


def test_overlay_alpha_extremes_and_validation() -> None:
    photo = Image.new("RGB", (6, 4), (10, 20, 30))
    assert np.array_equal(np.asarray(overlay_mask(photo, _mask(), alpha=0.0)), np.asarray(photo))
    assert tuple(np.asarray(overlay_mask(photo, _mask(), alpha=1.0))[0, 0]) == MASK_COLORS["pet"]
    with pytest.raises(ValueError):
        overlay_mask(photo, _mask(), alpha=1.5)
    with pytest.raises(ValueError):
        overlay_mask(photo, np.full((4, 6), 7, dtype=np.uint8))


def test_overlay_stretches_a_smaller_mask_to_the_photo() -> None:
    photo = Image.new("L", (60, 40), 0)  # any mode is accepted
    result = overlay_mask(photo, _mask(), alpha=1.0)
    pixels = np.asarray(result)
    assert result.size == (60, 40)
    assert tuple(pixels[20, 5]) == MASK_COLORS["pet"]
    assert tuple(pixels[20, 55]) == MASK_COLORS["background"]


def test_pet_cutout_keeps_pet_and_boundary_opaque() -> None:
    photo = Image.new("RGB", (6, 4), (200, 100, 50))
    cutout = pet_cutout(photo, _mask())
    assert cutout.mode == "RGBA" and cutout.size == photo.size
    alpha = np.asarray(cutout)[..., 3]
    assert (alpha[:, :4] == 255).all() and (alpha[:, 4:] == 0).all()
    assert tuple(np.asarray(cutout)[0, 0, :3]) == (200, 100, 50)
