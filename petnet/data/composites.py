"""Two-animal test photos built from single-animal Oxford-IIIT Pet photos, with known answers.

Real two-animal photos with labels are not part of the dataset, so the evaluator checks "one answer
per animal" on composites of three kinds: two photos side by side, a second animal at a smaller
scale, and a second animal cut out along its real trimap and pasted so that it overlaps the first.
They are built deterministically from a seed, only from the split being evaluated.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from petnet.data.datasets import PetRecord, read_trimap
from petnet.images import load_image
from petnet.labels import ANIMAL_INDICES, SPECIES

LAYOUTS = ("side_by_side", "different_sizes", "overlapping")
SMALLER_SCALE = 0.6
"""Size of the second animal's photo relative to the first in ``different_sizes``."""
OVERLAP = 0.3
"""Fraction of the first photo's width the pasted animal covers in ``overlapping``."""


@dataclass(frozen=True)
class Composite:
    """A made-up photo of two animals and what is in it."""

    image: Image.Image
    layout: str
    names: tuple[str, str]
    species: tuple[str, str]


def side_by_side(first: Image.Image, second: Image.Image) -> Image.Image:
    """``second`` to the right of ``first``, on black (or 0 for label maps, which work here too)."""
    canvas = Image.new(first.mode, (first.width + second.width, max(first.height, second.height)))
    canvas.paste(first, (0, 0))
    canvas.paste(second, (first.width, 0))
    return canvas


def border_colour(image: Image.Image) -> tuple[int, int, int]:
    """Mean colour of an RGB image's outermost pixels: a plain wall to extend it with, rather than a
    black bar or a mirror image that could show a copy of its animal."""
    pixels = np.asarray(image)
    border = np.concatenate([pixels[[0, -1]].reshape(-1, 3), pixels[:, [0, -1]].reshape(-1, 3)])
    return tuple(int(c) for c in border.mean(axis=0))


def different_sizes(
    first: Image.Image, second: Image.Image, scale: float = SMALLER_SCALE, labels: bool = False
) -> Image.Image:
    """``second`` shrunk to ``scale`` of ``first``'s height, bottom-aligned on its right, on a canvas
    filled with ``second``'s :func:`border_colour`; with ``labels``, two label maps laid out the
    same way (nearest-neighbour resampling, 0 around)."""
    resample = Image.Resampling.NEAREST if labels else Image.Resampling.BICUBIC
    small = second.resize((round(first.width * scale), round(first.height * scale)), resample)
    fill = 0 if labels else border_colour(small)
    canvas = Image.new(first.mode, (first.width + small.width, first.height), fill)
    canvas.paste(first, (0, 0))
    canvas.paste(small, (first.width, first.height - small.height))
    return canvas


def overlapping(
    first: Image.Image, second: Image.Image, second_trimap: np.ndarray, overlap: float = OVERLAP, labels: bool = False
) -> Image.Image:
    """``second``'s animal (its trimap's pet and boundary pixels) pasted so that its photo
    covers the right ``overlap`` of ``first``, on a canvas that extends ``first`` with its
    :func:`border_colour` (0 with ``labels``, for two label maps laid out the same way).

    The extension is plain: an earlier version mirrored ``first`` into it, which often showed part
    of a second copy of the first animal, a third animal the answer key did not count."""
    extra = round(first.width * (1 - overlap))
    fill = 0 if labels else border_colour(first)
    canvas = Image.new(first.mode, (first.width + extra, first.height), fill)
    canvas.paste(first, (0, 0))
    cutout = np.asarray(np.isin(second_trimap, ANIMAL_INDICES), dtype=np.uint8) * 255
    mask = Image.fromarray(cutout).resize(second.size, Image.Resampling.NEAREST)
    canvas.paste(second, (canvas.width - second.width, canvas.height - second.height), mask)
    return canvas


def build_composites(records: Sequence[PetRecord], per_layout: int, seed: int = 0) -> list[Composite]:
    """``per_layout`` composites of each layout from ``records``, half cat + dog, a quarter each two
    cats or two dogs. Overlapping composites paste only animals that have a real trimap."""
    rng = random.Random(seed)
    by_species = {s: [r for r in records if r.species_index == i] for i, s in enumerate(SPECIES)}
    with_trimap = {s: [r for r in rs if r.trimap_path is not None] for s, rs in by_species.items()}
    composites = []
    for layout in LAYOUTS:
        for n in range(per_layout):
            pair = ("cat", "dog") if n % 2 == 0 else (("cat", "cat") if n % 4 == 1 else ("dog", "dog"))
            if rng.random() < 0.5:
                pair = pair[::-1]
            pool = with_trimap if layout == "overlapping" else by_species
            if not by_species[pair[0]] or not pool[pair[1]]:
                continue
            first = rng.choice(by_species[pair[0]])
            second = rng.choice([r for r in pool[pair[1]] if r is not first] or pool[pair[1]])
            first_image, second_image = load_image(first.image_path), load_image(second.image_path)
            if layout == "side_by_side":
                image = side_by_side(first_image, second_image)
            elif layout == "different_sizes":
                image = different_sizes(first_image, second_image)
            else:
                image = overlapping(first_image, second_image, read_trimap(second.trimap_path))
            composites.append(Composite(image, layout, (first.name, second.name), pair))
    return composites
