"""Mixing the pets of a multi-task batch: CutMix (a box of one photo pasted into another) and
Copy-Paste (one photo's animal pasted onto another), masks included.

Yun et al. (ICCV 2019) regularise a classifier by pasting a random box of one training photo into
another and mixing the two labels by area; on fine-grained sets it keeps the network from
memorising a few telling patches. Here the trimap and pseudo-mask pixels travel with the box, so
the mask targets stay true pixel for pixel, and pets are mixed only with pets, so the photos with
no pet keep teaching the pet head and the outlier loss as they are. Copy-Paste (Ghiasi et al., CVPR
2021) pastes only the partner's animal, cut out along its mask pixels (its trimap's, or its pseudo
mask's confident ones), at a random shift: photos of two animals that overlap, the kind the
animal-centre head must count, with a true mask for both.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from petnet.labels import ANIMAL_INDICES, IGNORE_INDEX


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
    partner's: :func:`petnet.training.losses.multitask_loss`). Fewer than two pets: the batch unchanged.
    """
    pets, partner = _pet_partners(batch, rng)
    if len(pets) < 2:
        return batch
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
    mixed["mix_weight"] = torch.where(partner == _itself(partner), 1.0, own_share)
    return mixed


def copy_paste_pets(batch: dict, rng: np.random.Generator) -> dict:
    """A copy of ``batch`` in which every pet photo has another pet of the batch pasted onto it.

    The partner's animal pixels (pet or boundary in its trimap, else in its pseudo mask) are shifted
    by one random offset per batch (up to half the image each way, what leaves the frame is lost)
    and replace the photo's pixels and mask targets there. ``mix_weight`` is the photo's own animal
    pixels left visible over those plus the pasted ones: a hidden pet keeps little of its label. Adds
    ``mix_partner`` and ``mix_weight`` as :func:`cutmix_pets` does; fewer than two pets: unchanged.
    """
    pets, partner = _pet_partners(batch, rng)
    if len(pets) < 2:
        return batch
    height, width = batch["image"].shape[-2:]
    shift = (int(rng.integers(-(height // 2), height // 2 + 1)), int(rng.integers(-(width // 2), width // 2 + 1)))
    labels = torch.where(batch["mask"] != IGNORE_INDEX, batch["mask"], batch["pseudo_mask"])
    is_animal = torch.isin(labels, torch.tensor(ANIMAL_INDICES, device=labels.device))
    pasted = _shifted(is_animal[partner], shift, fill=False)
    pasted[partner == _itself(partner)] = False
    mixed = dict(batch)
    for key in ("image", "mask", "pseudo_mask"):
        source = _shifted(batch[key][partner], shift, fill=0)
        where = pasted[:, None] if batch[key].dim() == 4 else pasted
        mixed[key] = torch.where(where, source, batch[key])
    own_visible = (is_animal & ~pasted).flatten(1).sum(1)
    total = own_visible + pasted.flatten(1).sum(1)
    mixed["mix_partner"] = partner
    mixed["mix_weight"] = torch.where(total > 0, own_visible / total.clamp(min=1), 1.0)
    return mixed


def _pet_partners(batch: dict, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The pets' indices, and each photo's partner: a random permutation of the pets; itself for the others."""
    is_pet = batch["is_pet"].bool()
    pets = is_pet.nonzero().flatten()
    partner = _itself(is_pet)
    partner[pets] = pets[torch.from_numpy(rng.permutation(len(pets))).to(pets.device)]
    return pets, partner


def _itself(like: torch.Tensor) -> torch.Tensor:
    return torch.arange(len(like), device=like.device)


def _shifted(tensor: torch.Tensor, shift: tuple[int, int], fill: float | bool) -> torch.Tensor:
    """``tensor`` (..., H, W) moved by ``shift`` = (down, right) pixels, ``fill`` where nothing moved in."""
    down, right = shift
    height, width = tensor.shape[-2:]
    moved = torch.full_like(tensor, fill)
    moved[..., max(0, down) : height + min(0, down), max(0, right) : width + min(0, right)] = tensor[
        ..., max(0, -down) : height + min(0, -down), max(0, -right) : width + min(0, -right)
    ]
    return moved
