"""Animal regions: a photo's label map split into one region per animal, and the boxes cropped around them.

:func:`pet_regions` tells animals apart by the breed maps, :func:`center_regions` by the
animal-centre heatmap; :func:`animal_regions` picks the one the model supports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import expit, softmax

from petnet.config import PetNetConfig
from petnet.inference.centers import find_peaks, hill_box
from petnet.inference.decoding import PetNetOutput
from petnet.labels import BACKGROUND_INDEX, BOUNDARY_INDEX, PET_INDEX

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


def animal_regions(
    mask: np.ndarray, output: PetNetOutput, i: int, config: PetNetConfig, thresholds: tuple[float, float] | None = None
) -> list[np.ndarray]:
    """One region per animal in image ``i`` of a batch ``output`` whose label map is
    ``mask``: from the centre heatmap's peaks when the model has the head (at ``thresholds``,
    on and off the mask, default the config's), otherwise from the breed maps. Empty when no
    region stands out (the pipeline then answers for the whole photo)."""
    if output.center_logits is None:
        return pet_regions(mask, output.breed_maps[i])
    on_mask, off_mask = thresholds or (config.center_threshold, config.center_off_mask_threshold)
    return center_regions(mask, expit(output.center_logits[i]), on_mask, off_mask)


def pet_regions(
    mask: np.ndarray,
    breed_maps: np.ndarray,
    pet_index: int = PET_INDEX,
    boundary_index: int = BOUNDARY_INDEX,
    min_fraction: float = MIN_ANIMAL_FRACTION,
    relative_fraction: float = SECOND_ANIMAL_FRACTION,
    distinct_confidence: float = DISTINCT_BREED_CONFIDENCE,
) -> list[np.ndarray]:
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
    pet = mask == pet_index
    structure = np.ones((3, 3), dtype=bool)
    pieces, count = ndimage.label(pet, structure=structure)
    if count == 0:
        return []
    covered = pet | (mask == boundary_index)
    outlines, _ = ndimage.label(covered, structure=structure)
    flat = pieces.ravel()
    areas = np.bincount(flat, minlength=count + 1)
    # Mean breed logits of each piece: each pixel reads the map location it falls in.
    map_rows, map_cols = breed_maps.shape[-2:]
    rows = np.arange(mask.shape[0]) * map_rows // mask.shape[0]
    cols = np.arange(mask.shape[1]) * map_cols // mask.shape[1]
    location = (rows[:, None] * map_cols + cols[None, :]).ravel()
    pixels_at = np.bincount(flat * map_rows * map_cols + location, minlength=(count + 1) * map_rows * map_cols)
    pixels_at = pixels_at.reshape(count + 1, -1)[1:].astype(np.float32)
    breed_logits = pixels_at @ np.asarray(breed_maps, dtype=np.float32).reshape(len(breed_maps), -1).T
    breeds = softmax(breed_logits / areas[1:, None].astype(np.float32), axis=1)
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
        return [covered] if kept else []
    animal_of_piece = np.zeros(count + 1, dtype=np.int32)
    for number, labels in enumerate(kept, start=1):
        animal_of_piece[labels] = number
    return _fill_outlines(animal_of_piece[pieces], covered, len(kept))


def _fill_outlines(animal_map: np.ndarray, covered: np.ndarray, count: int) -> list[np.ndarray]:
    """Regions 1..``count`` of ``animal_map`` (0 = not yet given), each ``covered`` pixel given to
    the animal whose pixels are nearest."""
    if count == 1:  # every pixel's nearest animal is the only one (the distance transform is a third of the regions' time)
        return [covered.copy()]
    _, (rows, cols) = ndimage.distance_transform_edt(animal_map == 0, return_indices=True)
    nearest = animal_map[rows, cols]
    return [covered & (nearest == number) for number in range(1, count + 1)]


def center_regions(
    mask: np.ndarray,
    heatmap: np.ndarray,
    threshold: float,
    off_mask_threshold: float,
    min_fraction: float = MIN_ANIMAL_FRACTION,
    relative_fraction: float = SECOND_ANIMAL_FRACTION,
) -> list[np.ndarray]:
    """One boolean HxW region per animal of a predicted label ``mask`` (pet, background and boundary
    values only), one animal per peak of the (h, w)
    centre ``heatmap`` (probabilities, :func:`petnet.inference.centers.find_peaks`), largest first.

    A peak on or near (two cells) the mask's pet pixels counts from ``threshold`` up. It belongs to
    the outline (connected pet and boundary pixels) it falls on, or the nearest one; an outline with
    one peak is that animal, one with several is shared among them by nearest peak, and an outline
    without a peak joins the nearest animal. A peak far from every pet pixel is an animal the mask
    missed: it counts from ``off_mask_threshold`` up, and its region is the box its hill implies
    (:func:`petnet.inference.centers.hill_box`) minus the other animals' pixels. Animals smaller than
    ``min_fraction`` of the mask, and outline animals smaller than ``relative_fraction`` of the
    largest, are dropped (their pixels go to the nearest animal kept). Empty when no peak counts.
    """
    covered = mask != BACKGROUND_INDEX  # pet or boundary: a predicted label map holds no other value (np.isin: 10x slower)
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
        region = hill_region(heatmap, peak, covered.shape) & ~covered
        if region.sum() >= min_fraction * covered.size:
            regions.append(region)
    return sorted(regions, key=lambda region: -int(region.sum()))


def hill_region(heatmap: np.ndarray, peak: tuple[int, int, float], shape: tuple[int, int]) -> np.ndarray:
    """The pixels of an (H, W) = ``shape`` image inside the box :func:`~petnet.inference.centers.hill_box`
    reads from ``peak``'s hill in the (h, w) centre ``heatmap``: where that animal is, mask or not."""
    top, left, bottom, right = hill_box(heatmap, peak)
    cell_rows, cell_cols = shape[0] / heatmap.shape[0], shape[1] / heatmap.shape[1]
    box = (round(left * cell_cols), round(top * cell_rows), round(right * cell_cols), round(bottom * cell_rows))
    return box_region(shape, box)


def candidate_boxes(
    heatmap: np.ndarray, shape: tuple[int, int], min_peak: float, count: int = 1, side: float | None = None
) -> list[tuple[tuple[float, float], tuple[int, int, int, int]]]:
    """Where the (h, w) centre ``heatmap`` most suspects an animal in an image of ``shape`` (H, W),
    what the second look for a small pet crops to: for each of its ``count`` highest peaks at
    ``min_peak`` or more, the peak's centre (row, col) in the image's pixels and a crop box (left,
    top, right, bottom) around it. The box is :func:`square_box` of ``side``, or without ``side``
    :func:`partial_crop_box` of the peak's :func:`hill_region` (that peak left out where it is the whole image)."""
    candidates = []
    for peak in find_peaks(heatmap, min_peak)[:count]:
        centre = ((peak[0] + 0.5) * shape[0] / heatmap.shape[0], (peak[1] + 0.5) * shape[1] / heatmap.shape[1])
        if side is not None:
            candidates.append((centre, square_box(shape, centre, side)))
        elif (region := hill_region(heatmap, peak, shape)).any() and (box := partial_crop_box(region)) is not None:
            candidates.append((centre, box))
    return candidates


def corner_boxes(shape: tuple[int, int], side: float) -> list[tuple[int, int, int, int]]:
    """The (left, top, right, bottom) tiles at the four corners of an image of ``shape`` (H, W), each
    ``side`` times its height and width (overlapping where ``side`` is above a half; fewer where some
    coincide): what the tile look (``config.tile_look_side``) looks at."""
    height, width = shape
    tile_height, tile_width = max(1, round(side * height)), max(1, round(side * width))
    tiles = [(left, top, left + tile_width, top + tile_height) for top in (0, height - tile_height) for left in (0, width - tile_width)]
    return list(dict.fromkeys(tiles))  # one tile, not four of the same, where it is the whole image


def square_box(shape: tuple[int, int], centre: tuple[float, float], side: float) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of a square of ``side`` times the shorter side of an image
    of ``shape`` (H, W) around ``centre`` (row, col), moved inside the image where it would cross an edge."""
    length = max(1, min(round(side * min(shape)), *shape))
    top = min(max(0, round(centre[0] - length / 2)), shape[0] - length)
    left = min(max(0, round(centre[1] - length / 2)), shape[1] - length)
    return left, top, left + length, top + length


def _nearest_covered(covered: np.ndarray) -> Callable[[int, int], tuple[float, tuple[int, int]]]:
    """For a pixel (row, col): the distance to the nearest ``covered`` pixel and that pixel
    (infinite and itself when nothing is covered). Only needed for peaks off the mask."""
    if not covered.any():
        return lambda y, x: (math.inf, (y, x))
    distance, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return lambda y, x: (float(distance[y, x]), (int(rows[y, x]), int(cols[y, x])))


def _outline_animals(
    covered: np.ndarray, points: list[tuple[int, int]], relative_fraction: float, min_fraction: float
) -> list[np.ndarray]:
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
    breeds: np.ndarray
    """Breed probabilities of its largest piece."""
    pieces: list[int]
    area: int


def _distinct(first: np.ndarray, second: np.ndarray, confidence: float) -> bool:
    """Two breed distributions name different breeds, each with at least ``confidence``."""
    return bool(first.argmax() != second.argmax() and min(first.max(), second.max()) >= confidence)


def region_box(region: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) pixel box of a non-empty boolean region; right/bottom exclusive."""
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def crop_box(region: np.ndarray, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """:func:`region_box` widened by ``margin`` of its size on each side, within the region's image:
    the box an animal is cropped to when the network looks at it on its own."""
    left, top, right, bottom = region_box(region)
    grow_x, grow_y = round((right - left) * margin), round((bottom - top) * margin)
    height, width = region.shape
    return max(0, left - grow_x), max(0, top - grow_y), min(width, right + grow_x), min(height, bottom + grow_y)


def partial_crop_box(region: np.ndarray) -> tuple[int, int, int, int] | None:
    """:func:`crop_box` of ``region``, or None when that box is the whole image: a crop that would
    only show the image again."""
    box = crop_box(region)
    return None if box == (0, 0, region.shape[1], region.shape[0]) else box


def box_region(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels of an image of ``shape`` (H, W) inside ``box`` (left, top, right, bottom; clipped at 0)."""
    left, top, right, bottom = box
    region = np.zeros(shape, dtype=bool)
    region[max(0, top) : bottom, max(0, left) : right] = True
    return region
