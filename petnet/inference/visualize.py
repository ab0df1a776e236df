"""Pure image composition for showing a predicted trimap: colour overlays, soft pet cut-outs, mask files.

Used by the CLI, the Gradio demo and the dashboard, so every view of a mask looks the same.
Masks follow :data:`petnet.labels.MASK_CLASSES`: 0 = pet, 1 = background, 2 = boundary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from petnet.inference.decoding import mask_from_logits, resize_scores
from petnet.labels import BOUNDARY_INDEX, MASK_CLASSES, PET_INDEX

MASK_COLORS: dict[str, tuple[int, int, int]] = {
    "pet": (255, 140, 0),  # orange
    "background": (30, 90, 200),  # blue
    "boundary": (250, 250, 60),  # yellow
}
"""RGB colour of each mask class; distinguishable for the common colour-vision deficiencies."""

ANIMAL_COLORS: tuple[tuple[int, int, int], ...] = (
    MASK_COLORS["pet"],
    (204, 51, 204),  # purple
    (0, 170, 160),  # teal
    (220, 40, 40),  # red
)
"""Pet colour of the first, second, ... animal in a photo (cycled beyond four); the first is the
pet colour of :data:`MASK_COLORS`, so a photo with one animal looks the same either way."""

_PALETTE = np.array([MASK_COLORS[name] for name in MASK_CLASSES], dtype=np.uint8)
_NOISE_ALPHA = 0.1
"""Cut-out opacity below which a pixel is treated as background: keeps faint probability noise
from leaving a haze around the pet and from widening the crop."""


ALPHA_MAX_SIDE = 1024
"""Cut-out opacity is computed at most this many pixels a side, then scaled up bilinearly: the mask
is far coarser than that, and three float channels at 12 megapixels would cost 150 MB a photo."""


def animal_color(index: int) -> tuple[int, int, int]:
    """Colour of the animal at ``index`` (0 = largest) in overlays and result cards."""
    return ANIMAL_COLORS[index % len(ANIMAL_COLORS)]


def _mask_array(mask: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """``mask`` as an HxW uint8 array, resized with nearest neighbour to ``size`` (W, H) if given."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"Expected an HxW mask, got shape {array.shape}.")
    if array.size and (array.min() < 0 or array.max() >= len(MASK_CLASSES)):
        raise ValueError(f"Mask values must be class indices 0..{len(MASK_CLASSES) - 1}.")
    array = array.astype(np.uint8)
    if size is not None and (array.shape[1], array.shape[0]) != tuple(size):
        array = np.asarray(Image.fromarray(array).resize(size, Image.Resampling.NEAREST))
    return array


def palette_mask(mask: np.ndarray) -> Image.Image:
    """The mask as a palette ("P") image: pixel values stay 0/1/2 for programs, while any image
    viewer shows them in :data:`MASK_COLORS` instead of three nearly black greys."""
    image = Image.fromarray(_mask_array(mask), mode="P")
    image.putpalette(_PALETTE.ravel().tolist())
    return image


def animal_map(regions: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """HxW uint8 map of which animal each pixel belongs to: 0 = none, k = the k-th region (1-based).

    ``regions`` are boolean HxW masks such as ``Pet.region``, largest first; where two overlap, the
    first wins.
    """
    animals = np.zeros(shape, dtype=np.uint8)
    for number, region in reversed(list(enumerate(regions, start=1))):
        animals[np.asarray(region, dtype=bool)] = number
    return animals


def overlay_mask(
    image: Image.Image,
    mask: np.ndarray,
    alpha: float = 0.5,
    animals: np.ndarray | None = None,
) -> Image.Image:
    """``image`` (any mode) with the coloured mask blended over it; ``alpha`` = mask opacity (0..1).

    A mask of another size (e.g. ``Prediction.mask``) is stretched to the image with nearest
    neighbour, matching how the model stretched the photo to a square. With ``animals`` (see
    :func:`animal_map`, same size as ``mask``) the pet pixels of each animal get its own
    :func:`animal_color`, so two pets in one photo are told apart; an animal without pet pixels
    (one the mask missed: its region is the box the centre heatmap implies) is tinted over its
    region, unless that is the whole photo (an answer for the photo, not for a place in it).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}.")
    photo = image.convert("RGB")
    labels = _mask_array(mask, photo.size)
    colours = _PALETTE[labels]
    if animals is not None:
        numbers = np.asarray(
            Image.fromarray(np.asarray(animals, dtype=np.uint8)).resize(photo.size, Image.Resampling.NEAREST)
        )
        for number in np.unique(numbers[numbers > 0]):
            animal = numbers == number
            on_pet = animal & (labels == PET_INDEX)
            if not on_pet.any() and not animal.all():
                on_pet = animal & (labels != BOUNDARY_INDEX)
            colours[on_pet] = animal_color(int(number) - 1)
    return Image.blend(photo, Image.fromarray(colours), alpha)


def cutout_alpha(probabilities: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """HxW uint8 opacity of a soft pet cut-out from (3, h, w) mask probabilities (at ``size`` (H, W)).

    Pixels whose likeliest class is pet are opaque; elsewhere opacity is P(pet) + P(boundary) / 2,
    so the boundary band (half pet, half background in the trimaps) fades out by how sure the
    network is of it instead of keeping a hard ring of grass or fence around the pet.
    """
    probabilities = resize_scores(probabilities, size) if size is not None else np.asarray(probabilities, dtype=np.float32)
    alpha = probabilities[PET_INDEX] + probabilities[BOUNDARY_INDEX] / 2
    alpha[mask_from_logits(probabilities) == PET_INDEX] = 1
    alpha[alpha < _NOISE_ALPHA] = 0
    return (np.clip(alpha, 0, 1) * 255).round().astype(np.uint8)


def pet_cutout(image: Image.Image, probabilities: np.ndarray) -> Image.Image:
    """RGBA copy of ``image`` with soft transparency (:func:`cutout_alpha`), cropped to the pet.

    ``probabilities`` are the (3, h, w) mask probabilities of any size (``Prediction.mask_probabilities``);
    without a visible pet pixel the whole (transparent) photo is returned.
    """
    cutout = image.convert("RGBA")
    scale = min(1.0, ALPHA_MAX_SIDE / max(image.size))
    size = (max(1, round(image.height * scale)), max(1, round(image.width * scale)))
    alpha = Image.fromarray(cutout_alpha(probabilities, size))
    if alpha.size != image.size:  # a large photo: smooth the opacity up rather than resample 3 channels
        alpha = alpha.resize(image.size, Image.Resampling.BILINEAR)
    cutout.putalpha(alpha)
    box = alpha.getbbox()
    return cutout.crop(box) if box else cutout


def on_checkerboard(image: Image.Image, square: int = 12) -> Image.Image:
    """RGB preview of a transparent image over a light/dark grey checkerboard, so transparency is
    visible as such (a white dog on a white page would otherwise vanish)."""
    width, height = image.size
    rows, cols = np.indices((height, width)) // square
    board = np.where(((rows + cols) % 2 == 0)[..., None], 204, 153).astype(np.uint8).repeat(3, axis=2)
    background = Image.fromarray(board).convert("RGBA")
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
