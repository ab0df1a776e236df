"""Readers for the official Oxford-IIIT Pet layout (``images/``, ``annotations/``) and the non-pet photos.

Every pet image carries species and breed labels; only some carry a trimap. Images without one get
an all-``IGNORE_INDEX`` mask so segmentation loss and metrics skip them; no mask is invented. A photo
with no cat or dog has a real trimap, all background, and no species or breed. A corrupt image is
skipped and reported instead of crashing an epoch.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from petnet.errors import DatasetError, InvalidImageError
from petnet.images import load_image
from petnet.labels import BREEDS, SPECIES

log = logging.getLogger(__name__)

SPLITS = ("trainval", "test")
NON_PET_SPLITS = {"train": 0.6, "calibration": 0.15, "holdout": 0.25}
"""Fractions of the non-pet photos: trained on, used to choose thresholds, and never tuned on."""
NOT_A_PET = -1
"""``breed_index`` and ``species_index`` of a photo with no cat or dog."""
FIRST_NON_ANIMAL_WNID = "n02666196"
"""ImageNet numbers its classes in WordNet-id order and the first 398 are animals; this is the 399th
(abacus). A non-pet photo is named after its class's WordNet id (``images/<wnid>_<class>.jpg``)."""
STRETCHED_SIZE = (256, 256)
"""The Oxford copy's photos were stretched to 256x256; non-pet photos are stretched the same way,
so the stretch itself cannot tell a pet photo from another."""


@dataclass(frozen=True)
class PetRecord:
    """One labelled image of the dataset."""

    name: str
    breed_index: int
    species_index: int
    image_path: Path
    trimap_path: Path | None

    @property
    def is_pet(self) -> bool:
        return self.breed_index != NOT_A_PET

    @property
    def has_trimap(self) -> bool:
        """A real trimap: drawn by hand for a pet, all background for a photo with no pet."""
        return self.trimap_path is not None or not self.is_pet


def read_split(root: str | Path, split: str) -> list[PetRecord]:
    """Records of ``annotations/<split>.txt`` (``name class-id species breed-id`` per line)."""
    if split not in SPLITS:
        raise DatasetError(f"Unknown split {split!r}; choose one of {SPLITS}.")
    root = Path(root)
    list_file = root / "annotations" / f"{split}.txt"
    if not root.is_dir():
        raise DatasetError(
            f"Dataset root {root} does not exist; pass --data-root pointing at oxford-iiit-pet/ "
            "(or set PETNET_DATA to the folder that holds it)."
        )
    if not list_file.is_file():
        raise DatasetError(f"{list_file} is missing; {root} does not look like the Oxford-IIIT Pet layout.")
    records = [_parse_line(root, line, list_file, n) for n, line in enumerate(list_file.read_text().splitlines(), 1)]
    records = [r for r in records if r is not None]
    missing = [r.image_path.name for r in records if not r.image_path.is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} images listed in {list_file.name} are missing, e.g. {missing[:3]}.")
    return records


def _parse_line(root: Path, line: str, list_file: Path, line_number: int) -> PetRecord | None:
    if not line.strip() or line.startswith("#"):
        return None
    try:
        name, class_id, species_id, _ = line.split()
        breed = BREEDS[int(class_id) - 1]
        species_index = int(species_id) - 1
    except (ValueError, IndexError) as error:
        raise DatasetError(f"{list_file}:{line_number}: malformed line {line!r}.") from error
    if SPECIES[species_index] != breed.species or not name.startswith(breed.name + "_"):
        raise DatasetError(f"{list_file}:{line_number}: labels of {name} disagree with the breed list.")
    trimap = root / "annotations" / "trimaps" / f"{name}.png"
    return PetRecord(name, breed.index, species_index, root / "images" / f"{name}.jpg", trimap if trimap.is_file() else None)


def train_val_split(records: Sequence[PetRecord], val_fraction: float, seed: int) -> tuple[list[PetRecord], list[PetRecord]]:
    """Carve a validation set out of ``trainval``: per breed, a seeded random ``val_fraction`` of the
    images with a trimap and of those without, so both tasks are validated on every breed."""
    groups: dict[tuple[int, bool], list[PetRecord]] = defaultdict(list)
    for record in records:
        groups[(record.breed_index, record.has_trimap)].append(record)
    rng = random.Random(seed)
    train, val = [], []
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda r: r.name)
        rng.shuffle(members)
        n_val = round(len(members) * val_fraction)
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    return sorted(train, key=lambda r: r.name), sorted(val, key=lambda r: r.name)


def split_records(root: str | Path, split: str, val_fraction: float, seed: int) -> list[PetRecord]:
    """Records of ``split``: an official list (``trainval``, ``test``), or the ``train`` or ``val``
    part of ``trainval`` carved by :func:`train_val_split` exactly as training carves it."""
    if split not in ("train", "val"):
        return read_split(root, split)
    train, val = train_val_split(read_split(root, "trainval"), val_fraction, seed)
    return val if split == "val" else train


def read_non_pets(root: str | Path) -> list[PetRecord]:
    """Records of the non-pet photos listed in ``root/list.tsv`` (file, WordNet id, class name)."""
    root = Path(root)
    list_file = root / "list.tsv"
    if not list_file.is_file():
        raise DatasetError(
            f"{list_file} is missing; pass the folder of the non-pet photos (list.tsv + images/) "
            "with --non-pet-root (or set PETNET_DATA to the folder that holds non-pets/)."
        )
    names = [line.split("\t")[0] for line in list_file.read_text().splitlines()[1:] if line.strip()]
    records = [PetRecord(Path(name).stem, NOT_A_PET, NOT_A_PET, root / "images" / name, None) for name in names]
    missing = [r.image_path.name for r in records if not r.image_path.is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} photos listed in {list_file} are missing, e.g. {missing[:3]}.")
    return records


def is_other_animal(record: PetRecord) -> bool:
    """Whether a non-pet photo shows an animal (a horse, a bear, a bird ...; never a cat or dog):
    the photos a pet detector most easily mistakes for pets."""
    return not record.is_pet and record.name.split("_", 1)[0] < FIRST_NON_ANIMAL_WNID


def non_pet_split(records: Sequence[PetRecord], part: str, seed: int = 0) -> list[PetRecord]:
    """One part of a seeded shuffle of the non-pet photos, cut by :data:`NON_PET_SPLITS`."""
    if part not in NON_PET_SPLITS:
        raise DatasetError(f"Unknown non-pet part {part!r}; choose one of {tuple(NON_PET_SPLITS)}.")
    shuffled = sorted(records, key=lambda r: r.name)
    random.Random(seed).shuffle(shuffled)
    start = 0
    for name, fraction in NON_PET_SPLITS.items():
        end = start + round(len(shuffled) * fraction)
        if name == part:
            return sorted(shuffled[start:end], key=lambda r: r.name)
        start = end
    raise AssertionError("unreachable")


def load_record_image(record: PetRecord) -> Image.Image:
    """The photo of ``record``, a photo with no pet stretched to :data:`STRETCHED_SIZE` like the pets."""
    image = load_image(record.image_path)
    return image if record.is_pet else image.resize(STRETCHED_SIZE, Image.Resampling.BICUBIC)


def pseudo_mask_path(directory: Path, name: str) -> Path:
    """Where ``python -m petnet.training.pseudolabel`` writes, and training reads, the pseudo mask of photo ``name``."""
    return directory / f"{name}.png"


def read_pseudo_mask(path: Path) -> np.ndarray:
    """Pseudo mask as a uint8 array: 0 = pet, 1 = background, 2 = boundary, ``IGNORE_INDEX`` = unsure."""
    return np.array(Image.open(path), dtype=np.uint8)


def read_trimap(path: Path) -> np.ndarray:
    """Trimap as a uint8 array of 0 = pet, 1 = background, 2 = boundary (file values 1/2/3)."""
    trimap = np.asarray(Image.open(path).convert("L"), dtype=np.uint8)
    if not np.isin(trimap, (1, 2, 3)).all():
        raise InvalidImageError(f"{path} holds values outside 1/2/3.")
    return trimap - 1
