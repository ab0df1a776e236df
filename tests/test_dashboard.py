"""The Streamlit dashboard, run headless with AppTest on generated, shipped and broken reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT
from report_factory import make_report, write_training_log
from streamlit.testing.v1 import AppTest

from app.dashboard import image_root_candidates, parse_options, resolve_images_root, split_caption
from petnet.config import PetNetConfig
from petnet.evaluate import main as evaluate_main
from petnet.evaluation.report import HEADLINE_METRICS, REPORTS_DIR
from petnet.models.network import PetNet
from petnet.paths import OXFORD_PET_ROOT

DASHBOARD = PROJECT_ROOT / "app" / "dashboard.py"

TIMEOUT = 120
CHARTS_PER_PAGE = 8  # species, most-confused, breed, per-breed bar, mask IoU, pixel confusion, 2 training curves


@pytest.fixture(scope="module")
def report_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid generated report (with masks, a training log and 4 synthetic worst-case images)."""
    root = tmp_path_factory.mktemp("dashboard")
    return make_report(root / "reports", root / "data")


def run_dashboard(monkeypatch: pytest.MonkeyPatch, **environ: str) -> AppTest:
    """Run the page once with ``PETNET_*`` variables set, as `streamlit run` would with CLI flags."""
    for name in ("PETNET_REPORT", "PETNET_REPORTS_DIR", "PETNET_IMAGES_ROOT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return AppTest.from_file(str(DASHBOARD), default_timeout=TIMEOUT).run()


def expected_headline(report: dict) -> dict[str, str]:
    """The cards the dashboard must show: petnet.evaluation.report's headline table, sections the report has."""
    return {
        metric.label: metric.format(metric.value(report))
        for metric in HEADLINE_METRICS
        if metric.card and metric.section in report
    }


def test_cards_come_from_the_one_headline_table() -> None:
    labels = [metric.label for metric in HEADLINE_METRICS if metric.card]
    assert labels[:3] == ["Species accuracy", "Breed top-1 accuracy", "Breed top-3 accuracy"]
    assert "Binary pet IoU" in labels


def test_split_caption_states_the_counts_once() -> None:
    report = {
        "num_images": 2430,
        "num_images_with_trimap": 405,
        "model": {"backbone": "tf_efficientnet_lite1", "image_size": 240},
        "created_utc": "2026-11-23T04:05:49Z",
    }
    official = split_caption(
        {**report, "split_description": "official test split, 2,430 of 3,669 images (405 with trimaps)"}
    )
    assert official.count("405 with trimaps") == 1 and "tf_efficientnet_lite1 at 240 px" in official
    bare = split_caption({**report, "split_description": "test split"})
    assert "2,430 images (405 with trimaps)" in bare


def assert_renders(app: AppTest, report: dict) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert {m.label: m.value for m in app.metric} == expected_headline(report)
    assert report["split_description"] in app.caption[0].value
    assert app.caption[0].value.count(f"{report['num_images_with_trimap']:,} with trimaps") == 1


def test_generated_report_renders_every_chart_and_the_json_headline(report_path, monkeypatch) -> None:
    report = json.loads(report_path.read_text())
    app = run_dashboard(monkeypatch, PETNET_REPORT=str(report_path))
    assert_renders(app, report)
    assert len(app.get("plotly_chart")) == CHARTS_PER_PAGE
    deltas = {m.label: m.delta for m in app.metric}
    expected = (report["species"]["accuracy"] - report["baseline"]["species_accuracy"]) * 100
    assert deltas["Species accuracy"] == f"{expected:+.1f} pp"
    assert deltas["Breed top-1 accuracy"] == ""  # the original PetNet published no top-1 figure
    assert values_of(app)["Binary pet IoU"] == "n/a"  # an older report without the figure
    assert "Pet photos recognised" not in values_of(app)  # nor a detection section: no detection cards
    baseline = next(c.value for c in app.caption if "Arrows compare with the" in c.value)
    assert report["baseline"]["name"] in baseline and "96.0%" in baseline and "0.740" in baseline
    cases = len(report["worst_cases"])
    assert (
        len(app.get("image")) == 3 * cases + 2 * cases
    )  # worst cases: photo, truth, prediction; gallery: truth, prediction
    assert any("Lowest per-image IoU among the report's worst cases" in c.value for c in app.caption)


def values_of(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_new_report_sections_show_binary_iou_detection_and_the_lowest_iou_gallery(
    report_path, tmp_path, monkeypatch
) -> None:
    report = json.loads(report_path.read_text())
    report["segmentation"]["binary_pet_iou"] = 0.912
    report["segmentation"]["lowest_iou"] = sorted(report["worst_cases"], key=lambda c: c["iou"])[:2]
    report["detection"] = {"pets_kept": 0.985, "non_pets_accepted": 0.031, "auroc": 0.995, "threshold": 0.5,
                           "num_pets": 400, "num_non_pets": 300,
                           "single_pets_one_answer": 0.99,
                           "two_animal": {"num_images": 10, "count_right": 8, "both_species_right": 7}}  # fmt: skip
    path = report_path.parent / "new.json"
    path.write_text(json.dumps(report))
    app = run_dashboard(monkeypatch, PETNET_REPORT=str(path))
    assert_renders(app, report)
    values = values_of(app)
    assert values["Binary pet IoU"] == "0.912"
    assert values["Pet photos recognised"] == "98.5%" and values["Non-pet photos accepted"] == "3.1%"
    assert any("binary pet IoU" in c.value and "0.912" in c.value for c in app.caption)
    assert any(c.value.startswith("Lowest per-image IoU of the split") for c in app.caption)
    assert any(c.value == "Two-animal composites: count right 80.0%, both species right 70.0% of 10; "
               "single-pet photos given one answer 99.0%." for c in app.caption)  # fmt: skip
    assert len(app.get("image")) == 3 * len(report["worst_cases"]) + 2 * 2


def test_non_finite_figures_are_refused_by_the_schema_check(report_path, tmp_path, monkeypatch) -> None:
    text = report_path.read_text()
    report = json.loads(text)
    path = tmp_path / "test.json"
    path.write_text(text.replace(f'"accuracy": {report["species"]["accuracy"]}', '"accuracy": NaN', 1))
    app = run_dashboard(monkeypatch, PETNET_REPORT=str(path))
    assert not app.exception and "nan%" not in str([m.value for m in app.metric])
    assert len(app.error) == 1 and "non-finite" in app.error[0].value


def test_shipped_report_renders(monkeypatch) -> None:
    shipped = REPORTS_DIR / "test.json"
    if not shipped.is_file():
        pytest.skip("assets/reports/test.json has not been produced yet")
    app = run_dashboard(monkeypatch, PETNET_REPORT=str(shipped))
    assert_renders(app, json.loads(shipped.read_text()))


def test_report_written_by_petnet_evaluate_renders(tiny_pet_root, tmp_path, monkeypatch) -> None:
    """The writer/reader contract end to end: a real ``petnet.evaluate`` report of a tiny random model."""
    model_dir = tmp_path / "model"
    PetNet(PetNetConfig(image_size=64)).save_pretrained(model_dir)
    out = tmp_path / "reports" / "test.json"
    evaluate_main(["--split", "test", "--model", str(model_dir), "--data-root", str(tiny_pet_root), "--out", str(out),
                   "--batch-size", "6", "--num-workers", "0", "--worst", "4", "--scenes", "1"])  # fmt: skip
    report = json.loads(out.read_text())
    app = run_dashboard(monkeypatch, PETNET_REPORT=str(out))
    assert_renders(app, report)
    assert any("No training logs" in info.value for info in app.info)
    assert len(app.get("image")) > 0  # worst cases drawn from the tiny dataset named in the report


def test_undefined_segmentation_shows_n_a(report_path, tmp_path, monkeypatch) -> None:
    """A split without trimaps has null IoUs; the cards say n/a instead of failing."""
    report = json.loads(report_path.read_text())
    segmentation = report["segmentation"]
    for key in ("mean_iou", "min_iou", "mean_dice", "pixel_accuracy"):
        segmentation[key] = None
    segmentation["per_class_iou"] = segmentation["per_class_dice"] = dict.fromkeys(segmentation["per_class_iou"])
    segmentation["confusion"] = [[0, 0, 0]] * 3
    path = tmp_path / "test.json"
    path.write_text(json.dumps(report))
    app = run_dashboard(monkeypatch, PETNET_REPORT=str(path))
    assert not app.exception and not app.error
    values = {m.label: (m.value, m.delta) for m in app.metric}
    assert values["Mask mean IoU"] == values["Mask worst-class IoU"] == ("n/a", "")


def test_sidebar_switches_between_reports_in_a_folder(tmp_path, monkeypatch) -> None:
    make_report(tmp_path / "reports", tmp_path / "data", split="test", seed=1)
    val = json.loads(make_report(tmp_path / "reports", tmp_path / "data", split="val", seed=2).read_text())
    app = run_dashboard(monkeypatch, PETNET_REPORTS_DIR=str(tmp_path / "reports"))
    picker = app.sidebar.selectbox[0]
    assert picker.options == ["test", "val"] and picker.value == "test"
    app = picker.select("val").run()
    assert_renders(app, val)


def test_training_tab_picks_between_the_runs_of_an_averaged_model(tmp_path, monkeypatch) -> None:
    path = make_report(tmp_path / "reports", tmp_path / "data")
    second = tmp_path / "reports" / "runs" / "another-run" / "training_log.csv"
    second.parent.mkdir()
    write_training_log(second, seed=5)
    app = run_dashboard(monkeypatch, PETNET_REPORT=str(path))
    assert not app.exception and not app.error
    picker = next(box for box in app.selectbox if box.label == "Training run")
    assert picker.options == ["another-run", "sample-run"]  # labelled by run folder
    assert not picker.select("sample-run").run().exception


def test_unreachable_images_fall_back_to_a_table(tmp_path, monkeypatch) -> None:
    path = make_report(tmp_path / "reports", tmp_path / "data")
    report = json.loads(path.read_text())
    report["data_root"] = str(tmp_path / "nowhere")
    path.write_text(json.dumps(report))
    app = run_dashboard(monkeypatch, PETNET_REPORT=str(path), PETNET_IMAGES_ROOT=str(tmp_path / "nowhere"))
    assert not app.exception
    tables = [frame.value for frame in app.dataframe]
    assert any(list(t["image"]) == [c["name"] for c in report["worst_cases"]] for t in tables if "image" in t)
    prompt = next(info.value for info in app.info if "Photos not found" in info.value)
    assert str(tmp_path / "nowhere") in prompt and str(OXFORD_PET_ROOT) in prompt and "Dataset folder" in prompt


def test_images_are_found_where_the_dataset_usually_sits(tmp_path) -> None:
    """A fresh clone: the report names a relative data_root, Streamlit runs from anywhere."""
    report = {"data_root": "../shared/data/oxford-iiit-pet"}
    candidates = image_root_candidates("", report)
    assert candidates[0] == (PROJECT_ROOT / "../shared/data/oxford-iiit-pet").resolve()
    assert candidates[-1] == OXFORD_PET_ROOT and all(path.is_absolute() for path in candidates)
    assert resolve_images_root(str(tmp_path / "typed"), {}) == (
        OXFORD_PET_ROOT if (OXFORD_PET_ROOT / "images").is_dir() else None
    )
    (tmp_path / "typed" / "images").mkdir(parents=True)
    assert resolve_images_root(str(tmp_path / "typed"), report) == tmp_path / "typed"


def test_edited_report_is_reread_not_served_from_cache(tmp_path, monkeypatch) -> None:
    path = make_report(tmp_path / "reports", tmp_path / "data")
    run_dashboard(monkeypatch, PETNET_REPORT=str(path))
    report = json.loads(path.read_text())
    report["species"]["accuracy"] = 0.5
    path.write_text(json.dumps(report))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    app = run_dashboard(monkeypatch, PETNET_REPORT=str(path))
    assert app.metric[0].value == "50.0%"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No evaluation report"),
        ("{not json", "not valid JSON"),
        (json.dumps({"schema_version": 99}), "schema_version 99"),
        (json.dumps({"schema_version": 1, "split": "test"}), "lacks required keys"),
    ],
    ids=["missing", "bad-json", "wrong-version", "missing-keys"],
)
def test_broken_report_shows_an_error_not_a_traceback(tmp_path, monkeypatch, content, message) -> None:
    path = tmp_path / "test.json"
    if content is not None:
        path.write_text(content)
    app = run_dashboard(monkeypatch, PETNET_REPORT=str(path))
    assert not app.exception
    assert len(app.error) == 1 and message in app.error[0].value
    assert not app.metric


def test_report_with_wrong_shapes_shows_an_error(report_path, tmp_path, monkeypatch) -> None:
    report = json.loads(report_path.read_text())
    report["breed"]["confusion"] = [[1, 2], [3]]
    path = tmp_path / "test.json"
    path.write_text(json.dumps(report))
    app = run_dashboard(monkeypatch, PETNET_REPORT=str(path))
    assert not app.exception
    assert "could not be drawn" in app.error[0].value


def test_empty_reports_folder_says_how_to_make_one(tmp_path, monkeypatch) -> None:
    app = run_dashboard(monkeypatch, PETNET_REPORTS_DIR=str(tmp_path))
    assert not app.exception
    assert "python -m petnet.evaluate" in app.error[0].value


def test_command_line_flags_win_over_environment() -> None:
    environ = {"PETNET_REPORT": "env.json", "PETNET_IMAGES_ROOT": "/env/images"}
    options = parse_options(["--report", "cli.json", "--unrelated-host-flag"], environ)
    assert options.report == Path("cli.json")
    assert options.images_root == Path("/env/images")
    assert options.reports_dir == REPORTS_DIR
    assert parse_options([], {}).report is None


def test_the_dashboard_listens_on_loopback_unless_told_otherwise() -> None:
    """``streamlit run app/dashboard.py`` from the project root reads ``.streamlit/config.toml``:
    the report browser is not put on every interface by default."""
    import tomllib

    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
