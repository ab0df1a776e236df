"""Joint image + mask preprocessing with torchvision transforms v2.

Masks are wrapped as ``tv_tensors.Mask`` so geometric transforms move them with the image and
resample them with nearest neighbour, while photometric ones leave them untouched. Every transform
takes the model's :class:`PetNetConfig`, the one place for input size and normalisation, and ends
with :func:`normalize`; the prediction pipeline's own preprocessing, numpy only so that predicting
needs no PyTorch, is :mod:`petnet.inference.preprocess`, which :func:`val_transform` equals.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from petnet.config import PetNetConfig

_GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
SCENE_CROP_SCALE = (0.85, 1.0)
"""Crop area of a training scene (:class:`petnet.data.scenes.ScenePlacer`): a larger crop could cut its
small pet out of a photo still labelled as holding one."""


def normalize(config: PetNetConfig) -> list[v2.Transform]:
    """To float in [0, 1], then standardised with the config's mean and std (masks left as they are):
    how every pipeline here ends, as the prediction pipeline's :func:`~petnet.inference.preprocess.eval_transform` does."""
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), v2.Normalize(config.mean, config.std)]


class PhotometricTrivialAugmentWide(v2.TrivialAugmentWide):
    """TrivialAugmentWide (Muller & Hutter, ICCV 2021) without its geometric operations, applied to
    the image alone: a shear or shift there would leave the mask behind."""

    _AUGMENTATION_SPACE: ClassVar[dict] = {
        name: op for name, op in v2.TrivialAugmentWide._AUGMENTATION_SPACE.items() if name not in _GEOMETRIC_OPS
    }

    def forward(self, *inputs):
        image, *masks = inputs
        return (super().forward(image), *masks) if masks else super().forward(image)


def train_transform(
    config: PetNetConfig, crop_size: int | None = None, trivial_augment: bool = False, crop_scale: tuple[float, float] = (0.35, 1.0)
) -> v2.Compose:
    """Augmentation for training: random crop (``crop_scale`` of the area) resized to ``crop_size``
    (default the model's input size), flip, then either photometric TrivialAugmentWide or colour
    jitter and some grey. Scenes (:class:`petnet.data.scenes.ScenePlacer`) crop little
    (:data:`SCENE_CROP_SCALE`): a big crop could leave their small pet out while the label says pet."""
    photometric = (
        [PhotometricTrivialAugmentWide()]
        if trivial_augment
        else [v2.RandomApply([v2.ColorJitter(0.3, 0.3, 0.3, 0.05)], p=0.8), v2.RandomGrayscale(p=0.05)]
    )
    return v2.Compose([
        v2.ToImage(),
        v2.RandomResizedCrop(crop_size or config.image_size, scale=crop_scale, ratio=(0.75, 1.333), antialias=True),
        v2.RandomHorizontalFlip(),
        *photometric,
        *normalize(config),
    ])  # fmt: skip


def val_transform(config: PetNetConfig) -> v2.Compose:
    """Deterministic preprocessing of validation samples, masks along: stretched to the model's square
    input and normalised, as the prediction pipeline's :func:`~petnet.inference.preprocess.eval_transform`
    prepares a photo (``tests/test_data.py`` checks that the two give the network the same input for
    photos below four times the input size, which that pipeline reduces first)."""
    size = config.image_size
    return v2.Compose([v2.ToImage(), v2.Resize((size, size), antialias=True), *normalize(config)])


def center_transform(config: PetNetConfig) -> v2.Compose:
    """Augmentation for the animal-centre head (:mod:`petnet.data.center_data`): stretched to the model's
    square input as in prediction, sometimes a random crop instead, a flip and some colour change.
    It trains at the input size because only the head learns: the frozen network sees photos as it
    will when predicting."""
    size = config.image_size
    return v2.Compose([
        v2.ToImage(),
        v2.RandomChoice([v2.Resize((size, size), antialias=True), v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True)],
                        p=[0.7, 0.3]),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.3, 0.3, 0.3, 0.05)], p=0.5),
        *normalize(config),
    ])  # fmt: skip
