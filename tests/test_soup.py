"""petnet.training.soup: weight averaging of training runs."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from petnet.config import PetNetConfig, TrainConfig
from petnet.errors import WeightsError
from petnet.evaluation.report import SOUP_RECIPE_NAME, TRAIN_CONFIG_NAME
from petnet.hub import load_model
from petnet.models.network import PetNet
from petnet.training.soup import average_state_dicts, main


def test_average_of_floats_is_the_mean_and_integers_come_from_the_first():
    first = {"weight": torch.tensor([1.0, 2.0], dtype=torch.float16), "steps": torch.tensor(3)}
    second = {"weight": torch.tensor([3.0, 6.0], dtype=torch.float16), "steps": torch.tensor(9)}
    averaged = average_state_dicts([first, second])
    assert averaged["weight"].dtype == torch.float16
    assert averaged["weight"].tolist() == [2.0, 4.0]
    assert averaged["steps"].item() == 3


def test_average_rejects_mismatched_tensors():
    with pytest.raises(WeightsError, match="State dict 2"):
        average_state_dicts([{"weight": torch.zeros(2)}, {"weight": torch.zeros(3)}])
    with pytest.raises(ValueError):
        average_state_dicts([])


def _save_run(run_dir, config: PetNetConfig, seed: int, export: str = "model") -> PetNet:
    torch.manual_seed(seed)
    model = PetNet(config)
    model.save_pretrained(run_dir / export)
    return model


def test_main_saves_the_averaged_model(tmp_path):
    config = PetNetConfig(image_size=32)
    first, second = _save_run(tmp_path / "a", config, 0), _save_run(tmp_path / "b", config, 1)
    main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "soup")])
    soup = load_model(tmp_path / "soup", fuse=False).state_dict()
    key = "breed_head.3.weight"
    expected = (first.state_dict()[key].half().float() + second.state_dict()[key].half().float()) / 2
    torch.testing.assert_close(soup[key].float(), expected, atol=1e-3, rtol=1e-3)


def test_the_end_of_schedule_exports_can_be_averaged(tmp_path):
    config = PetNetConfig(image_size=32)
    first, second = _save_run(tmp_path / "a", config, 0, "final"), _save_run(tmp_path / "b", config, 1, "final")
    main([str(tmp_path / "a"), str(tmp_path / "b"), "--export", "final", "--out", str(tmp_path / "soup")])
    key = "species_head.3.bias"
    expected = (first.state_dict()[key].half().float() + second.state_dict()[key].half().float()) / 2
    torch.testing.assert_close(load_model(tmp_path / "soup", fuse=False).state_dict()[key].float(), expected,
                               atol=1e-3, rtol=1e-3)  # fmt: skip


def test_runs_of_different_configurations_do_not_mix(tmp_path):
    _save_run(tmp_path / "a", PetNetConfig(image_size=32), 0)
    _save_run(tmp_path / "b", PetNetConfig(image_size=64), 0)
    with pytest.raises(WeightsError, match="different model configurations"):
        main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "soup")])


def test_the_decoder_can_come_from_one_run_alone(tmp_path):
    config = PetNetConfig(image_size=32)
    first, second = _save_run(tmp_path / "a", config, 0), _save_run(tmp_path / "b", config, 1)
    main([str(tmp_path / "a"), str(tmp_path / "b"), "--decoder-from", str(tmp_path / "b"), "--out", str(tmp_path / "soup")])
    soup = load_model(tmp_path / "soup", fuse=False).state_dict()
    decoder = [key for key in soup if key.startswith("decoder.") and soup[key].is_floating_point()]
    assert decoder and all(torch.equal(soup[key], second.state_dict()[key].half().float()) for key in decoder)
    key = "breed_head.3.weight"
    expected = (first.state_dict()[key].half().float() + second.state_dict()[key].half().float()) / 2
    torch.testing.assert_close(soup[key].float(), expected, atol=1e-3, rtol=1e-3)
    recipe = json.loads((tmp_path / "soup" / SOUP_RECIPE_NAME).read_text())
    assert recipe == {"runs": [str(tmp_path / "a"), str(tmp_path / "b")], "export": "model", "decoder_from": [str(tmp_path / "b")]}
    with pytest.raises(ValueError, match="not one of the runs"):
        main([str(tmp_path / "a"), "--decoder-from", str(tmp_path / "b"), "--out", str(tmp_path / "other")])


def test_the_decoder_can_be_the_mean_of_some_runs(tmp_path):
    config = PetNetConfig(image_size=32)
    runs = [_save_run(tmp_path / name, config, seed) for name, seed in (("a", 0), ("b", 1), ("c", 2))]
    main([*(str(tmp_path / name) for name in "abc"), "--decoder-from", str(tmp_path / "b"), str(tmp_path / "c"),
          "--out", str(tmp_path / "soup")])  # fmt: skip
    soup = load_model(tmp_path / "soup", fuse=False).state_dict()
    key = "decoder.classifier.weight"
    halves = [run.state_dict()[key].half().float() for run in runs]
    torch.testing.assert_close(soup[key].float(), (halves[1] + halves[2]) / 2, atol=1e-3, rtol=1e-3)
    key = "breed_head.3.weight"
    halves = [run.state_dict()[key].half().float() for run in runs]
    torch.testing.assert_close(soup[key].float(), sum(halves) / 3, atol=1e-3, rtol=1e-3)


def test_decoders_of_different_initial_weights_are_not_averaged(tmp_path):
    config = PetNetConfig(image_size=32)
    for name, seed in (("a", 0), ("b", 1)):
        _save_run(tmp_path / name, config, seed)
        train_config = dataclasses.asdict(dataclasses.replace(TrainConfig(), init_seed=seed))
        (tmp_path / name / TRAIN_CONFIG_NAME).write_text(json.dumps(train_config))
    runs = [str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(ValueError, match="different initial decoders"):
        main([*runs, "--decoder-from", *runs, "--out", str(tmp_path / "soup")])
    with pytest.raises(ValueError, match="twice"):
        main([*runs, "--decoder-from", runs[0], runs[0], "--out", str(tmp_path / "soup")])


def test_a_soup_grows_by_a_weighted_ingredient(tmp_path):
    config = PetNetConfig(image_size=32)
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        _save_run(tmp_path / name, config, seed)
    main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ab")])
    main([str(tmp_path / "ab"), str(tmp_path / "c"), "--weights", "2", "1", "--out", str(tmp_path / "grown")])
    main([*(str(tmp_path / name) for name in "abc"), "--out", str(tmp_path / "abc")])
    grown = load_model(tmp_path / "grown", fuse=False).state_dict()
    uniform = load_model(tmp_path / "abc", fuse=False).state_dict()
    for key in ("breed_head.3.weight", "encoder.conv_stem.weight"):
        torch.testing.assert_close(grown[key].float(), uniform[key].float(), atol=2e-3, rtol=2e-3)
    assert json.loads((tmp_path / "grown" / SOUP_RECIPE_NAME).read_text())["weights"] == [2.0, 1.0]


def test_weights_must_be_one_per_run_and_not_all_zero(tmp_path):
    config = PetNetConfig(image_size=32)
    runs = [str(tmp_path / name) for name in "ab"]
    for run, seed in zip(runs, (0, 1)):
        _save_run(tmp_path / run, config, seed)
    for weights in (["1"], ["0", "0"], ["-1", "2"]):
        with pytest.raises(ValueError, match="one non-negative weight"):
            main([*runs, "--weights", *weights, "--out", str(tmp_path / "soup")])


def test_a_run_without_a_centre_head_takes_the_decoder_runs_one(tmp_path):
    with_head = _save_run(tmp_path / "soup", PetNetConfig(image_size=32, center_head=True), 0)
    _save_run(tmp_path / "run", PetNetConfig(image_size=32, center_head=False), 1)
    runs = [str(tmp_path / "soup"), str(tmp_path / "run")]
    with pytest.raises(WeightsError, match="centre head"):
        main([*runs, "--out", str(tmp_path / "grown")])
    with pytest.raises(WeightsError, match="centre head"):
        main([*runs, "--decoder-from", runs[1], "--out", str(tmp_path / "grown")])
    main([*runs, "--weights", "3", "1", "--decoder-from", runs[0], "--out", str(tmp_path / "grown")])
    grown = load_model(tmp_path / "grown", fuse=False)
    assert grown.config.center_head
    head = [key for key in grown.state_dict() if key.startswith("center_head.") and grown.state_dict()[key].is_floating_point()]
    assert head and all(torch.equal(grown.state_dict()[key], with_head.state_dict()[key].half().float()) for key in head)
