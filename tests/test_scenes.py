"""Pets in scenes: seeded, the stated pets at the stated sizes; which non-pet photos are animals."""

from __future__ import annotations

import numpy as np
import pytest
from non_pet_factory import other_animal_photo
from PIL import Image

from petnet.data.datasets import NOT_A_PET, PetRecord, is_other_animal, read_split
from petnet.data.scenes import CUTOUT, KINDS, SCENE_SHORT_SIDE, SIZE_BANDS, ZOOMED_OUT, _place, band_key, build_scenes


def _backgrounds(tmp_path, count: int = 3) -> list[PetRecord]:
    records = []
    for n in range(count):
        path = tmp_path / f"n0{n}_wall.jpg"
        Image.new("RGB", (300 + 20 * n, 200), (90, 120 + 10 * n, 90)).save(path)
        records.append(PetRecord(path.stem, NOT_A_PET, NOT_A_PET, path, None))
    return records


def test_scenes_are_seeded_and_know_their_pet(tiny_pet_root, tmp_path):
    pets = read_split(tiny_pet_root, "test")
    scenes = build_scenes(pets, _backgrounds(tmp_path), per_cell=2, seed=4)
    assert [(s.kind, s.band) for s in scenes] == [(k, b) for k in KINDS for b in SIZE_BANDS for _ in range(2)]
    by_name = {r.name: r for r in pets}
    for scene in scenes:
        assert min(scene.image.size) == SCENE_SHORT_SIDE
        assert scene.kind == ZOOMED_OUT or by_name[scene.name].trimap_path is not None, "cut-outs need a real trimap"
        assert ("cat", "dog")[by_name[scene.name].species_index] == scene.species
    again = build_scenes(pets, _backgrounds(tmp_path), per_cell=2, seed=4)
    assert [s.name for s in again] == [s.name for s in scenes]
    assert np.array_equal(np.asarray(again[5].image), np.asarray(scenes[5].image))
    assert {s.species for s in scenes if s.kind == CUTOUT} == {"cat", "dog"}
    assert build_scenes(pets, [], per_cell=2) == []
    assert band_key(SIZE_BANDS[1]) == "20-45%"


def test_a_placed_pet_has_the_asked_size_and_a_soft_edge():
    import random

    from PIL import ImageDraw

    scene = Image.new("RGB", (400, 200), (0, 0, 0))
    pet = Image.new("RGBA", (50, 100), (200, 200, 200, 0))
    ImageDraw.Draw(pet).ellipse((0, 0, 49, 99), fill=(200, 200, 200, 255))  # a cut-out: opaque inside its outline
    _place(scene, pet, 0.5, random.Random(0))
    covered = np.asarray(scene).max(axis=2) > 0
    rows, cols = np.flatnonzero(covered.any(axis=1)), np.flatnonzero(covered.any(axis=0))
    assert 96 <= rows[-1] - rows[0] + 1 <= 100 and 46 <= cols[-1] - cols[0] + 1 <= 52  # half the short side, upright
    values = np.asarray(scene)[covered].max(axis=1)
    assert ((values > 0) & (values < values.max())).any(), "a softened edge between pet and scene"


def test_other_animals_are_told_by_their_imagenet_class():
    def record(name: str) -> PetRecord:
        return PetRecord(name, NOT_A_PET, NOT_A_PET, None, None)  # type: ignore[arg-type]

    assert is_other_animal(record("n02398521_hippopotamus"))
    assert is_other_animal(record("n01440764_tench"))
    assert not is_other_animal(record("n02666196_abacus"))
    assert not is_other_animal(record("n04285008_sports_car"))
    assert not is_other_animal(PetRecord("Abyssinian_1", 0, 0, None, None))  # type: ignore[arg-type]


def test_a_training_scene_carries_the_pets_masks_and_real_background_labels(tmp_path):
    import random

    from petnet.data.scenes import ScenePlacer
    from petnet.labels import BACKGROUND_INDEX, IGNORE_INDEX, PET_INDEX

    photo = Image.new("RGB", (64, 64), (250, 250, 250))
    mask = np.full((64, 64), BACKGROUND_INDEX, dtype=np.uint8)
    mask[16:48, 16:48] = PET_INDEX  # a white photo with a square pet in the middle
    pseudo = np.full((64, 64), IGNORE_INDEX, dtype=np.uint8)
    placer = ScenePlacer(_backgrounds(tmp_path), sizes=(0.3, 0.6))
    kinds = set()
    for seed in range(12):
        scene, scene_mask, scene_pseudo = placer(photo, mask, pseudo, random.Random(seed))
        assert scene.size == photo.size and scene_mask.shape == scene_pseudo.shape == (64, 64)
        pet = scene_mask == PET_INDEX
        rows, cols = np.flatnonzero(pet.any(axis=1)), np.flatnonzero(pet.any(axis=0))
        pixels = np.asarray(scene).astype(int)
        pet_colour = np.median(pixels[pet], axis=0)
        zoomed_out = (np.abs(pixels[~pet] - pet_colour).max(axis=1) <= 2).sum() > 50  # the photo's own background came along
        kinds.add("zoomed_out" if zoomed_out else "cutout")
        share = 0.5 if zoomed_out else 1.0  # the pet is half its photo; a cut-out is the pet alone
        assert 0.3 * 64 * share - 2 <= max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 0.6 * 64 * share + 2
        assert set(np.unique(scene_mask)) == {PET_INDEX, BACKGROUND_INDEX}, "outside the pet: the scene's real background"
        assert (scene_pseudo == IGNORE_INDEX).all()
        assert np.asarray(scene)[pet].min() > 150, "the labelled pet pixels show the (bright) pet"
    assert {"zoomed_out", "cutout"} <= kinds


@pytest.mark.parametrize("sizes", [(0.0, 0.5), (0.6, 0.5), (0.5, 1.2), (-0.1, 1.0)])
def test_scene_sizes_out_of_range_are_refused(sizes):
    from petnet.data.scenes import ScenePlacer

    with pytest.raises(ValueError, match="smallest <= largest"):
        ScenePlacer([], sizes=sizes)


def test_other_animals_go_into_scenes_only_when_asked(tmp_path):
    from petnet.data.scenes import ScenePlacer
    from petnet.data.training_set import OxfordPetDataset
    from petnet.labels import BACKGROUND_INDEX, IGNORE_INDEX

    animal = other_animal_photo(tmp_path)
    placer = ScenePlacer(_backgrounds(tmp_path), sizes=(0.3, 0.6))

    def identity(image, mask, pseudo):
        from torchvision.transforms.v2.functional import pil_to_tensor

        return pil_to_tensor(image), mask, pseudo

    for asked in (False, True):
        dataset = OxfordPetDataset([animal], identity, scenes=placer, scene_probability=1.0, scene_other_animals=asked)
        sample = dataset[0]
        assert bool(sample["in_scene"]) is asked and not sample["is_pet"]
        assert (sample["mask"] == BACKGROUND_INDEX).all(), "a non-pet is background wherever it is placed"
        animal_pixels = (sample["image"][0] > 150).float().mean().item()  # the scenes are dark green (red 90)
        if asked:
            assert 0 < animal_pixels < 0.5, "placed: the bright animal photo is small in a scene"
        else:
            assert animal_pixels == 1.0, "not placed: the photo as it is"
    unmasked = OxfordPetDataset([animal], identity, scenes=placer, scene_probability=1.0, scene_other_animals=True,
                                scene_masks=False)[0]  # fmt: skip
    assert (unmasked["mask"] == IGNORE_INDEX).all() and (unmasked["pseudo_mask"] == IGNORE_INDEX).all()


def test_a_scene_knows_whether_it_is_a_photo_of_another_animal(tiny_pet_root, tmp_path):
    pets = read_split(tiny_pet_root, "test")
    for name, animal in (("n01440764_tench", True), ("n04285008_sports_car", False)):
        path = tmp_path / f"{name}.jpg"
        Image.new("RGB", (300, 200), (90, 120, 90)).save(path)
        background = PetRecord(name, NOT_A_PET, NOT_A_PET, path, None)
        assert {scene.on_animal for scene in build_scenes(pets, [background], per_cell=1, seed=1)} == {animal}
