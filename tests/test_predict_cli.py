"""petnet-predict: overlays, CSV/JSON, progress over folders, bad files skipped, exit status."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT, synthetic_pet
from PIL import Image

from petnet.config import PetNetConfig
from petnet.labels import BREED_NAMES, BREED_SPECIES
from petnet.models.network import PetNet
from petnet.predict import CSV_COLUMNS, main


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("model")
    PetNet(PetNetConfig(image_size=64, pet_threshold=0.0)).save_pretrained(directory)  # sees a pet in everything
    return directory


@pytest.fixture(scope="module")
def pet_blind_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("blind")
    PetNet(PetNetConfig(image_size=64, pet_threshold=1.01)).save_pretrained(directory)  # never sees a pet
    return directory


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Three pictures of different sizes and formats, one text file posing as a JPEG, one .txt."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for n, (size, suffix) in enumerate([(80, ".jpg"), (50, ".png"), (64, ".webp")]):
        synthetic_pet(size, seed=n)[0].save(folder / f"pet{n}{suffix}")
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as file:
        return list(csv.DictReader(file))


def test_folder_writes_overlays_csv_and_json(
    tiny_model_dir: Path, photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    code = main([str(photo_dir), "--out", str(out), "--json", "--overlays", "--model", str(tiny_model_dir), "--batch-size", "2"])
    assert code == 0
    rows = _rows(out)
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert sorted(Path(r["file"]).name for r in rows) == ["broken.jpg", "pet0.jpg", "pet1.png", "pet2.webp"]
    good = [r for r in rows if not r["error"]]
    [bad] = [r for r in rows if r["error"]]
    assert Path(bad["file"]).name == "broken.jpg" and bad["species"] == ""
    for row in good:
        assert row["has_pet"] == "True" and int(row["num_pets"]) == len(json.loads(row["pets"])) >= 1
        assert row["species"] in {"cat", "dog"}
        breeds = [row[f"breed_{i}"] for i in (1, 2, 3)]
        assert {BREED_SPECIES[BREED_NAMES.index(b)] for b in breeds} == {row["species"]}
        assert 0.0 <= float(row["pet_fraction"]) <= 1.0
        overlay = Image.open(row["overlay"])
        assert overlay.mode == "RGB" and overlay.size == Image.open(row["file"]).size
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 4
    assert sum("error" in record for record in records) == 1
    for record in records:
        if "error" not in record:
            assert record["has_pet"] is True and 0 <= record["pet_score"] <= 1
            assert {"species", "breed", "breed_confidences", "box", "area_fraction"} <= set(record["pets"][0])
    stderr = capsys.readouterr().err
    assert "Skipping" in stderr and "broken.jpg" in stderr
    assert "4/4" in stderr, "a folder shows a tqdm progress bar"


def test_overlay_blends_mask_over_the_photo(tiny_model_dir: Path, tmp_path: Path) -> None:
    photo = tmp_path / "grey.png"
    Image.new("RGB", (40, 30), (128, 128, 128)).save(photo)
    out = tmp_path / "out"
    assert main([str(photo), "--out", str(out), "--model", str(tiny_model_dir), "--alpha", "0.5", "--overlays"]) == 0
    overlay = np.asarray(Image.open(out / "grey_overlay.png")).astype(int)
    assert overlay.shape == (30, 40, 3)
    assert not (overlay == 128).all(), "the mask colours must show in the overlay"


def test_same_stem_gets_distinct_overlays(tiny_model_dir: Path, tmp_path: Path) -> None:
    for suffix in (".jpg", ".png"):
        synthetic_pet(48, seed=1)[0].save(tmp_path / f"cat{suffix}")
    out = tmp_path / "out"
    assert main([str(tmp_path / "cat.jpg"), str(tmp_path / "cat.png"), "--out", str(out), "--model", str(tiny_model_dir), "--overlays"]) == 0
    assert len({row["overlay"] for row in _rows(out)}) == 2


def test_nothing_readable_exits_non_zero(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    assert main([str(bad), str(tmp_path / "missing.jpg"), "--out", str(out), "--model", str(tiny_model_dir)]) == 1
    assert all(row["error"] for row in _rows(out))


def test_empty_folder_and_bad_model_exit_non_zero(tmp_path: Path, photo_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "--out", str(tmp_path / "out")]) == 1
    assert main([str(photo_dir), "--out", str(tmp_path / "out"), "--model", str(tmp_path / "no-model-here")]) == 1


@pytest.mark.parametrize("flags", [["--batch-size", "0"], ["--alpha", "2"]])
def test_invalid_options_are_usage_errors(flags: list[str], photo_dir: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(photo_dir), *flags])
    assert exit_info.value.code == 2


def test_runs_as_a_module(tiny_model_dir: Path, tmp_path: Path) -> None:
    photo = tmp_path / "pet.jpg"
    synthetic_pet(64, seed=3)[0].save(photo)
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "petnet.predict", str(photo), "--out", str(out), "--model", str(tiny_model_dir), "--overlays"],
        capture_output=True, text=True, timeout=120, check=False, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"{photo}: ")
    assert "Model: local: " in completed.stderr
    assert (out / "pet_overlay.png").is_file()


def test_a_photo_without_a_pet_gets_no_breed(pet_blind_model_dir: Path, tmp_path: Path, capsys) -> None:
    image = tmp_path / "car.png"
    synthetic_pet(64, seed=3)[0].save(image)
    assert main([str(image), "--out", str(tmp_path / "out"), "--json", "--model", str(pet_blind_model_dir)]) == 0
    [row] = _rows(tmp_path / "out")
    assert (row["has_pet"], row["num_pets"], row["species"], row["breed_1"], row["pets"]) == ("False", "0", "", "", "[]")
    assert row["other_animal"] == "False"
    [record] = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert record["has_pet"] is False and record["pets"] == []
    assert "no cat or dog found" in capsys.readouterr().out


def _archive(folder: Path, count: int) -> Path:
    """``count`` small photos in ``folder`` and a subfolder, a broken one in the middle."""
    (folder / "sub").mkdir(parents=True)
    for n in range(count):
        synthetic_pet(48, seed=n)[0].save(folder / ("sub" if n % 3 == 0 else ".") / f"p{n:03d}.jpg")
    (folder / "p005_broken.jpg").write_bytes(b"not a photo")
    (folder / "readme.txt").write_text("not a photo either")
    return folder


def _cli(args: list[str], **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "petnet.predict", *args], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)  # fmt: skip


def test_kill_9_mid_run_then_rerun_labels_every_file_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A crash loses at most the batch in flight; the same command again does only what is missing."""
    import time

    photos, out = _archive(tmp_path / "photos", 60), tmp_path / "out"
    args = [str(photos), "--recursive", "--out", str(out), "--model", str(tiny_model_dir), "--batch-size", "4", "--json"]
    first = _cli(args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not (out / "results.csv").is_file() or len(_rows(out)) < 12):
        time.sleep(0.05)
    first.kill()
    first.wait()
    written = len(_rows(out))
    assert 12 <= written < 61, "killed mid-run, after some batches were flushed"
    second = _cli(args)
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    rows = _rows(out)
    files = [row["file"] for row in rows]
    assert len(files) == len(set(files)) == 61  # 60 photos and the broken one, each once
    assert f"{written} already in the results" in stderr and "1 skipped for their suffix" in stderr
    assert [row["error"] != "" for row in rows].count(True) == 1
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(record["file"] for record in records) == sorted(files)


def test_a_changed_file_is_done_again_and_keeps_one_row(tiny_model_dir: Path, tmp_path: Path) -> None:
    photos, out = _archive(tmp_path / "photos", 4), tmp_path / "out"
    args = [str(photos), "--out", str(out), "--model", str(tiny_model_dir)]
    assert main(args) == 0
    before = {row["file"]: row for row in _rows(out)}
    synthetic_pet(96, seed=9)[0].save(photos / "p001.jpg")  # another picture under the same name
    assert main(args) == 0
    after = {row["file"]: row for row in _rows(out)}
    assert len(_rows(out)) == len(after) == len(before) == 3  # p001, p002 and the broken one; p000, p003 in sub/
    changed = str((photos / "p001.jpg").resolve())
    assert after[changed]["size_bytes"] != before[changed]["size_bytes"]
    assert all(after[name] == before[name] for name in before if name != changed)


def test_results_from_before_the_other_animal_column_are_resumed(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A results.csv without ``other_animal`` gets the column and keeps every row: False where there
    was a pet, blank for an error, and for a photo without a pet what its JSON record says, else blank."""
    from petnet.errors import PetNetError
    from petnet.predict import CSV_COLUMNS_BEFORE_OTHER_ANIMAL, ResultsFile

    photos, out = _archive(tmp_path / "photos", 3), tmp_path / "out"
    assert main([str(photos), "--out", str(out), "--json", "--model", str(tiny_model_dir)]) == 0
    rows = _rows(out)
    pets = [row for row in rows if not row["error"]]
    assert len(rows) == 3 and len(pets) == 2  # p001, p002 and the broken one
    for row, turned_away in zip(pets, ("True", "")):  # as the rows of two photos without a pet read
        row.update(has_pet="False", num_pets="0", species="", pets="[]")
        if turned_away:  # the first one's JSON record says the check turned it away, the second has none
            records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
            records = [{**r, "other_animal": True} if r["file"] == row["file"] else r for r in records]
            lines = [json.dumps(r) for r in records if r["file"] != pets[1]["file"]]
            (out / "results.jsonl").write_text("".join(line + "\n" for line in lines))
    with (out / "results.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS_BEFORE_OTHER_ANIMAL, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert main([str(photos), "--out", str(out), "--model", str(tiny_model_dir)]) == 0  # resumed: nothing to do
    after = _rows(out)
    assert list(after[0]) == list(CSV_COLUMNS) and len(after) == 3
    by_file = {row["file"]: row for row in after}
    assert by_file[pets[0]["file"]]["other_animal"] == "True" and by_file[pets[1]["file"]]["other_animal"] == ""
    assert [row["other_animal"] for row in after if row["error"]] == [""]
    assert all(by_file[row["file"]]["has_pet"] == "False" for row in pets), "kept as they were, not done again"
    (out / "results.csv").write_text("file,colour\n")
    with pytest.raises(PetNetError, match="other columns"):
        ResultsFile(out, jsonl=False)


def test_an_empty_results_file_gets_its_header(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A run killed between creating results.csv and writing its header leaves it empty; the next run writes it."""
    photos, out = _archive(tmp_path / "photos", 3), tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("")
    assert main([str(photos), "--out", str(out), "--model", str(tiny_model_dir)]) == 0
    rows = _rows(out)
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 3


def test_the_ray_engine_refuses_an_out_that_holds_results(tmp_path: Path, photo_dir: Path, caplog) -> None:
    (tmp_path / "out" / "results.parquet").mkdir(parents=True)
    assert main([str(photo_dir), "--engine", "ray", "--out", str(tmp_path / "out")]) == 1
    assert "does not resume" in caplog.text


def test_ctrl_c_finishes_the_batch_and_says_so_without_a_traceback(tiny_model_dir: Path, tmp_path: Path) -> None:
    import signal
    import time

    photos, out = _archive(tmp_path / "photos", 90), tmp_path / "out"
    process = _cli([str(photos), "--recursive", "--out", str(out), "--model", str(tiny_model_dir), "--batch-size", "2"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not (out / "results.csv").is_file() or len(_rows(out)) < 4):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Interrupted: " in stderr
    rows = _rows(out)
    assert 4 <= len(rows) < 91 and len({row["file"] for row in rows}) == len(rows)


def test_subfolders_only_when_asked_and_masks_mirror_them(tiny_model_dir: Path, tmp_path: Path, caplog) -> None:
    photos = _archive(tmp_path / "photos", 6)
    out = tmp_path / "out"
    assert main([str(photos), "--out", str(out), "--model", str(tiny_model_dir)]) == 0
    assert len(_rows(out)) == 5  # p001, p002, p004, p005 and the broken one; sub/ left out
    assert not list(out.rglob("*.png")), "no pictures unless asked"
    out = tmp_path / "out-recursive"
    assert main([str(photos), "--recursive", "--masks", "--out", str(out), "--model", str(tiny_model_dir)]) == 0
    assert (out / "sub" / "p000_mask.png").is_file() and (out / "p001_mask.png").is_file()
    assert set(np.unique(np.asarray(Image.open(out / "sub" / "p003_mask.png")))) <= {0, 1, 2}


@pytest.mark.slow
def test_ray_engine_on_a_local_cluster_gives_the_local_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    """``--engine ray`` (Ray Data, a local 2-CPU cluster started the way users start it) writes
    Parquet with the rows the local engine writes to results.csv, every file, the broken one too."""
    pytest.importorskip("ray")
    import pandas as pd

    photos = _archive(tmp_path / "photos", 7)
    flags = [str(photos), "--recursive", "--model", str(tiny_model_dir)]
    assert main([*flags, "--out", str(tmp_path / "local")]) == 0
    ray_run = _cli([*flags, "--engine", "ray", "--out", str(tmp_path / "ray")], env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    _, stderr = ray_run.communicate(timeout=240)
    assert ray_run.returncode == 0, stderr
    local = pd.DataFrame(_rows(tmp_path / "local")).sort_values("file").reset_index(drop=True)
    on_ray = pd.read_parquet(tmp_path / "ray" / "results.parquet").sort_values("file").reset_index(drop=True)
    assert list(on_ray.columns) == list(CSV_COLUMNS) and len(on_ray) == len(local) == 8
    pd.testing.assert_frame_equal(on_ray.drop(columns=["overlay", "mask"]), local.drop(columns=["overlay", "mask"]))


def test_a_photo_the_animal_check_turned_away_is_said_to_show_another_animal(pet_blind_model_dir: Path) -> None:
    from dataclasses import replace
    from types import SimpleNamespace

    from petnet.hub import load_model
    from petnet.predict import _describe

    prediction = load_model(pet_blind_model_dir).predict(synthetic_pet(64, seed=3)[0])
    source = SimpleNamespace(shown="bear.jpg")
    assert _describe(source, prediction).startswith("bear.jpg: no cat or dog found (pet score")
    assert "another kind of animal" in _describe(source, replace(prediction, other_animal=True))
