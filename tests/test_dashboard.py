"""The Streamlit dashboard, run headless with AppTest on generated, shipped and broken reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from report_factory import make_report, write_training_log
from streamlit.testing.v1 import AppTest

from app.dashboard import parse_options, split_caption
from petnet.config import PetNetConfig
from petnet.evaluate import main as evaluate_main
from petnet.model import PetNet
from petnet.report import REPORTS_DIR

PROJECT_ROOT = Path(__file__).resolve().parents[1]
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
    return {
        "Species accuracy": f"{report['species']['accuracy'] * 100:.1f}%",
        "Breed top-1": f"{report['breed']['top1_accuracy'] * 100:.1f}%",
        "Breed top-3": f"{report['breed']['top3_accuracy'] * 100:.1f}%",
        "Mean IoU": f"{report['segmentation']['mean_iou']:.3f}",
        "Worst-class IoU": f"{report['segmentation']['min_iou']:.3f}",
    }


def test_split_caption_states_the_counts_once() -> None:
    report = {
        "num_images": 2430,
        "num_images_with_trimap": 405,
        "model": {"backbone": "tf_efficientnet_lite1", "image_size": 240},
        "created_utc": "2026-11-23T04:05:49Z",
    }
    official = split_caption({**report, "split_description": "official test split, 2,430 of 3,669 images (405 with trimaps)"})
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
    assert deltas["Breed top-1"] == ""  # the original PetNet published no top-1 figure
    assert len(app.get("image")) == 3 * len(report["worst_cases"])  # photo, true and predicted mask per case


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
                   "--batch-size", "6", "--num-workers", "0", "--worst", "4"])  # fmt: skip
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
    assert values["Mean IoU"] == values["Worst-class IoU"] == ("n/a", "")


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
    assert any("Images not found" in info.value for info in app.info)


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
