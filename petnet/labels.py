"""The one place that knows the Oxford-IIIT Pet label set.

Breeds are listed in the official class-id order (1..37 in ``annotations/list.txt``) with their
case-sensitive dataset names; everything else (config defaults, data reader, UI) derives from here.
"""

from __future__ import annotations

from dataclasses import dataclass

SPECIES: tuple[str, ...] = ("cat", "dog")
"""Species names in official order (species id 1 = cat, 2 = dog)."""

MASK_CLASSES: tuple[str, ...] = ("pet", "background", "boundary")
"""Mask class names by predicted value: 0 = pet, 1 = background, 2 = boundary (trimap value - 1)."""

BACKGROUND_INDEX = MASK_CLASSES.index("background")
PET_INDEX = MASK_CLASSES.index("pet")
BOUNDARY_INDEX = MASK_CLASSES.index("boundary")
ANIMAL_INDICES = (PET_INDEX, BOUNDARY_INDEX)
"""Mask values that are part of an animal (a pseudo mask's unsure pixels, ``IGNORE_INDEX``, are not)."""

IGNORE_INDEX = 255
"""Mask value for pixels without ground truth (images without a trimap)."""


@dataclass(frozen=True)
class Breed:
    """One breed: its official 1-based class id, dataset name and species."""

    class_id: int
    name: str
    species: str

    @property
    def index(self) -> int:
        """0-based index into the breed logits."""
        return self.class_id - 1

    @property
    def display_name(self) -> str:
        """Human-readable name, e.g. ``american_pit_bull_terrier`` -> ``American Pit Bull Terrier``."""
        return display_name(self.name)


def display_name(breed_name: str) -> str:
    """Title-case a dataset breed name for people (``Maine_Coon`` -> ``Maine Coon``)."""
    return " ".join(word[:1].upper() + word[1:] for word in breed_name.split("_"))


def species_of(breed_name: str) -> str:
    """The dataset's own rule: breed names starting with a capital letter are cats."""
    return SPECIES[0] if breed_name[:1].isupper() else SPECIES[1]


_NAMES = (
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle",
    "Bengal", "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau",
    "english_cocker_spaniel", "english_setter", "german_shorthaired", "great_pyrenees", "havanese",
    "japanese_chin", "keeshond", "leonberger", "Maine_Coon", "miniature_pinscher", "newfoundland",
    "Persian", "pomeranian", "pug", "Ragdoll", "Russian_Blue", "saint_bernard", "samoyed",
    "scottish_terrier", "shiba_inu", "Siamese", "Sphynx", "staffordshire_bull_terrier",
    "wheaten_terrier", "yorkshire_terrier",
)  # fmt: skip

BREEDS: tuple[Breed, ...] = tuple(
    Breed(class_id=i + 1, name=name, species=species_of(name)) for i, name in enumerate(_NAMES)
)
BREED_NAMES: tuple[str, ...] = tuple(b.name for b in BREEDS)
BREED_SPECIES: tuple[str, ...] = tuple(b.species for b in BREEDS)
BREED_BY_NAME: dict[str, Breed] = {b.name: b for b in BREEDS}
BREED_SPECIES_INDEX: tuple[int, ...] = tuple(SPECIES.index(b.species) for b in BREEDS)
"""Species index of each breed, in label order."""
