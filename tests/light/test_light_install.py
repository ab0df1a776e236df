"""What the light install (``pip install -r requirements.txt``: ONNX Runtime, no PyTorch) runs: the
demo, ``petnet-predict`` and ``import petnet`` with ``load_model().predict``. CI runs this folder in
a fresh venv with requirements.txt alone, then again inside the full suite; nothing here may import
torch, so each check that matters runs in a fresh interpreter and asserts that torch stayed out."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from app import results_html
from app.demo import PetDemo, example_paths

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(script: str) -> str:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_load_model_predicts_on_onnx_runtime_without_importing_torch() -> None:
    photo = example_paths()[0]
    out = _run(
        "import sys, json, numpy as np; from PIL import Image; import petnet\n"
        "model = petnet.load_model()\n"
        f"prediction = model.predict({str(photo)!r})\n"
        f"from_array = model.predict(np.asarray(Image.open({str(photo)!r}).convert('RGB')))\n"
        "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules, 'torch was imported'\n"
        "print(json.dumps({'runtime': model.runtime, 'source': model.weights_source, 'species': prediction.species,\n"
        "    'breed': list(prediction.breed), 'array_breed': list(from_array.breed), 'has_pet': prediction.has_pet,\n"
        "    'mask': sorted(int(v) for v in np.unique(prediction.mask)), 'shape': list(prediction.mask.shape)}))"
    )
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["runtime"].startswith("onnxruntime")
    assert answer["has_pet"] and answer["species"] in ("cat", "dog") and len(answer["breed"]) == 3
    assert answer["array_breed"] == answer["breed"], "a numpy photo answers as its file does"
    assert set(answer["mask"]) <= {0, 1, 2}


def test_the_demo_answers_photos_on_onnx_runtime(tmp_path: Path) -> None:
    import petnet

    demo = PetDemo(petnet.load_model(), output_dir=tmp_path)
    photos = example_paths()[:2]
    columns = demo.predict_batch(photos, [0.5, 0.5])
    for photo, overlay, verdict, details, _, downloads in zip(photos, *columns, strict=True):
        assert Image.open(overlay).size == Image.open(photo).size
        assert details["has_pet"] and results_html.NO_PET not in verdict
        assert set(np.unique(np.asarray(Image.open(downloads[-1])))) <= {0, 1, 2}


def test_petnet_predict_labels_a_folder_on_onnx_runtime(tmp_path: Path) -> None:
    source = tmp_path / "photos"
    source.mkdir()
    for photo in example_paths()[:2]:
        (source / Path(photo).name).write_bytes(Path(photo).read_bytes())
    (source / "broken.jpg").write_bytes(b"not a picture")
    out = tmp_path / "out"
    _run(
        "import sys; from petnet.predict import main\n"
        f"main([{str(source)!r}, '--out', {str(out)!r}])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    with open(out / "results.csv", newline="") as rows:
        results = {Path(row["file"]).name: row for row in csv.DictReader(rows)}
    assert set(results) == {Path(p).name for p in example_paths()[:2]} | {"broken.jpg"}
    assert results["broken.jpg"]["error"] and not results[Path(example_paths()[0]).name]["error"]


def test_the_dashboard_renders_the_shipped_reports_without_torch() -> None:
    out = _run(
        "import sys; from streamlit.testing.v1 import AppTest\n"
        "app = AppTest.from_file('app/dashboard.py', default_timeout=120).run()\n"
        "assert not app.exception, [e.message for e in app.exception]\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(len(app.tabs))"
    )
    assert int(out.strip().splitlines()[-1]) >= 5
