"""Prediction results and the pure functions that turn network outputs into them.

:func:`decode_output` is the one place that turns a :class:`~petnet.model.PetNetOutput` into species
probabilities, species-conditioned top-k breeds, the pet score and mask probabilities;
``PetNet.predict`` and ``petnet.evaluate`` both go through it. :func:`pet_regions` splits a mask
into one region per animal by the breed maps, :func:`center_regions` by the animal-centre heatmap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from petnet.centers import find_peaks, hill_box
from petnet.labels import ANIMAL_INDICES, BOUNDARY_INDEX, PET_INDEX

if TYPE_CHECKING:
    from petnet.model import PetNetOutput

TOP_K_BREEDS = 3
"""Breeds returned per animal (the original PetNet's top-3)."""
MIN_ANIMAL_FRACTION = 0.01
"""Smallest animal, as a fraction of the photo: smaller specks of "pet" pixels are noise, and an
animal that small could not be told apart anyway."""
SECOND_ANIMAL_FRACTION = 0.05
"""A further animal counts only if it is at least this fraction of the largest one, so a paw or
tail cut off by an occluding object is not reported as a second pet."""
CROP_MARGIN = 0.1
"""Margin added on each side of an animal's box before it is cropped and looked at on its own."""
DISTINCT_BREED_CONFIDENCE = 0.5
"""Pieces of pet pixels within one outline are told apart as two animals when their most likely
breeds differ and each has at least this probability.

The three figures were chosen on validation with the shipped weights (150 two-animal composites,
367 single-pet photos): with 1% / 5% / 0.5 the count was right for 82.0% of the composites and 1.9%
of the single pets got two answers, where the earlier rule (2% / 20%, every connected region of pet
pixels an animal) gave 66.0% and 4.4%."""

_COMPAT_KEYS = ("species", "breed", "mask")


@dataclass(frozen=True)
class DecodedOutput:
    """Batched, decoded network output (all on the CPU, float32)."""

    species_probabilities: torch.Tensor
    """(B, n_species) breed probabilities summed per species."""
    species_index: torch.Tensor
    """(B,) species of the most likely breed."""
    breed_logits: torch.Tensor
    """(B, n_breeds) breed logits divided by the temperature: the log of ``breed_probabilities``
    up to a constant per row (what a log loss scores)."""
    breed_probabilities: torch.Tensor
    """(B, n_breeds), unconditional."""
    top_breeds: torch.Tensor
    """(B, k) breed indices among those of the predicted species, best first."""
    top_breed_confidences: torch.Tensor
    """(B, k) probability of each, out of all breeds: the same denominator as the species
    probabilities, so a breed is never more likely than its species."""
    conditioned_breed_logits: torch.Tensor
    """(B, n_breeds) breed logits (divided by the temperature) with other species' breeds at -inf."""
    pet_scores: torch.Tensor
    """(B,) probability that the photo holds a cat or dog (pet-presence head)."""
    mask_probabilities: torch.Tensor
    """(B, n_mask_classes, H, W) softmax of the mask logits at the network's input size."""


def decode_output(
    output: PetNetOutput, breed_species_index: torch.Tensor, k: int = TOP_K_BREEDS, temperature: float = 1.0
) -> DecodedOutput:
    """Probabilities, species-conditioned top-``k`` breeds, pet scores and mask probabilities.

    The breed logits are divided by ``temperature`` (``config.breed_temperature``) first: the
    calibration of every probability shown, which changes no ranking.

    The species named is the one of the most likely breed, and the species probabilities are the
    breed probabilities summed per species, so species and breeds always tell one story. The
    species head is a training aid only: on the validation pets (``python
    benchmarks/species_rules.py``, the shipped weights of December 2026) its argmax named 365 of
    367 species and the summed breed probability 363, against 367 for the species of the top
    breed. Summing favours dogs on an unsure photo, whose probability spreads over 25 dog breeds
    against 12 cat breeds; the single most likely breed does not.
    """
    breed_logits = output.breed_logits.float().cpu() / temperature
    breed_probabilities = breed_logits.softmax(dim=1)
    species_of_breed = breed_species_index.cpu()
    species_index = species_of_breed[breed_probabilities.argmax(dim=1)]
    species_count = output.species_logits.shape[1]
    species_probabilities = torch.zeros(len(breed_logits), species_count).index_add_(1, species_of_breed, breed_probabilities)
    allowed = species_of_breed.unsqueeze(0) == species_index.unsqueeze(1)
    conditioned = breed_logits.masked_fill(~allowed, float("-inf"))
    top_breeds = conditioned.topk(k, dim=1).indices
    top_confidences = breed_probabilities.gather(1, top_breeds)
    return DecodedOutput(
        species_probabilities=species_probabilities,
        species_index=species_index,
        breed_logits=breed_logits,
        breed_probabilities=breed_probabilities,
        top_breeds=top_breeds,
        top_breed_confidences=top_confidences,
        conditioned_breed_logits=conditioned,
        pet_scores=output.pet_logits.float().sigmoid().cpu(),
        mask_probabilities=output.mask_logits.float().softmax(dim=1).cpu(),
    )


def mean_probability_logits(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Log of the mean of two views' softmax probabilities (rows of (B, C) logits), computed in log
    space so that it stays finite: logits whose softmax is that mean."""
    return torch.logaddexp(first.float().log_softmax(dim=1), second.float().log_softmax(dim=1)) - math.log(2)


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
    breed_maps: torch.Tensor,
    pet_index: int = PET_INDEX,
    boundary_index: int = BOUNDARY_INDEX,
    min_fraction: float = MIN_ANIMAL_FRACTION,
    relative_fraction: float = SECOND_ANIMAL_FRACTION,
    distinct_confidence: float = DISTINCT_BREED_CONFIDENCE,
) -> list[torch.Tensor]:
    """One boolean HxW region per animal in a label ``mask``, largest first.

    The pieces are the connected (8-neighbour) regions of pet pixels. A collar, a lead or a shadow
    often cuts one animal into pieces that share one outline (a connected region of pet and
    boundary pixels), while animals that touch or overlap also share one; ``breed_maps`` (the
    network's (n_breeds, h, w) breed logits per location, :attr:`PetNetOutput.breed_maps`) tell
    them apart: pieces of one outline belong to one animal unless their most likely breeds differ,
    each at ``distinct_confidence`` or more. An animal must cover ``min_fraction`` of the mask and
    ``relative_fraction`` of the largest; each keeps the boundary pixels nearest to it, so its
    region covers its whole outline.
    """
    pet = (mask == pet_index).numpy()
    structure = np.ones((3, 3), dtype=bool)
    pieces, count = ndimage.label(pet, structure=structure)
    if count == 0:
        return []
    covered = pet | (mask == boundary_index).numpy()
    outlines, _ = ndimage.label(covered, structure=structure)
    flat = pieces.ravel()
    areas = np.bincount(flat, minlength=count + 1)
    # Mean breed logits of each piece: each pixel reads the map location it falls in.
    map_rows, map_cols = breed_maps.shape[-2:]
    rows = np.arange(mask.shape[0]) * map_rows // mask.shape[0]
    cols = np.arange(mask.shape[1]) * map_cols // mask.shape[1]
    location = (rows[:, None] * map_cols + cols[None, :]).ravel()
    pixels_at = np.bincount(flat * map_rows * map_cols + location, minlength=(count + 1) * map_rows * map_cols)
    pixels_at = torch.from_numpy(pixels_at.reshape(count + 1, -1)[1:]).float()
    breeds = (pixels_at @ breed_maps.flatten(1).float().T / torch.from_numpy(areas[1:, None])).softmax(dim=1)
    outline_of = np.zeros(count + 1, dtype=np.int64)
    outline_of[flat] = outlines.ravel()  # every pixel of a piece lies in the same outline
    animals: list[_Animal] = []
    for label in np.argsort(-areas[1:], kind="stable") + 1:  # largest piece first
        piece_breeds = breeds[label - 1]
        same = (a for a in animals if a.outline == outline_of[label] and not _distinct(a.breeds, piece_breeds, distinct_confidence))
        animal = next(same, None)
        if animal is None:
            animals.append(_Animal(int(outline_of[label]), piece_breeds, [label], int(areas[label])))
        else:
            animal.pieces.append(label)
            animal.area += int(areas[label])
    animals.sort(key=lambda animal: -animal.area)
    kept = [a.pieces for a in animals if a.area >= min_fraction * pet.size and a.area >= relative_fraction * animals[0].area]
    if len(kept) <= 1:
        return [torch.from_numpy(covered)] if kept else []
    animal_of_piece = np.zeros(count + 1, dtype=np.int32)
    for number, labels in enumerate(kept, start=1):
        animal_of_piece[labels] = number
    return _fill_outlines(animal_of_piece[pieces], covered, len(kept))


def _fill_outlines(animal_map: np.ndarray, covered: np.ndarray, count: int) -> list[torch.Tensor]:
    """Regions 1..``count`` of ``animal_map`` (0 = not yet given), each ``covered`` pixel given to
    the animal whose pixels are nearest."""
    if count == 1:  # every pixel's nearest animal is the only one (the distance transform is a third of the regions' time)
        return [torch.from_numpy(covered.copy())]
    _, (rows, cols) = ndimage.distance_transform_edt(animal_map == 0, return_indices=True)
    nearest = animal_map[rows, cols]
    return [torch.from_numpy(covered & (nearest == number)) for number in range(1, count + 1)]


def center_regions(
    mask: torch.Tensor,
    heatmap: torch.Tensor,
    threshold: float,
    off_mask_threshold: float,
    min_fraction: float = MIN_ANIMAL_FRACTION,
    relative_fraction: float = SECOND_ANIMAL_FRACTION,
) -> list[torch.Tensor]:
    """One boolean HxW region per animal of a label ``mask``, one animal per peak of the (h, w)
    centre ``heatmap`` (probabilities, :func:`petnet.centers.find_peaks`), largest first.

    A peak on or near (two cells) the mask's pet pixels counts from ``threshold`` up. It belongs to
    the outline (connected pet and boundary pixels) it falls on, or the nearest one; an outline with
    one peak is that animal, one with several is shared among them by nearest peak, and an outline
    without a peak joins the nearest animal. A peak far from every pet pixel is an animal the mask
    missed: it counts from ``off_mask_threshold`` up, and its region is the box its hill implies
    (:func:`petnet.centers.hill_box`) minus the other animals' pixels. Animals smaller than
    ``min_fraction`` of the mask, and outline animals smaller than ``relative_fraction`` of the
    largest, are dropped (their pixels go to the nearest animal kept). Empty when no peak counts.
    """
    covered = np.isin(mask.numpy(), ANIMAL_INDICES)
    height, width = mask.shape
    cell_rows, cell_cols = height / heatmap.shape[0], width / heatmap.shape[1]
    peaks = [
        (peak, min(height - 1, int((peak[0] + 0.5) * cell_rows)), min(width - 1, int((peak[1] + 0.5) * cell_cols)))
        for peak in find_peaks(heatmap, min(threshold, off_mask_threshold))
    ]
    nearest = _nearest_covered(covered) if any(not covered[y, x] for _, y, x in peaks) else None
    reach = max(cell_rows, cell_cols) * 2
    points, missed = [], []
    for peak, y, x in peaks:
        distance, near = (0.0, (y, x)) if covered[y, x] else nearest(y, x)
        if distance <= reach:
            if peak[2] >= threshold:
                points.append(near)
        elif peak[2] >= off_mask_threshold:
            missed.append(peak)
    regions = _outline_animals(covered, points, relative_fraction, min_fraction) if points else []
    for peak in missed:
        top, left, bottom, right = hill_box(heatmap, peak)
        region = np.zeros_like(covered)
        region[max(0, round(top * cell_rows)) : round(bottom * cell_rows), max(0, round(left * cell_cols)) : round(right * cell_cols)] = True
        region &= ~covered
        if region.sum() >= min_fraction * covered.size:
            regions.append(torch.from_numpy(region))
    return sorted(regions, key=lambda region: -int(region.sum()))


def _nearest_covered(covered: np.ndarray) -> Callable[[int, int], tuple[float, tuple[int, int]]]:
    """For a pixel (row, col): the distance to the nearest ``covered`` pixel and that pixel
    (infinite and itself when nothing is covered). Only needed for peaks off the mask."""
    if not covered.any():
        return lambda y, x: (math.inf, (y, x))
    distance, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return lambda y, x: (float(distance[y, x]), (int(rows[y, x]), int(cols[y, x])))


def _outline_animals(
    covered: np.ndarray, points: list[tuple[int, int]], relative_fraction: float, min_fraction: float
) -> list[torch.Tensor]:
    """The ``covered`` pixels shared among animals at ``points`` (pixels on it), as :func:`center_regions` says."""
    outlines, _ = ndimage.label(covered, structure=np.ones((3, 3), dtype=bool))
    animal_map = np.zeros(covered.shape, dtype=np.int32)
    for outline in {int(outlines[y, x]) for y, x in points}:
        inside = outlines == outline
        numbers = [number for number, (y, x) in enumerate(points, start=1) if outlines[y, x] == outline]
        if len(numbers) == 1:  # the outline's only peak takes all of it
            animal_map[inside] = numbers[0]
            continue
        markers = np.zeros(covered.shape, dtype=np.int32)
        for number in numbers:
            markers[points[number - 1]] = number
        _, (rows, cols) = ndimage.distance_transform_edt(markers == 0, return_indices=True)
        animal_map[inside] = markers[rows, cols][inside]
    areas = np.bincount(animal_map.ravel(), minlength=len(points) + 1)[1:]
    kept = (areas >= min_fraction * covered.size) & (areas >= relative_fraction * areas.max())
    renumbered = np.zeros(len(points) + 1, dtype=np.int32)
    renumbered[1:][kept] = np.arange(1, kept.sum() + 1)
    return _fill_outlines(renumbered[animal_map], covered, int(kept.sum()))


@dataclass
class _Animal:
    """Pieces of pet pixels taken as one animal while :func:`pet_regions` groups them."""

    outline: int
    breeds: torch.Tensor
    """Breed probabilities of its largest piece."""
    pieces: list[int]
    area: int


def _distinct(first: torch.Tensor, second: torch.Tensor, confidence: float) -> bool:
    """Two breed distributions name different breeds, each with at least ``confidence``."""
    return bool(first.argmax() != second.argmax() and min(first.max(), second.max()) >= confidence)


def region_box(region: torch.Tensor) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) pixel box of a non-empty boolean region; right/bottom exclusive."""
    rows = torch.nonzero(region.any(dim=1)).flatten()
    cols = torch.nonzero(region.any(dim=0)).flatten()
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def crop_box(region: torch.Tensor, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """:func:`region_box` widened by ``margin`` of its size on each side, within the region's image:
    the box an animal is cropped to when the network looks at it on its own."""
    left, top, right, bottom = region_box(region)
    grow_x, grow_y = round((right - left) * margin), round((bottom - top) * margin)
    height, width = region.shape
    return max(0, left - grow_x), max(0, top - grow_y), min(width, right + grow_x), min(height, bottom + grow_y)


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
    """HxW bool at the photo's size: this animal's pet and boundary pixels, or for an animal the mask
    missed (found by the centre head away from any pet pixel) the box its heatmap peak implies."""

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
    is a pet at all and one entry per animal. The top-level species and breeds, and their
    probabilities, describe the largest animal (the whole photo when there is at most one).
    """

    species: str
    """'cat' or 'dog'."""
    breed: tuple[str, ...]
    """Top-3 breed names (dataset spelling), restricted to the predicted species, best first."""
    mask: torch.Tensor
    """HxW uint8 mask at the network's input size: 0 = pet, 1 = background, 2 = boundary."""
    species_confidence: float
    """Probability of the predicted species: its breeds' summed probability (under one half only
    when the single most likely breed belongs to the species whose breeds hold less in all)."""
    breed_confidences: tuple[float, ...]
    """Probability of each top-3 breed, out of all breeds like ``species_confidence`` (so the three
    sum to at most that); calibrated on validation (``config.breed_temperature``)."""
    species_probabilities: dict[str, float]
    """Probability of every species: its breeds' summed probability."""
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
        """JSON-ready summary (no masks). Without a pet there is no species or breed to tell: those
        fields are null (or empty), not the guess the attributes keep for the original contract.
        ``image_size`` is the (width, height) the boxes and masks refer to: the photo as read, at
        most :data:`petnet.images.MAX_SIDE` on its longer side."""
        found = self.has_pet
        height, width = self.full_mask.shape
        return {
            "has_pet": found,
            "pet_score": self.pet_score,
            "species": self.species if found else None,
            "species_confidence": self.species_confidence if found else None,
            "breed": list(self.breed) if found else [],
            "breed_confidences": list(self.breed_confidences) if found else [],
            "species_probabilities": self.species_probabilities if found else None,
            "pet_fraction": float((self.full_mask == 0).float().mean()),
            "image_size": [width, height],
            "pets": [pet.to_dict() for pet in self.pets],
        }

