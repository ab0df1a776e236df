"""Overlay, cut-out and mask-file composition: colours, sizes, soft transparency, per-animal colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from petnet.inference.decoding import resize_scores
from petnet.inference.visualize import (
    MASK_COLORS,
    animal_color,
    animal_map,
    cutout_alpha,
    on_checkerboard,
    overlay_mask,
    palette_mask,
    pet_cutout,
)
from petnet.labels import MASK_CLASSES


def _mask() -> np.ndarray:
    """4x6 mask: left two columns pet, middle two boundary, right two background."""
    return np.array([[0, 0, 2, 2, 1, 1]] * 4, dtype=np.uint8)


def test_mask_colours_cover_every_class_and_differ() -> None:
    assert set(MASK_COLORS) == set(MASK_CLASSES)
    assert len(set(MASK_COLORS.values())) == len(MASK_CLASSES)


def test_palette_mask_shows_each_class_in_its_colour() -> None:
    pixels = np.asarray(palette_mask(_mask()).convert("RGB"))
    assert pixels.shape == (4, 6, 3)
    assert tuple(pixels[0, 0]) == MASK_COLORS["pet"]
    assert tuple(pixels[0, 2]) == MASK_COLORS["boundary"]
    assert tuple(pixels[0, 5]) == MASK_COLORS["background"]


def test_overlay_blends_mask_colour_over_photo() -> None:
    photo = Image.new("RGB", (6, 4), (0, 0, 0))
    result = overlay_mask(photo, _mask(), alpha=0.5)
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


def _probabilities() -> np.ndarray:
    """(3, 4, 8) probabilities: columns 0-1 sure pet, 2 boundary 0.8 / pet 0.2, 3 boundary 0.6 /
    background 0.4, 4-7 sure background."""
    columns = [(1, 0, 0), (1, 0, 0), (0.2, 0, 0.8), (0, 0.4, 0.6), (0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0)]
    return np.ascontiguousarray(np.broadcast_to(np.array(columns, dtype=np.float32).T[:, None, :], (3, 4, 8)))


def test_cutout_alpha_is_opaque_on_pet_and_feathered_on_the_boundary() -> None:
    alpha = cutout_alpha(_probabilities())
    assert alpha.shape == (4, 8) and alpha.dtype == np.uint8
    assert (alpha[:, :2] == 255).all() and (alpha[:, 4:] == 0).all()
    assert (alpha[:, 2] == round(255 * 0.6)).all() and (alpha[:, 3] == round(255 * 0.3)).all()


def test_pet_cutout_is_soft_and_cropped_to_the_pet() -> None:
    photo = Image.new("RGB", (8, 4), (200, 100, 50))
    cutout = pet_cutout(photo, _probabilities())
    assert cutout.mode == "RGBA" and cutout.size == (4, 4)  # columns 0-3 keep some opacity
    alpha = np.asarray(cutout)[..., 3]
    assert (alpha[:, :2] == 255).all() and 0 < alpha[0, 3] < alpha[0, 2] < 255
    assert tuple(np.asarray(cutout)[0, 0, :3]) == (200, 100, 50)


def test_pet_cutout_resamples_network_size_probabilities_to_the_photo() -> None:
    cutout = pet_cutout(Image.new("RGB", (80, 40), "white"), _probabilities())
    assert cutout.height == 40 and 30 <= cutout.width <= 45


def test_resize_probabilities_keeps_a_distribution() -> None:
    resized = resize_scores(_probabilities(), (8, 16))
    assert resized.shape == (3, 8, 16) and resized.dtype == np.float32 and np.allclose(resized.sum(axis=0), 1)


@pytest.mark.parametrize("size", [(480, 360), (241, 239), (100, 50), (240, 240)])
def test_resize_scores_is_torch_bilinear_resampling(size: tuple[int, int]) -> None:
    """Masks come to a photo's size as ``F.interpolate(mode="bilinear", align_corners=False)`` brought
    them, larger or smaller than the network's input (no antialiasing); float noise apart."""
    logits = np.random.default_rng(0).normal(size=(3, 240, 240)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(logits)[None], size=size, mode="bilinear", align_corners=False)[0]
    np.testing.assert_allclose(resize_scores(logits, size), expected.numpy(), atol=1e-4)


def test_checkerboard_shows_transparency_as_grey_squares() -> None:
    clear = Image.new("RGBA", (24, 24), (255, 255, 255, 0))
    preview = np.asarray(on_checkerboard(clear, square=12))
    assert preview.shape == (24, 24, 3) and tuple(preview[0, 0]) != tuple(preview[0, 12])
    assert tuple(np.asarray(on_checkerboard(Image.new("RGBA", (4, 4), (255, 255, 255, 255))))[0, 0]) == (255, 255, 255)


def test_palette_mask_keeps_values_and_shows_colours() -> None:
    image = palette_mask(_mask())
    assert image.mode == "P" and np.array_equal(np.asarray(image), _mask())
    rgb = np.asarray(image.convert("RGB"))
    assert tuple(rgb[0, 0]) == MASK_COLORS["pet"] and tuple(rgb[0, 5]) == MASK_COLORS["background"]


def test_overlay_colours_each_animal_on_its_own() -> None:
    mask = np.array([[0, 0, 1, 0, 0, 2]] * 2, dtype=np.uint8)
    regions = [
        np.array([[False, False, False, True, True, True]] * 2),
        np.array([[True, True, False, False, False, False]] * 2),
    ]
    animals = animal_map(regions, mask.shape)
    assert animals.tolist() == [[2, 2, 0, 1, 1, 1]] * 2
    pixels = np.asarray(overlay_mask(Image.new("RGB", (6, 2)), mask, alpha=1.0, animals=animals))
    assert tuple(pixels[0, 3]) == animal_color(0) == MASK_COLORS["pet"]
    assert tuple(pixels[0, 0]) == animal_color(1) != animal_color(0)
    assert tuple(pixels[0, 5]) == MASK_COLORS["boundary"] and tuple(pixels[0, 2]) == MASK_COLORS["background"]


def test_an_animal_the_mask_missed_is_tinted_over_its_box() -> None:
    mask = np.array([[0, 0, 1, 1, 1, 1]] * 2, dtype=np.uint8)  # the mask sees only the first animal
    regions = [np.array([[True, True, False, False, False, False]] * 2),
               np.array([[False, False, False, True, True, False]] * 2)]  # fmt: skip
    pixels = np.asarray(overlay_mask(Image.new("RGB", (6, 2)), mask, alpha=1.0, animals=animal_map(regions, mask.shape)))
    assert tuple(pixels[0, 3]) == tuple(pixels[0, 4]) == animal_color(1), "its box, in its colour"
    assert tuple(pixels[0, 2]) == tuple(pixels[0, 5]) == MASK_COLORS["background"]


def test_an_answer_for_the_whole_photo_tints_nothing() -> None:
    mask = np.ones((2, 6), dtype=np.uint8)  # no pet pixels; the one answer's region is the whole photo
    animals = animal_map([np.ones((2, 6), dtype=bool)], mask.shape)
    pixels = np.asarray(overlay_mask(Image.new("RGB", (6, 2)), mask, alpha=1.0, animals=animals))
    assert all(tuple(pixel) == MASK_COLORS["background"] for pixel in pixels.reshape(-1, 3))
