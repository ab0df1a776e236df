"""The report contract: what write_report produces load_report accepts, and bad files fail clearly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from petnet.errors import PetNetError
from petnet.evaluation.report import (
    BASELINE,
    REPORTS_DIR,
    REQUIRED_KEYS,
    SCHEMA_VERSION,
    ReportError,
    find_reports,
    load_report,
    report_path,
    scenes_by_background,
    write_report,
)


def minimal_report() -> dict:
    """The smallest report with every required key (values shaped like the real ones)."""
    report = {key: None for key in REQUIRED_KEYS[""]}
    for section, keys in REQUIRED_KEYS.items():
        if section:
            report[section] = {key: None for key in keys}
    report.update(schema_version=SCHEMA_VERSION, split="test", worst_cases=[], baseline=dict(BASELINE))
    return report


def test_round_trip_converts_numpy_and_non_finite_values(tmp_path):
    report = minimal_report()
    report["species"] = {"accuracy": np.float64(0.5), "confusion": np.array([[1, 2], [3, 4]])}
    report["segmentation"].update(mean_iou=float("nan"), min_iou=np.float32("inf"), per_class_iou={"pet": -math.inf})
    path = write_report(report, tmp_path / "nested" / "test.json")
    loaded = load_report(path)
    assert loaded["species"] == {"accuracy": 0.5, "confusion": [[1, 2], [3, 4]]}
    assert loaded["segmentation"]["mean_iou"] is None
    assert loaded["segmentation"]["min_iou"] is None
    assert loaded["segmentation"]["per_class_iou"] == {"pet": None}
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["test.json"]  # no temporary file left behind


def test_write_replaces_an_existing_report(tmp_path):
    path = tmp_path / "val.json"
    write_report({**minimal_report(), "split": "old"}, path)
    write_report({**minimal_report(), "split": "val"}, path)
    assert load_report(path)["split"] == "val"


def test_missing_file_says_how_to_create_it(tmp_path):
    with pytest.raises(ReportError, match=r"No evaluation report.*python -m petnet\.evaluate --split val"):
        load_report(tmp_path / "val.json")


def test_report_error_is_a_petnet_error():
    assert issubclass(ReportError, PetNetError)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a report object"),
        (json.dumps({"schema_version": 0}), "schema_version 0"),
        (json.dumps({"split": "test"}), "schema_version None"),
    ],
)
def test_unusable_files_raise_report_error(tmp_path, content, message):
    path = tmp_path / "test.json"
    path.write_text(content)
    with pytest.raises(ReportError, match=message) as error:
        load_report(path)
    assert "petnet.evaluate --split test" in str(error.value)


def test_missing_keys_are_named(tmp_path):
    report = minimal_report()
    del report["worst_cases"]
    del report["segmentation"]["mean_iou"]
    report["breed"] = "not a section"
    path = write_report(report, tmp_path / "test.json")
    with pytest.raises(ReportError) as error:
        load_report(path)
    message = str(error.value)
    assert "'worst_cases'" in message and "'segmentation.mean_iou'" in message and "'breed.top1_accuracy'" in message


def test_find_reports_lists_reports_sorted_and_tolerates_missing_folder(tmp_path):
    assert find_reports(tmp_path / "absent") == []
    for name in ("val.json", "test.json", "notes.txt"):
        (tmp_path / name).write_text('{"schema_version": 1}')
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "bench.json").write_text('{"p50_ms": 40}')
    (tmp_path / "test_masks").mkdir()
    assert [p.name for p in find_reports(tmp_path)] == ["broken.json", "test.json", "val.json"]


def test_paths_and_baseline():
    assert REPORTS_DIR.parts[-2:] == ("assets", "reports")
    assert report_path("val", REPORTS_DIR) == REPORTS_DIR / "val.json"
    assert BASELINE["species_accuracy"] == 0.96 and BASELINE["breed_top3_accuracy"] == 0.87
    assert BASELINE["mean_iou"] == 0.74 and BASELINE["min_iou"] == 0.54


def test_scenes_by_background_sums_the_kinds_and_sets_apart_photos_of_other_animals():
    def cell(n: int, one: int, species: int, n_animals: int, one_animals: int, species_animals: int) -> dict:
        return {"num_images": n, "found": n, "found_one": one, "species_right": species, "breed_right": 0,
                "num_images_on_animals": n_animals, "found_one_on_animals": one_animals,
                "species_right_on_animals": species_animals}  # fmt: skip

    scenes = {"cutout": {"20-45%": cell(10, 9, 8, 3, 2, 2)}, "zoomed_out": {"20-45%": cell(10, 10, 9, 4, 4, 3)}}
    assert scenes_by_background(scenes) == {
        "on photos of other animals": {"20-45%": {"num_images": 7, "found_one": 6, "species_right": 5}},
        "on other photos": {"20-45%": {"num_images": 13, "found_one": 13, "species_right": 12}},
    }
    older = {"cutout": {"20-45%": {key: 1 for key in ("num_images", "found", "found_one", "species_right", "breed_right")}}}
    assert scenes_by_background(older) == {} and scenes_by_background({}) == {}
