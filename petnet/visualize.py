"""Pure image composition for showing a predicted trimap: colour overlays and pet cut-outs.

Used by the CLI, the Gradio demo and the dashboard, so every view of a mask looks the same.
Masks follow :data:`petnet.labels.MASK_CLASSES`: 0 = pet, 1 = background, 2 = boundary.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from petnet.labels import MASK_CLASSES

MASK_COLORS: dict[str, tuple[int, int, int]] = {
    "pet": (255, 140, 0),  # orange
    "background": (30, 90, 200),  # blue
    "boundary": (250, 250, 60),  # yellow
}
"""RGB colour of each mask class; distinguishable for the common colour-vision deficiencies."""

_PALETTE = np.array([MASK_COLORS[name] for name in MASK_CLASSES], dtype=np.uint8)
_BACKGROUND = MASK_CLASSES.index("background")


def _mask_array(mask: np.ndarray | torch.Tensor, size: tuple[int, int] | None = None) -> np.ndarray:
    """``mask`` as an HxW uint8 array, resized with nearest neighbour to ``size`` (W, H) if given."""
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"Expected an HxW mask, got shape {array.shape}.")
    if array.size and (array.min() < 0 or array.max() >= len(MASK_CLASSES)):
        raise ValueError(f"Mask values must be class indices 0..{len(MASK_CLASSES) - 1}.")
    array = array.astype(np.uint8)
    if size is not None and (array.shape[1], array.shape[0]) != tuple(size):
        array = np.asarray(Image.fromarray(array).resize(size, Image.Resampling.NEAREST))
    return array


def colorize_mask(mask: np.ndarray | torch.Tensor) -> Image.Image:
    """The mask painted in :data:`MASK_COLORS` as an RGB image of the mask's size."""
    return Image.fromarray(_PALETTE[_mask_array(mask)])


def overlay_mask(image: Image.Image, mask: np.ndarray | torch.Tensor, alpha: float = 0.5) -> Image.Image:
    """``image`` (any mode) with the coloured mask blended over it; ``alpha`` = mask opacity (0..1).

    A mask of another size (e.g. ``Prediction.mask``) is stretched to the image with nearest
    neighbour, matching how the model stretched the photo to a square.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}.")
    photo = image.convert("RGB")
    colours = Image.fromarray(_PALETTE[_mask_array(mask, photo.size)])
    return Image.blend(photo, colours, alpha)


def pet_cutout(image: Image.Image, mask: np.ndarray | torch.Tensor) -> Image.Image:
    """RGBA copy of ``image`` where pet and boundary pixels are opaque and background is transparent."""
    photo = image.convert("RGB")
    array = _mask_array(mask, photo.size)
    alpha = np.where(array == _BACKGROUND, 0, 255).astype(np.uint8)
    cutout = photo.convert("RGBA")
    cutout.putalpha(Image.fromarray(alpha))
    return cutout
