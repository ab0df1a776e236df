"""Prediction results and the pure functions that turn network outputs into them.

:func:`decode_output` is the one place that turns a :class:`~petnet.model.PetNetOutput` into species
probabilities, species-conditioned top-k breeds, the pet score and mask probabilities;
``PetNet.predict`` and ``petnet.evaluate`` both go through it. :func:`pet_regions` splits a mask
into one region per animal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

if TYPE_CHECKING:
    from petnet.model import PetNetOutput

TOP_K_BREEDS = 3
"""Breeds returned per animal (the original PetNet's top-3)."""
MIN_ANIMAL_FRACTION = 0.02
"""Smallest connected pet region, as a fraction of the photo, that counts as an animal: smaller
specks of "pet" pixels are noise, and an animal that small could not be told apart anyway."""
SECOND_ANIMAL_FRACTION = 0.2
"""A further region counts as another animal only if it is at least this fraction of the largest
one, so a paw or tail cut off by an occluding object is not reported as a second pet."""

_COMPAT_KEYS = ("species", "breed", "mask")


@dataclass(frozen=True)
class DecodedOutput:
    """Batched, decoded network output (all on the CPU, float32)."""

    species_probabilities: torch.Tensor
    """(B, n_species)."""
    species_index: torch.Tensor
    """(B,) most likely species."""
    breed_probabilities: torch.Tensor
    """(B, n_breeds), unconditional."""
    top_breeds: torch.Tensor
    """(B, k) breed indices among those of the predicted species, best first."""
    top_breed_confidences: torch.Tensor
    """(B, k) probability of each given the predicted species."""
    conditioned_breed_logits: torch.Tensor
    """(B, n_breeds) breed logits with other species' breeds at -inf."""
    pet_scores: torch.Tensor
    """(B,) probability that the photo holds a cat or dog (pet-presence head)."""
    mask_probabilities: torch.Tensor
    """(B, n_mask_classes, H, W) softmax of the mask logits at the network's input size."""


def decode_output(output: PetNetOutput, breed_species_index: torch.Tensor, k: int = TOP_K_BREEDS) -> DecodedOutput:
    """Probabilities, species-conditioned top-``k`` breeds, pet scores and mask probabilities."""
    species_probabilities = output.species_logits.float().softmax(dim=1).cpu()
    species_index = species_probabilities.argmax(dim=1)
    breed_logits = output.breed_logits.float().cpu()
    allowed = breed_species_index.cpu().unsqueeze(0) == species_index.unsqueeze(1)
    conditioned = breed_logits.masked_fill(~allowed, float("-inf"))
    top_confidences, top_breeds = conditioned.softmax(dim=1).topk(k, dim=1)
    return DecodedOutput(
        species_probabilities=species_probabilities,
        species_index=species_index,
        breed_probabilities=breed_logits.softmax(dim=1),
        top_breeds=top_breeds,
        top_breed_confidences=top_confidences,
        conditioned_breed_logits=conditioned,
        pet_scores=output.pet_logits.float().sigmoid().cpu(),
        mask_probabilities=output.mask_logits.float().softmax(dim=1).cpu(),
    )


def resize_scores(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) per-pixel class scores (logits or probabilities) resampled bilinearly to ``size`` =
    (H, W), as float: the one way masks are brought to a photo's or trimap's size."""
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores.float()
    return F.interpolate(scores.float()[None], size=size, mode="bilinear", align_corners=False)[0]


def mask_from_logits(mask_logits: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Argmax label map (uint8) of (C, H, W) logits or probabilities, resampled bilinearly to ``size`` first."""
    if size is not None:
        mask_logits = resize_scores(mask_logits, size)
    # ``max().indices`` equals ``argmax`` (first maximum wins) but is ~20x faster on CPU for a reduction
    # over 3 channels: argmax alone took a quarter of the single-image latency.
    return mask_logits.max(dim=0).indices.to(torch.uint8)


def pet_regions(
    mask: torch.Tensor,
    pet_index: int = 0,
    boundary_index: int = 2,
    min_fraction: float = MIN_ANIMAL_FRACTION,
    relative_fraction: float = SECOND_ANIMAL_FRACTION,
) -> list[torch.Tensor]:
    """One boolean HxW region per animal in a label ``mask``, largest first.

    An animal is a connected (8-neighbour) region of pet pixels at least ``min_fraction`` of the
    mask and ``relative_fraction`` of the largest such region; each keeps the boundary pixels
    nearest to it, so its region covers its whole outline.
    """
    pet = (mask == pet_index).numpy()
    labels, count = ndimage.label(pet, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return []
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = np.argsort(-areas, kind="stable")
    keep = [i + 1 for i in order if areas[i] >= min_fraction * pet.size and areas[i] >= relative_fraction * areas[order[0]]]
    if not keep:
        return []
    # Give each boundary (and dropped-speck) pixel to the nearest kept animal.
    kept = np.isin(labels, keep)
    _, (rows, cols) = ndimage.distance_transform_edt(~kept, return_indices=True)
    nearest = labels[rows, cols]
    outline = kept | (mask == boundary_index).numpy() | pet
    return [torch.from_numpy(outline & (nearest == label)) for label in keep]


def region_box(region: torch.Tensor) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) pixel box of a non-empty boolean region; right/bottom exclusive."""
    rows = torch.nonzero(region.any(dim=1)).flatten()
    cols = torch.nonzero(region.any(dim=0)).flatten()
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@dataclass(frozen=True, eq=False)
class Pet:
    """One animal found in a photo."""

    species: str
    species_confidence: float
    breed: tuple[str, ...]
    """Top-3 breeds of ``species``, best first."""
    breed_confidences: tuple[float, ...]
    box: tuple[int, int, int, int]
    """(left, top, right, bottom) in photo pixels, right and bottom exclusive."""
    region: torch.Tensor
    """HxW bool at the photo's size: this animal's pet and boundary pixels."""

    def to_dict(self) -> dict:
        """JSON-ready summary (no region)."""
        return {
            "species": self.species,
            "species_confidence": self.species_confidence,
            "breed": list(self.breed),
            "breed_confidences": list(self.breed_confidences),
            "box": list(self.box),
            "area_fraction": float(self.region.float().mean()),
        }


@dataclass(frozen=True, eq=False)
class Prediction(Mapping):
    """What PetNet sees in one image.

    Reads like the original PetNet result dict (``result["species"]``, ``result["breed"]``,
    ``result["mask"]``) and carries the probabilities, a full-size mask for overlays, whether there
    is a pet at all and one entry per animal. The top-level species and breeds describe the
    largest animal (the whole photo when there is at most one).
    """

    species: str
    """'cat' or 'dog'."""
    breed: tuple[str, ...]
    """Top-3 breed names (dataset spelling), restricted to the predicted species, best first."""
    mask: torch.Tensor
    """HxW uint8 mask at the network's input size: 0 = pet, 1 = background, 2 = boundary."""
    species_confidence: float
    """Probability of the predicted species."""
    breed_confidences: tuple[float, ...]
    """Probability of each top-3 breed given the predicted species (sums to <= 1)."""
    species_probabilities: dict[str, float]
    """Probability of every species."""
    breed_probabilities: dict[str, float]
    """Unconditional probability of every breed, in label order."""
    full_mask: torch.Tensor
    """Mask at the original image size (equal to ``mask`` for preprocessed tensor inputs)."""
    mask_probabilities: torch.Tensor
    """(3, S, S) float probabilities of pet, background and boundary at the network's input size,
    for soft cut-outs (resample them to the photo with :func:`resize_scores`)."""
    pet_score: float
    """Probability that the photo holds a cat or dog."""
    has_pet: bool
    """``pet_score`` reached the model's ``config.pet_threshold`` (``petnet.calibrate`` chose it on validation)."""
    pets: tuple[Pet, ...] = ()
    """One entry per animal, largest first; empty when ``has_pet`` is False. With a pet but no
    connected pet region big enough to count (:data:`MIN_ANIMAL_FRACTION`), one entry for the whole photo."""

    def __getitem__(self, key: str):
        if key not in _COMPAT_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_COMPAT_KEYS)

    def __len__(self) -> int:
        return len(_COMPAT_KEYS)

    def to_dict(self) -> dict:
        """JSON-ready summary (no masks)."""
        return {
            "has_pet": self.has_pet,
            "pet_score": self.pet_score,
            "species": self.species,
            "species_confidence": self.species_confidence,
            "breed": list(self.breed),
            "breed_confidences": list(self.breed_confidences),
            "species_probabilities": self.species_probabilities,
            "pet_fraction": float((self.full_mask == 0).float().mean()),
            "pets": [pet.to_dict() for pet in self.pets],
        }

