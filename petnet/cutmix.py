"""CutMix for the multi-task batch: a box of one pet photo pasted into another, masks included.

Yun et al. (ICCV 2019) regularise a classifier by pasting a random box of one training photo into
another and mixing the two labels by area; on fine-grained sets it keeps the network from
memorising a few telling patches. Here the trimap and pseudo-mask pixels travel with the box, so
the mask targets stay true pixel for pixel, and pets are mixed only with pets, so the photos with
no pet keep teaching the pet head and the outlier loss as they are.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def random_box(height: int, width: int, area_fraction: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of a box of about ``area_fraction`` of the image, centred at a
    uniform random pixel and clipped to the image (so it may cover less)."""
    side_fraction = math.sqrt(area_fraction)
    box_height, box_width = round(height * side_fraction), round(width * side_fraction)
    centre_y, centre_x = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = max(0, centre_y - box_height // 2), min(height, centre_y + (box_height + 1) // 2)
    left, right = max(0, centre_x - box_width // 2), min(width, centre_x + (box_width + 1) // 2)
    return top, bottom, left, right


def cutmix_pets(batch: dict, alpha: float, rng: np.random.Generator) -> dict:
    """A copy of ``batch`` in which every pet photo holds a box of another pet photo of the batch.

    One box per batch (its area drawn from Beta(alpha, alpha)), the partners a random permutation of
    the pets. Adds ``mix_partner`` (each photo's partner, itself when not mixed) and ``mix_weight``
    (the share of the photo that is still its own, which weighs its own labels against the
    partner's: :func:`petnet.losses.multitask_loss`). Fewer than two pets: the batch unchanged.
    """
    is_pet = batch["is_pet"].bool()
    pets = is_pet.nonzero().flatten()
    if len(pets) < 2:
        return batch
    itself = torch.arange(len(is_pet), device=is_pet.device)
    partner = itself.clone()
    partner[pets] = pets[torch.from_numpy(rng.permutation(len(pets))).to(pets.device)]
    area = float(rng.beta(alpha, alpha))
    height, width = batch["image"].shape[-2:]
    top, bottom, left, right = random_box(height, width, area, rng)
    mixed = dict(batch)
    for key in ("image", "mask", "pseudo_mask"):
        if key in batch:
            tensor = batch[key].clone()
            tensor[pets, ..., top:bottom, left:right] = batch[key][partner[pets], ..., top:bottom, left:right]
            mixed[key] = tensor
    own_share = 1 - (bottom - top) * (right - left) / (height * width)
    mixed["mix_partner"] = partner
    mixed["mix_weight"] = torch.where(partner == itself, 1.0, own_share)
    return mixed
