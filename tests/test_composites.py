"""Two-animal composites: deterministic, the stated species, each layout's geometry."""

from __future__ import annotations

import numpy as np
from PIL import Image

from petnet.data.composites import LAYOUTS, SMALLER_SCALE, build_composites, different_sizes, overlapping, side_by_side
from petnet.data.datasets import read_split


def test_composites_are_seeded_and_know_their_animals(tiny_pet_root):
    records = read_split(tiny_pet_root, "test")
    composites = build_composites(records, per_layout=4, seed=1)
    assert [c.layout for c in composites] == [layout for layout in LAYOUTS for _ in range(4)]
    species_of = {r.name: ("cat", "dog")[r.species_index] for r in records}
    for composite in composites:
        assert tuple(species_of[name] for name in composite.names) == composite.species
        assert composite.names[0] != composite.names[1]
    assert sum(c.species[0] != c.species[1] for c in composites) == 6, "half are a cat and a dog"
    with_trimap = {r.name for r in records if r.has_trimap}
    assert all(c.names[1] in with_trimap for c in composites if c.layout == "overlapping")
    again = build_composites(records, per_layout=4, seed=1)
    assert [c.names for c in again] == [c.names for c in composites]
    assert np.array_equal(np.asarray(again[0].image), np.asarray(composites[0].image))


def test_layout_geometry():
    first, second = Image.new("RGB", (100, 80), (255, 0, 0)), Image.new("RGB", (100, 80), (0, 0, 255))
    assert side_by_side(first, second).size == (200, 80)
    smaller = different_sizes(first, second)
    assert smaller.size == (100 + round(100 * SMALLER_SCALE), 80)
    assert smaller.getpixel((150, 79)) == (0, 0, 255) and smaller.getpixel((150, 0)) == (0, 0, 255), "plain fill"
    trimap = np.ones((80, 100), dtype=np.uint8)  # background everywhere ...
    trimap[20:60, 30:70] = 0  # ... but a pet in the middle
    pasted = overlapping(first, second, trimap)
    right = pasted.width - second.width
    assert pasted.getpixel((right + 50, 40)) == (0, 0, 255), "the pasted animal"
    assert pasted.getpixel((right + 5, 5)) == (255, 0, 0), "its background is not pasted"
    striped = first.copy()
    striped.paste((0, 255, 0), (40, 0, 60, 80))  # the first photo's "animal"
    extended = overlapping(striped, second, trimap)
    assert [extended.getpixel((x, 5)) == (0, 255, 0) for x in range(extended.width)].count(True) == 20, (
        "the extension shows no second copy of the first animal"
    )
