"""Dataset reader on a generated tiny copy of the official layout, and joint augmentation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_BREEDS
from non_pet_factory import make_non_pets
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from petnet.config import PetNetConfig
from petnet.data.datasets import (
    NON_PET_SPLITS,
    NOT_A_PET,
    STRETCHED_SIZE,
    non_pet_split,
    read_non_pets,
    read_split,
    read_trimap,
    split_records,
    train_val_split,
)
from petnet.data.training_set import OxfordPetDataset, collate_skipping_failures
from petnet.data.transforms import PhotometricTrivialAugmentWide, train_transform, val_transform
from petnet.errors import DatasetError, InvalidImageError
from petnet.images import load_image
from petnet.inference.preprocess import eval_transform, reduce_large
from petnet.labels import BACKGROUND_INDEX, BREED_BY_NAME, IGNORE_INDEX, SPECIES
from petnet.paths import EXAMPLES_DIR, OXFORD_PET_ROOT


def _config(size: int) -> PetNetConfig:
    return PetNetConfig(image_size=size)


@pytest.fixture
def pet_copy(tiny_pet_root: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny dataset that a test may damage."""
    return Path(shutil.copytree(tiny_pet_root, tmp_path / "oxford-iiit-pet"))


def test_splits_and_labels(tiny_pet_root: Path) -> None:
    trainval, test = read_split(tiny_pet_root, "trainval"), read_split(tiny_pet_root, "test")
    assert (len(trainval), len(test)) == (24, 12)
    assert not {r.name for r in trainval} & {r.name for r in test}
    for record in trainval + test:
        breed = BREED_BY_NAME[record.name.rsplit("_", 1)[0]]
        assert record.breed_index == breed.index
        assert SPECIES[record.species_index] == breed.species
        assert record.image_path.is_file()
        assert record.has_trimap == (int(record.name.rsplit("_", 1)[1]) % 2 == 1)


@pytest.mark.parametrize("split", ["train", "val", ""])
def test_unknown_split(tiny_pet_root: Path, split: str) -> None:
    with pytest.raises(DatasetError, match="Unknown split"):
        read_split(tiny_pet_root, split)


def test_wrong_root_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="--data-root"):
        read_split(tmp_path / "nowhere", "trainval")
    with pytest.raises(DatasetError, match="Oxford-IIIT Pet layout"):
        read_split(tmp_path, "trainval")


def test_missing_image_file(pet_copy: Path) -> None:
    (pet_copy / "images" / "pug_2.jpg").unlink()
    with pytest.raises(DatasetError, match="missing.*pug_2.jpg"):
        read_split(pet_copy, "trainval")


def test_malformed_line(pet_copy: Path) -> None:
    list_file = pet_copy / "annotations" / "test.txt"
    list_file.write_text(list_file.read_text() + "pug_99 not-a-number\n")
    with pytest.raises(DatasetError, match="malformed"):
        read_split(pet_copy, "test")


def test_train_val_split_is_deterministic_disjoint_and_stratified(tiny_pet_root: Path) -> None:
    records = read_split(tiny_pet_root, "trainval")
    train, val = train_val_split(records, val_fraction=0.34, seed=7)
    again = train_val_split(records, val_fraction=0.34, seed=7)
    assert (train, val) == again
    assert not {r.name for r in train} & {r.name for r in val}
    assert sorted(r.name for r in train + val) == sorted(r.name for r in records)
    for breed in TINY_BREEDS:  # 6 per breed = 3 with trimap + 3 without: one of each goes to val
        index = BREED_BY_NAME[breed].index
        in_val = [r for r in val if r.breed_index == index]
        assert sorted(r.has_trimap for r in in_val) == [False, True]
    other_seeds = {tuple(r.name for r in train_val_split(records, 0.34, seed)[1]) for seed in range(5)}
    assert len(other_seeds) > 1, "the seed decides which images are held out"


def test_split_records_carves_train_and_val_as_training_does(tiny_pet_root: Path) -> None:
    train, val = train_val_split(read_split(tiny_pet_root, "trainval"), val_fraction=0.34, seed=7)
    assert split_records(tiny_pet_root, "train", 0.34, 7) == train
    assert split_records(tiny_pet_root, "val", 0.34, 7) == val
    assert split_records(tiny_pet_root, "test", 0.34, 7) == read_split(tiny_pet_root, "test")


def test_trimap_values_map_to_mask_classes(tmp_path: Path) -> None:
    path = tmp_path / "trimap.png"
    Image.fromarray(np.array([[1, 2, 3]], dtype=np.uint8)).save(path)
    assert read_trimap(path).tolist() == [[0, 1, 2]]
    Image.fromarray(np.array([[1, 4]], dtype=np.uint8)).save(path)
    with pytest.raises(InvalidImageError):
        read_trimap(path)


def test_samples_with_and_without_trimap(tiny_pet_root: Path) -> None:
    records = read_split(tiny_pet_root, "trainval")
    dataset = OxfordPetDataset(records, val_transform(_config(48)))
    for index, record in enumerate(records[:4]):
        sample = dataset[index]
        assert sample["image"].shape == (3, 48, 48) and sample["mask"].shape == (48, 48)
        assert sample["mask"].dtype == torch.long
        assert (sample["breed"], sample["species"], sample["index"]) == (record.breed_index, record.species_index, index)
        values = set(sample["mask"].unique().tolist())
        if record.has_trimap:
            assert sample["has_mask"] and values == {0, 1, 2}
        else:
            assert not sample["has_mask"] and values == {IGNORE_INDEX}


def test_corrupt_image_is_skipped_and_reported(pet_copy: Path) -> None:
    records = read_split(pet_copy, "test")
    records[1].image_path.write_bytes(b"garbage instead of a JPEG")
    dataset = OxfordPetDataset(records, val_transform(_config(32)))
    samples = [dataset[i] for i in range(3)]
    assert samples[1] is None
    assert list(dataset.failures) == [records[1].name]
    batch = collate_skipping_failures(samples)
    assert batch["image"].shape == (2, 3, 32, 32)
    assert batch["index"].tolist() == [0, 2]
    assert collate_skipping_failures([None, None]) is None


def _halves(size: int = 64) -> tuple[Image.Image, tv_tensors.Mask]:
    """White left half labelled pet (0), black right half labelled background (1), with a
    boundary (2) column and an unlabelled (255) corner: any misalignment mixes them up."""
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    pixels[:, : size // 2] = 255
    mask = np.ones((size, size), dtype=np.uint8)
    mask[:, : size // 2] = 0
    mask[:, size // 2] = 2
    mask[:8, -8:] = IGNORE_INDEX
    return Image.fromarray(pixels), tv_tensors.Mask(torch.from_numpy(mask))


@pytest.mark.parametrize("seed", range(8))
def test_augmentation_moves_mask_with_image(seed: int) -> None:
    image, mask = _halves()
    torch.manual_seed(seed)
    out_image, out_mask = train_transform(_config(40))(image, mask)
    out_mask = out_mask.as_subclass(torch.Tensor)
    assert out_image.shape == (3, 40, 40) and out_mask.shape == (40, 40)
    assert set(out_mask.unique().tolist()) <= {0, 1, 2, IGNORE_INDEX}, "nearest resampling keeps label values"
    brightness = out_image.mean(dim=0)
    pet, background = brightness[out_mask == 0], brightness[out_mask == 1]
    if len(pet) and len(background):
        threshold = (pet.median() + background.median()) / 2
        agreement = torch.cat([pet > threshold, background < threshold]).float().mean()
        assert agreement > 0.95, "flip/crop must be applied identically to image and mask"


def test_flip_is_applied_to_both() -> None:
    """Every crop spans the middle, so the bottom-left pixel is pet (white) unless flipped."""
    image, mask = _halves()
    flips = []
    for seed in range(12):
        torch.manual_seed(seed)
        out_image, out_mask = train_transform(_config(64))(image, mask)
        mask_flipped = int(out_mask[-1, 0]) == 1
        image_flipped = out_image[:, -1, 0].mean() < out_image[:, -1, -1].mean()
        assert mask_flipped == image_flipped
        flips.append(mask_flipped)
    assert set(flips) == {True, False}, "over a dozen draws some samples are flipped and some are not"


def test_val_transform_keeps_label_values() -> None:
    image, mask = _halves(50)
    out_image, out_mask = val_transform(_config(32))(image, mask)
    assert out_image.shape == (3, 32, 32)
    assert set(out_mask.as_subclass(torch.Tensor).unique().tolist()) <= {0, 1, 2, IGNORE_INDEX}
    assert out_image.min() >= -1 and out_image.max() <= 1


def test_predictions_see_photos_as_validation_did() -> None:
    """The prediction pipeline's numpy preprocessing gives the network, to float precision, the input
    training's torchvision transform gives it for the same photo: real photos of many sizes (shrunk,
    enlarged, and two left at the input size in one direction), and the first photos of each
    breed in the shared dataset when it is there."""
    config = PetNetConfig(image_size=240)  # the shipped model's input
    photos = [load_image(path) for path in [*sorted(EXAMPLES_DIR.glob("*.jpg")), *sorted(OXFORD_PET_ROOT.glob("images/*_1.jpg"))]]
    photos += [photos[0].resize(size) for size in [(480, 460), (97, 130), (config.image_size, 400), (333, config.image_size)]]
    prediction, validation = eval_transform(config), val_transform(config)
    for photo in photos:
        expected = validation(photo).as_subclass(torch.Tensor).numpy()
        np.testing.assert_allclose(prediction(photo), expected, rtol=0, atol=1e-6, err_msg=f"a {photo.size} photo")


def test_a_large_photo_is_reduced_first_and_stays_close() -> None:
    """A side four times the input or more is first shrunk by a whole factor (REDUCING_GAP): a few grey levels at most."""
    config = PetNetConfig(image_size=240)
    photo = load_image(min(EXAMPLES_DIR.glob("*.jpg"))).resize((2048, 1365), Image.Resampling.BICUBIC)
    assert reduce_large(photo, 240).size == (512, 683)  # by 4 and 2 (a last part-box counts): at least twice 240 left
    assert reduce_large(photo.resize((959, 700)), 240).size == (959, 700)  # 959 // 480 = 1: as it is
    expected = val_transform(config)(photo).as_subclass(torch.Tensor).numpy()
    difference = np.abs(eval_transform(config)(photo) - expected) * 255 * config.std[0]  # in grey levels
    assert difference.max() <= 12 and (difference > 1.01).mean() < 0.05  # 9 and 2.9% measured


def test_non_pet_photos_split_into_disjoint_seeded_parts(tmp_path):
    records = read_non_pets(make_non_pets(tmp_path / "non-pets", count=20))
    parts = {part: non_pet_split(records, part) for part in NON_PET_SPLITS}
    assert [len(parts[p]) for p in NON_PET_SPLITS] == [12, 3, 5]
    names = [r.name for part in parts.values() for r in part]
    assert len(names) == len(set(names)) == 20
    assert non_pet_split(records, "holdout") == parts["holdout"], "the same seed gives the same parts"
    assert all(not r.is_pet and r.has_trimap for r in records), "an all-background trimap is a real label"
    with pytest.raises(DatasetError, match="list.tsv"):
        read_non_pets(tmp_path)


def test_a_non_pet_sample_is_stretched_like_the_pets_and_all_background(tmp_path):
    records = read_non_pets(make_non_pets(tmp_path / "non-pets", count=2))
    dataset = OxfordPetDataset(records, v2.ToImage())
    sample = dataset[0]
    assert tuple(sample["image"].shape[1:]) == STRETCHED_SIZE
    assert sample["is_pet"] is False and sample["breed"] == NOT_A_PET
    assert sample["mask"].unique().tolist() == [BACKGROUND_INDEX]
    assert sample["pseudo_mask"].unique().tolist() == [IGNORE_INDEX]


def test_pseudo_masks_fill_in_only_where_there_is_no_trimap(tiny_pet_root, tmp_path):
    records = read_split(tiny_pet_root, "trainval")
    without, with_trimap = next(r for r in records if not r.has_trimap), next(r for r in records if r.has_trimap)
    for record in (without, with_trimap):
        Image.fromarray(np.full((64, 64), 2, dtype=np.uint8)).save(tmp_path / f"{record.name}.png")
    dataset = OxfordPetDataset([without, with_trimap], v2.ToImage(), tmp_path)
    assert dataset[0]["pseudo_mask"].unique().tolist() == [2]
    assert dataset[0]["mask"].unique().tolist() == [IGNORE_INDEX], "a pseudo mask is never ground truth"
    assert dataset[1]["pseudo_mask"].unique().tolist() == [IGNORE_INDEX]


def test_trivial_augment_keeps_mask_and_photo_aligned():
    """Photometric ops only: the mask of a random crop + flip + TrivialAugment matches the image's geometry."""
    image = Image.new("RGB", (64, 64), (10, 10, 10))
    image.paste((250, 250, 250), (0, 0, 32, 64))  # bright left half
    mask = np.ones((64, 64), dtype=np.uint8)
    mask[:, :32] = 0  # pet = the bright half
    transform = train_transform(_config(32), trivial_augment=True)
    assert not set(PhotometricTrivialAugmentWide._AUGMENTATION_SPACE) & {"ShearX", "TranslateX", "Rotate"}
    for seed in range(20):
        torch.manual_seed(seed)
        out_image, out_mask = transform(image, tv_tensors.Mask(torch.from_numpy(mask)))
        values, pet = out_image.mean(dim=0), out_mask == 0
        if not 0 < pet.float().mean() < 1:
            continue
        inside, outside = values[pet], values[~pet]
        gap = (inside.mean() - outside.mean()).abs()
        if gap > 0.2:  # some ops (solarize) can make the halves alike; then there is nothing to check
            assert max(inside.std(), outside.std()) < gap / 2, seed
