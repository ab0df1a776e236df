"""The model card and README results are generated from the shipped reports and must stay in sync."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import PROJECT_ROOT
from report_factory import make_report

from petnet.config import PetNetConfig, TrainConfig
from petnet.evaluation.report import BASELINE, load_report
from petnet.paths import BUNDLED_MODEL_DIR, REPORTS_DIR
from petnet.training.train import parse_args
from tools import model_card


def test_shipped_card_and_readme_match_the_shipped_reports():
    test, val, bench, train_config, soup = model_card.load_inputs()
    card = (BUNDLED_MODEL_DIR / "README.md").read_text()
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert card == model_card.model_card(test, val, bench, train_config, soup), "run python -m tools.model_card"
    assert model_card.readme_results(test, val, bench) in readme, "run python -m tools.model_card"


def test_results_table_shows_report_values_beside_the_baseline(tmp_path):
    report = load_report(make_report(tmp_path / "reports", tmp_path / "data"))
    lines = model_card.results_table(report).splitlines()
    assert lines[0] == "| Metric | PetNet, test | Original PetNet |"
    rows = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ")[1:] for line in lines[2:]}
    assert rows["Species accuracy"] == [f"{100 * report['species']['accuracy']:.1f}%", "96.0%"]
    assert rows["Mask worst-class IoU"] == [f"{report['segmentation']['min_iou']:.3f}", f"{BASELINE['min_iou']:.3f}"]
    assert rows["Breed top-1 accuracy"][1] == "-"  # the original PetNet published no top-1


@pytest.mark.parametrize(
    ("model_section", "expected"),
    [({"mirror_averaged_mask": True}, "mirror image"), ({"mirror_averaged_mask": False}, "photo alone"), ({}, "photo alone")],
)
def test_mask_method_sentence_follows_the_report(model_section, expected):
    assert expected in model_card.mask_method_sentence({"model": model_section})


@pytest.mark.parametrize(
    ("model_section", "expected"),
    [({"closer_look": True}, "crop to the box of its predicted pet"), ({"closer_look": False}, "photo alone"),
     ({}, "photo alone")],
)
def test_classification_method_sentence_follows_the_report(model_section, expected):
    assert expected in model_card.classification_method_sentence({"model": model_section})


def test_training_command_reproduces_the_config():
    config = dataclasses.replace(
        TrainConfig(), epochs=14, lr=5e-4, amp=False, warmup_epochs=0.5, ema_decay=0.998, trivial_augment=True,
        train_image_size=208, non_pet_root="../shared/data/non-pets",
    )
    config.model = PetNetConfig(backbone="tf_efficientnet_lite1", image_size=240, drop_path_rate=0.1)
    config.loss_weights.dice = 1.0
    config.loss_weights.pseudo_mask = 0.5
    parsed, resume = parse_args(model_card.training_command(dataclasses.asdict(config)).split()[3:])
    assert not resume
    assert parsed == config


def test_training_command_reads_configs_saved_before_the_model_settings_were_nested():
    flat = {**{k: v for k, v in dataclasses.asdict(TrainConfig()).items() if k != "model"},
            "backbone": "tf_efficientnet_lite1", "image_size": 240}  # fmt: skip
    command = model_card.training_command(flat)
    assert "--backbone tf_efficientnet_lite1 --image-size 240" in command


def test_recipe_of_one_run_is_its_training_command():
    config = dataclasses.asdict(TrainConfig())
    assert model_card.recipe([config]) == model_card.training_command(config)


def test_recipe_of_several_runs_trains_each_then_averages_them():
    configs = [dataclasses.asdict(dataclasses.replace(TrainConfig(), output_dir=run, lr=lr))
               for run, lr in (("runs/a", 5e-4), ("runs/b", 1e-3))]  # fmt: skip
    lines = model_card.recipe(configs).splitlines()
    assert lines[0].startswith("python -m petnet.training.train ") and lines[0].endswith(" --output-dir runs/a")
    assert "--lr 0.001" in lines[1] and lines[1].endswith(" --output-dir runs/b")
    assert lines[2] == "python -m petnet.training.soup runs/a runs/b --out petnet/weights"
    section = model_card.training_section(configs)
    assert "mean of the weights of these 2 runs" in section and "- `runs/b`: AdamW (peak learning rate 0.001" in section
    soup = {"runs": ["runs/a", "runs/b"], "export": "model", "decoder_from": ["runs/b"]}
    assert model_card.recipe(configs, soup).endswith("python -m petnet.training.soup runs/a runs/b --decoder-from runs/b --out petnet/weights")
    assert "mask decoder is that of `runs/b` alone" in model_card.training_section(configs, soup)
    soup["decoder_from"] = ["runs/a", "runs/b"]
    assert "--decoder-from runs/a runs/b --out" in model_card.recipe(configs, soup)
    assert "mean of the decoders of `runs/a`, `runs/b` only" in model_card.training_section(configs, soup)
    assert "--decoder-from runs/b --out" in model_card.recipe(configs, {"decoder_from": "runs/b"})


def test_loss_formula_shows_weights_other_than_one_and_drops_unused_terms():
    weights = {"species": 1.0, "breed": 1.0, "segmentation": 2.0, "dice": 0.0}
    assert model_card.loss_formula(weights) == "species CE + breed CE + 2 x mask CE"
    assert model_card.loss_formula({**weights, "dice": 0.5}) == "species CE + breed CE + 2 x mask CE + 0.5 x soft Dice"


def test_optimiser_sentence_mentions_a_frozen_backbone_only_when_there_was_one():
    config = dataclasses.asdict(dataclasses.replace(TrainConfig(), freeze_epochs=0, lr=5e-4))
    assert "frozen" not in model_card.optimiser_sentence(config)
    assert "peak learning rate 0.0005" in model_card.optimiser_sentence(config)
    config["freeze_epochs"] = 2
    assert "the backbone frozen for the first 2 epoch(s)" in model_card.optimiser_sentence(config)


def test_replacing_the_results_block_keeps_the_rest_of_the_readme():
    readme = f"# Title\n\n{model_card.RESULTS_START}\nold\n{model_card.RESULTS_END}\n\n## Next\n"
    updated = model_card.replace_results_block(readme, f"{model_card.RESULTS_START}\nnew\n{model_card.RESULTS_END}")
    assert updated == f"# Title\n\n{model_card.RESULTS_START}\nnew\n{model_card.RESULTS_END}\n\n## Next\n"
    with pytest.raises(ValueError, match="results markers"):
        model_card.replace_results_block("# no markers\n", "block")


def test_main_writes_card_and_readme(tmp_path):
    reports = REPORTS_DIR
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{model_card.RESULTS_START}\n{model_card.RESULTS_END}\n")
    model_card.main(["--reports", str(reports), "--card", str(tmp_path / "card.md"), "--readme", str(readme)])
    assert (tmp_path / "card.md").read_text().startswith("---\nlibrary_name: petnet\n")
    assert "| Species accuracy |" in readme.read_text()
    for config_file in (reports / model_card.TRAINING_RUNS_DIR).glob("*/train_config.json"):
        assert json.loads(config_file.read_text())["output_dir"] in (tmp_path / "card.md").read_text()


def test_counting_sentence_names_the_centre_head_when_the_model_has_one():
    with_head = model_card.counting_sentence({"model": {"center_threshold": 0.2, "center_off_mask_threshold": 0.3}})
    assert "centre heatmap" in with_head and "0.20" in with_head and "0.30" in with_head
    assert "breed" in model_card.counting_sentence({"model": {"center_threshold": None}})
    assert "breed" in model_card.counting_sentence({"model": {}}), "reports older than the head"
