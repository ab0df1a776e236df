"""ONNX Runtime: the exported graphs against PyTorch, the shipped int8 graphs against float32,
which runtime ``load_model`` picks, and what happens when a graph is missing or corrupt."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from petnet import hub
from petnet.errors import WeightsError
from petnet.hub import load_model
from petnet.images import load_image
from petnet.inference.onnx_network import ONNX_FILES, OnnxModel, graph_files
from petnet.models.network import PetNet
from petnet.paths import BUNDLED_MODEL_DIR, EXAMPLES_DIR

FLOAT32_TOLERANCE = 1e-3
"""Largest difference allowed between ONNX Runtime and PyTorch, both float32, on any output logit:
the two differ only in kernel summation order (2e-5 measured on the shipped model)."""
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.jpg"))[:4]


def _inputs(model, paths: list[Path]) -> np.ndarray:
    return np.stack([np.asarray(model.predictor.prepare(load_image(path)).pixels) for path in paths])


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "petnet.hub" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("directory", ["tiny", "shipped"])
def test_float32_graphs_compute_what_pytorch_computes(directory: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue("tiny_onnx_model") if directory == "tiny" else BUNDLED_MODEL_DIR
    torch_model = load_model(folder, runtime="torch", precision="float32")
    onnx_model = load_model(folder, runtime="onnx", precision="float32")
    assert isinstance(onnx_model, OnnxModel) and onnx_model.runtime == "onnxruntime float32"
    images = _inputs(onnx_model, EXAMPLES)
    expected, got = torch_model.predictor.network.infer(images), onnx_model.predictor.network.infer(images)
    for name, want, have in zip(expected._fields, expected, got, strict=True):
        np.testing.assert_allclose(have, want, atol=FLOAT32_TOLERANCE, err_msg=name)
    for want, have in zip(torch_model.predictor.network.infer_classification(images),
                          onnx_model.predictor.network.infer_classification(images), strict=True):  # fmt: skip
        np.testing.assert_allclose(have, want, atol=FLOAT32_TOLERANCE)


@pytest.mark.skipif(hub.int8_may_saturate(), reason="int8 convolutions overflow on this CPU (no VNNI); float32 runs here")
def test_shipped_int8_graphs_answer_as_float32_does() -> None:
    """int8 moves logits a little (0.3 on a breed logit at most on validation photos): the same
    species and top breed, nearly every mask pixel, the pet score within a few hundredths."""
    float32 = load_model(BUNDLED_MODEL_DIR, runtime="onnx", precision="float32")
    int8 = load_model(BUNDLED_MODEL_DIR, runtime="onnx", precision="int8")
    images = _inputs(float32, EXAMPLES)
    want, have = float32.predictor.network.infer(images), int8.predictor.network.infer(images)
    assert (want.breed_logits.argmax(1) == have.breed_logits.argmax(1)).all()
    assert (want.mask_logits.argmax(1) == have.mask_logits.argmax(1)).mean() >= 0.97
    from scipy.special import expit as sigmoid
    assert np.abs(sigmoid(want.pet_logits) - sigmoid(have.pet_logits)).max() < 0.05
    for path in EXAMPLES:
        a, b = float32.predict(path), int8.predict(path)
        assert (a.species, a.breed[0], a.has_pet, len(a.pets)) == (b.species, b.breed[0], b.has_pet, len(b.pets))


def test_auto_runs_onnx_on_a_cpu_and_the_environment_can_ask_for_pytorch(
    tiny_onnx_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(hub.RUNTIME_ENV_VAR, raising=False)
    assert isinstance(load_model(tiny_onnx_model), OnnxModel)
    monkeypatch.setenv(hub.RUNTIME_ENV_VAR, "torch")
    assert isinstance(load_model(tiny_onnx_model), PetNet)
    assert isinstance(load_model(tiny_onnx_model, runtime="onnx"), OnnxModel), "the argument beats the variable"
    monkeypatch.setenv(hub.RUNTIME_ENV_VAR, "tensorflow")
    with pytest.raises(ValueError, match="runtime must be one of"):
        load_model(tiny_onnx_model)
    with pytest.raises(ValueError, match="CPU only"):
        load_model(tiny_onnx_model, runtime="onnx", device="cuda")


def test_precision_auto_takes_the_graphs_the_config_names(
    tiny_onnx_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = shutil.copytree(tiny_onnx_model, tmp_path / "model")
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config.replace('"onnx_precision": "float32"', '"onnx_precision": "int8"'))
    monkeypatch.setattr(hub, "int8_may_saturate", lambda: False)
    assert load_model(folder, runtime="onnx").runtime == "onnxruntime int8"
    assert load_model(folder, runtime="onnx", precision="float32").runtime == "onnxruntime float32"
    # a CPU whose int8 convolutions overflow runs float32 unless int8 is asked for by name
    monkeypatch.setattr(hub, "int8_may_saturate", lambda: True)
    with caplog.at_level(logging.WARNING, logger="petnet.hub"):
        assert load_model(folder, runtime="onnx").runtime == "onnxruntime float32"
    assert any("VNNI" in message for message in _warnings(caplog))
    assert load_model(folder, runtime="onnx", precision="int8").runtime == "onnxruntime int8"
    for name in graph_files("float32"):  # without float32 graphs, int8 it is
        (folder / name).unlink()
    assert load_model(folder, runtime="onnx").runtime == "onnxruntime int8"


@pytest.mark.parametrize("damage", ["missing", "truncated", "not onnx"])
def test_a_broken_graph_falls_back_to_pytorch_with_one_warning(
    damage: str, tiny_onnx_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = shutil.copytree(tiny_onnx_model, tmp_path / "model")
    graph = folder / graph_files("float32")[1]
    if damage == "missing":
        graph.unlink()
    elif damage == "truncated":
        graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    else:
        graph.write_text("<html>Not found</html>")
    with caplog.at_level(logging.WARNING):
        model = load_model(folder, runtime="onnx", precision="float32")
    assert isinstance(model, PetNet)
    [warning] = _warnings(caplog)
    assert "Running on PyTorch instead of ONNX Runtime" in warning and graph.name in warning
    assert model.predict(EXAMPLES[0]).full_mask.shape == load_image(EXAMPLES[0]).size[::-1]


def test_without_pytorch_a_broken_graph_is_a_clear_error(
    tiny_onnx_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = shutil.copytree(tiny_onnx_model, tmp_path / "model")
    (folder / ONNX_FILES["float32"]).unlink()
    monkeypatch.setattr(hub, "_installed", lambda module: module != "torch")
    with pytest.raises(WeightsError, match="PyTorch, the other runtime, is not installed"):
        load_model(folder, runtime="onnx", precision="float32")


def test_the_default_repo_serves_the_graphs_checked_against_the_packaged_ones(
    tiny_onnx_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from test_hub import LoopbackHub, _point_hub_at

    tampered = shutil.copytree(tiny_onnx_model, tmp_path / "tampered")
    graph = tampered / graph_files("float32")[0]
    graph.write_bytes(graph.read_bytes().replace(b"images", b"imagez", 1))  # still a loadable graph: only the hash tells
    server = LoopbackHub({"petnet-tests/same": tiny_onnx_model, "petnet-tests/tampered": tampered}, tags=(hub.DEFAULT_REVISION,))
    try:
        _point_hub_at(monkeypatch, server.endpoint, tmp_path / "hf-cache")
        monkeypatch.delenv(hub.REPO_ENV_VAR, raising=False)
        monkeypatch.setattr(hub, "BUNDLED_MODEL_DIR", tiny_onnx_model)
        monkeypatch.setattr(hub, "DEFAULT_REPO_ID", "petnet-tests/same")
        model = load_model(runtime="onnx")
        assert model.weights_source.startswith("hub: petnet-tests/same@") and model.runtime == "onnxruntime float32"
        fetched = {request.split("/")[-1] for request in server.requests if request.startswith("GET") and "/resolve/" in request}
        assert fetched == {"config.json", *graph_files("float32")}, "only the files the runtime needs"
        monkeypatch.setattr(hub, "DEFAULT_REPO_ID", "petnet-tests/tampered")
        with caplog.at_level(logging.WARNING):
            model = load_model(runtime="onnx")
        assert model.weights_source.startswith("bundled: ")
        [warning] = _warnings(caplog)
        assert graph.name in warning and "SHA-256" in warning
    finally:
        server.close()


@pytest.mark.parametrize("directory", ["tiny", "shipped"])
def test_graphs_upsample_by_constant_scales(directory: str, request: pytest.FixtureRequest) -> None:
    """No ``Shape`` op sizes a ``Resize`` (export's point 5): in an int8 graph it would dequantize a
    whole activation only to read its shape."""
    import onnx

    folder = request.getfixturevalue("tiny_onnx_model") if directory == "tiny" else BUNDLED_MODEL_DIR
    for file in ONNX_FILES.values():
        ops = [node.op_type for node in onnx.load(str(folder / file)).graph.node]
        assert "Shape" not in ops, file
        assert ("Resize" in ops) == ("classify" not in file), file


def test_a_classification_graph_without_the_pet_logit_serves_a_model_without_the_second_look(
    tiny_onnx_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Graphs exported before the cut gave the pet logit keep working, unless the config asks for
    the second look, which needs it: then the model falls back with the plain warning."""
    import json

    import onnx.utils

    from petnet.inference.onnx_network import CLASSIFY_OUTPUTS, INPUT_NAME

    folder = shutil.copytree(tiny_onnx_model, tmp_path / "model")
    full, cut = graph_files("float32")
    onnx.utils.extract_model(str(folder / full), str(folder / cut), [INPUT_NAME], list(CLASSIFY_OUTPUTS[:2]))
    model = load_model(folder, runtime="onnx", precision="float32")
    assert isinstance(model, OnnxModel) and model.predictor.network.infer_classification(_inputs(model, EXAMPLES[:1]))[2] is None
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "presence_second_look": True}))
    with caplog.at_level(logging.WARNING):
        assert isinstance(load_model(folder, runtime="onnx", precision="float32"), PetNet)
    [warning] = _warnings(caplog)
    assert "pet_logits" in warning


def _with_animal_check(folder: Path, threshold: float) -> Path:
    """``folder``'s config given ``animal_check_threshold`` and a tiny stand-in for the check's graph:
    a convolution and a linear layer to ImageNet's 1,000 logits, written as ``animal_check`` writes it."""
    import json

    import torch

    from petnet.inference.animal_check import ANIMAL_CHECK_FILE
    from petnet.inference.onnx_network import INPUT_NAME, OPSET

    torch.manual_seed(0)
    classifier = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 1000))
    torch.onnx.export(classifier.eval(), (torch.zeros(1, 3, 48, 48),), str(folder / ANIMAL_CHECK_FILE), input_names=[INPUT_NAME],
                      dynamic_axes={INPUT_NAME: {0: "batch"}}, opset_version=OPSET, dynamo=False)  # fmt: skip
    values = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**values, "animal_check_threshold": threshold}))
    return folder


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_a_model_with_an_animal_check_runs_it_on_either_runtime(runtime: str, tiny_onnx_model: Path, tmp_path: Path) -> None:
    folder = _with_animal_check(shutil.copytree(tiny_onnx_model, tmp_path / "model"), threshold=-100.0)
    model = load_model(folder, runtime=runtime, precision="float32")
    assert model.predictor.animal_check.size == 48
    model.config.pet_threshold = 0.0  # every photo taken to hold a pet, so every photo is checked
    prediction = model.predict(EXAMPLES[0])
    assert not prediction.has_pet and prediction.other_animal, "odds above -100: another animal"
    model.config.animal_check_threshold = 100.0
    assert model.predict(EXAMPLES[0]).has_pet


def test_a_model_folder_whose_config_asks_for_a_missing_animal_check_is_a_clear_error(tiny_onnx_model: Path, tmp_path: Path) -> None:
    from petnet.inference.animal_check import ANIMAL_CHECK_FILE

    folder = _with_animal_check(shutil.copytree(tiny_onnx_model, tmp_path / "model"), threshold=2.0)
    (folder / ANIMAL_CHECK_FILE).unlink()
    with pytest.raises(WeightsError, match="petnet.training.animal_check writes it"):
        load_model(folder, runtime="onnx")


def test_a_model_saved_with_an_animal_check_keeps_its_graph(tiny_onnx_model: Path, tmp_path: Path) -> None:
    from petnet.inference.animal_check import ANIMAL_CHECK_FILE

    folder = _with_animal_check(shutil.copytree(tiny_onnx_model, tmp_path / "model"), threshold=2.0)
    model = load_model(folder, runtime="torch", precision="float32", fuse=False)
    model.save_pretrained(tmp_path / "saved")  # a re-fitted head or a soup is saved like this
    assert (tmp_path / "saved" / ANIMAL_CHECK_FILE).read_bytes() == (folder / ANIMAL_CHECK_FILE).read_bytes()
    assert load_model(tmp_path / "saved", runtime="torch").predictor.animal_check.size == 48
    import copy
    import pickle

    assert copy.deepcopy(model).predictor.animal_check is model.predictor.animal_check, "a copy (an EMA, export's) shares the check"
    assert pickle.loads(pickle.dumps(model)).predictor.animal_check.path == folder / ANIMAL_CHECK_FILE
    model.save_pretrained(tmp_path / "saved")  # again, into a folder that has the check already
    model.predictor.animal_check = None
    with pytest.raises(WeightsError, match="no animal check to save"):
        model.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "config.json").is_file(), "refused before the folder was touched"
