"""The preprocessing every prediction starts with: a photo to the network's normalised square input.

Training's augmentations (:mod:`petnet.data.transforms`) end with the same :func:`normalize`.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from petnet.config import PetNetConfig


def normalize(config: PetNetConfig) -> list[v2.Transform]:
    """To float in [0, 1], then standardised with the config's mean and std (masks left as they are)."""
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), v2.Normalize(config.mean, config.std)]


def eval_transform(config: PetNetConfig) -> v2.Compose:
    """Deterministic preprocessing for evaluation and inference: stretch to a square, normalise.

    Stretching (not cropping) matches the dataset, whose images were stretched to squares, and
    keeps every pixel so the predicted mask maps back onto the whole photo.
    """
    size = config.image_size
    return v2.Compose([v2.ToImage(), v2.Resize((size, size), antialias=True), *normalize(config)])
