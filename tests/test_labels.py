"""The label module matches the dataset's own list: 37 breeds in official order, 12 cats, 25 dogs."""

from __future__ import annotations

import pytest
from conftest import REAL_DATA_ROOT

from petnet.labels import (
    BREED_BY_NAME,
    BREED_NAMES,
    BREED_SPECIES,
    BREEDS,
    IGNORE_INDEX,
    MASK_CLASSES,
    SPECIES,
    display_name,
    species_of,
)


def test_counts_and_species() -> None:
    assert len(BREEDS) == len(BREED_NAMES) == len(BREED_SPECIES) == 37
    assert len(set(BREED_NAMES)) == 37
    assert SPECIES == ("cat", "dog")
    assert BREED_SPECIES.count("cat") == 12 and BREED_SPECIES.count("dog") == 25


def test_class_ids_and_indices_follow_the_official_order() -> None:
    assert [b.class_id for b in BREEDS] == list(range(1, 38))
    assert [b.index for b in BREEDS] == list(range(37))
    assert BREED_NAMES[0] == "Abyssinian" and BREED_NAMES[-1] == "yorkshire_terrier"
    assert all(BREED_BY_NAME[b.name] is b for b in BREEDS)


def test_names_and_species_match_the_dataset_list() -> None:
    list_file = REAL_DATA_ROOT / "annotations" / "list.txt"
    if not list_file.is_file():
        pytest.skip("shared dataset not available")
    from_file: dict[int, tuple[str, str]] = {}
    for line in list_file.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        image_name, class_id, species_id, _ = line.split()
        from_file[int(class_id)] = (image_name.rsplit("_", 1)[0], SPECIES[int(species_id) - 1])
    assert [from_file[i] for i in sorted(from_file)] == list(zip(BREED_NAMES, BREED_SPECIES))


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("american_pit_bull_terrier", "American Pit Bull Terrier"),
        ("Maine_Coon", "Maine Coon"),
        ("pug", "Pug"),
        ("British_Shorthair", "British Shorthair"),
    ],
)
def test_display_names(name: str, shown: str) -> None:
    assert display_name(name) == shown
    assert BREED_BY_NAME[name].display_name == shown


def test_species_rule_and_mask_classes() -> None:
    assert species_of("Sphynx") == "cat" and species_of("samoyed") == "dog"
    assert MASK_CLASSES == ("pet", "background", "boundary")
    assert IGNORE_INDEX == 255
