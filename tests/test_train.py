"""petnet.training.train on the tiny generated dataset: outputs, config precedence, exact resume, early stop, DDP."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_ROOT
from non_pet_factory import make_non_pets

from petnet.evaluation.report import TRAIN_CONFIG_NAME, TRAINING_LOG_NAME
from petnet.models.network import PetNet
from petnet.training import train
from petnet.training.train import CHECKPOINT_NAME, FINAL_DIR_NAME, MODEL_DIR_NAME, Trainer, atomic_save, parse_args

LOSSES = ["total", "species", "breed", "segmentation", "dice", "pseudo_mask", "pet", "outlier", "distill", "mask_distill", "lovasz"]
LOG_COLUMNS = [
    "epoch", "lr", "frozen_backbone", *(f"train_{name}" for name in LOSSES), *(f"val_{name}" for name in LOSSES),
    "val_named_species_accuracy", "val_breed_top1_accuracy", "val_breed_top3_accuracy", "val_mean_iou_at_input_size",
    "val_min_iou_at_input_size", "val_pet_auroc",
    "seconds",
]  # fmt: skip
RECIPE = ["--ema-decay", "0.9", "--trivial-augment", "--label-smoothing", "0.1", "--pet-weight", "1",
          "--outlier-weight", "0.5", "--drop-path-rate", "0.1", "--backbone-lr-scale", "0.5",
          "--train-image-size", "48"]  # fmt: skip
"""Every regulariser and the non-pet photos, so exact resume covers the EMA and the extra data."""


def tiny_args(root, output_dir, *extra: str) -> list[str]:
    """16 train / 8 val images (one per breed and trimap presence), 64 px, 2 steps per epoch."""
    return ["--data-root", str(root), "--output-dir", str(output_dir), "--image-size", "64", "--batch-size", "8",
            "--num-workers", "0", "--val-fraction", "0.34", "--no-pretrained", "--epochs", "2", *extra]  # fmt: skip


def read_log(output_dir) -> list[dict]:
    with (output_dir / TRAINING_LOG_NAME).open(newline="") as handle:
        return list(csv.DictReader(handle))


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.fixture(scope="module")
def non_pet_root(tmp_path_factory):
    return make_non_pets(tmp_path_factory.mktemp("non-pets"), count=8)


@pytest.fixture(scope="module")
def straight_run(tiny_pet_root, non_pet_root, tmp_path_factory):
    """Two epochs in one go (one frozen-backbone epoch first, to exercise the switch)."""
    output_dir = tmp_path_factory.mktemp("straight")
    train.main(tiny_args(tiny_pet_root, output_dir, "--freeze-epochs", "1", "--non-pet-root", str(non_pet_root), *RECIPE))
    return output_dir


def test_cli_writes_checkpoint_log_config_and_model(straight_run):
    expected = {CHECKPOINT_NAME, TRAINING_LOG_NAME, TRAIN_CONFIG_NAME, MODEL_DIR_NAME, FINAL_DIR_NAME}
    assert {p.name for p in straight_run.iterdir()} == expected
    rows = read_log(straight_run)
    assert list(rows[0]) == LOG_COLUMNS  # the columns docs/report_schema.md promises the dashboard
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert [row["frozen_backbone"] for row in rows] == ["True", "False"]
    saved = json.loads((straight_run / "train_config.json").read_text())
    assert saved["model"]["image_size"] == 64 and saved["epochs"] == 2 and saved["pretrained"] is False
    assert saved["train_image_size"] == 48 and saved["ema_decay"] == 0.9
    model = PetNet.from_pretrained(straight_run / MODEL_DIR_NAME)
    assert model.config.image_size == 64
    assert torch.load(straight_run / CHECKPOINT_NAME, weights_only=True)["epoch"] == 1
    final = PetNet.from_pretrained(straight_run / FINAL_DIR_NAME).state_dict()
    last = torch.load(straight_run / CHECKPOINT_NAME, weights_only=True)["ema"]  # the exported weights are the EMA's
    assert all(torch.allclose(final[k].float(), last[k].float(), atol=1e-2, rtol=1e-2) for k in final)  # fp16 export


def test_model_flags_fill_the_nested_model_config_and_old_flat_files_still_load(tmp_path):
    config, _ = parse_args(["--backbone", "tf_efficientnet_lite1", "--image-size", "240", "--drop-path-rate", "0.1"])
    assert (config.model.backbone, config.model.image_size, config.model.drop_path_rate) == ("tf_efficientnet_lite1", 240, 0.1)
    assert config.crop_size == 240 and parse_args(["--train-image-size", "208"])[0].crop_size == 208
    flat = tmp_path / "old.json"
    flat.write_text(json.dumps({"backbone": "tf_efficientnet_lite1", "image_size": 240, "epochs": 10}))
    config, _ = parse_args(["--config", str(flat)])
    assert (config.model.backbone, config.model.image_size, config.epochs) == ("tf_efficientnet_lite1", 240, 10)


def test_backbone_learns_at_a_fraction_of_the_heads_rate():
    config, _ = parse_args(["--lr", "0.01", "--backbone-lr-scale", "0.25"])
    model = PetNet(config.model)
    optimizer = train.build_optimizer(model, config)
    encoder = {id(p) for p in model.encoder.parameters()}
    for group in optimizer.param_groups:
        in_encoder = {id(p) in encoder for p in group["params"]}
        assert len(in_encoder) == 1
        assert group["lr"] == pytest.approx(0.0025 if in_encoder.pop() else 0.01)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_config_file_is_honoured_and_flags_override_it(tmp_path):
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps({"epochs": 3, "batch_size": 4, "lr": 0.5, "amp": False,
                                       "loss_weights": {"dice": 0.0, "breed": 2.0}}))  # fmt: skip
    config, resume = parse_args(["--config", str(config_file), "--epochs", "5", "--amp", "--dice-weight", "0.25"])
    assert not resume
    assert (config.epochs, config.batch_size, config.lr, config.amp) == (5, 4, 0.5, True)
    assert (config.loss_weights.dice, config.loss_weights.breed, config.loss_weights.species) == (0.25, 2.0, 1.0)
    assert parse_args(["--resume"])[1]


def test_saved_train_config_reproduces_the_run(straight_run):
    config, _ = parse_args(["--config", str(straight_run / "train_config.json")])
    assert json.loads((straight_run / "train_config.json").read_text()) == dataclasses.asdict(config)


def test_resume_replays_the_remaining_epochs_exactly(straight_run, tiny_pet_root, non_pet_root, tmp_path, monkeypatch, caplog):
    class Interrupted(Exception):
        pass

    save_checkpoint = Trainer.save_checkpoint

    def save_then_stop(self, epoch):
        save_checkpoint(self, epoch)
        raise Interrupted  # as if the job were killed right after epoch 1

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "save_checkpoint", save_then_stop)
        with pytest.raises(Interrupted):
            train.main(tiny_args(tiny_pet_root, tmp_path, "--freeze-epochs", "1", "--non-pet-root", str(non_pet_root), *RECIPE))
    assert len(read_log(tmp_path)) == 1
    with caplog.at_level(logging.WARNING, logger="petnet.training.train"):
        train.main(["--output-dir", str(tmp_path), "--resume"])  # every other setting comes from the checkpoint
    assert "differ from the checkpoint" not in caplog.text

    for part in ("model", "ema"):
        straight = torch.load(straight_run / CHECKPOINT_NAME, weights_only=True)[part]
        resumed = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)[part]
        assert straight.keys() == resumed.keys()
        for name in straight:
            torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=1e-6, msg=f"{part} {name}")
    assert without_seconds(read_log(tmp_path)) == without_seconds(read_log(straight_run))


def test_resume_warns_about_changed_settings(straight_run, tiny_pet_root, tmp_path, caplog):
    output_dir = tmp_path / "run"
    shutil.copytree(straight_run, output_dir)
    with caplog.at_level(logging.WARNING, logger="petnet.training.train"):
        train.main([*tiny_args(tiny_pet_root, output_dir), "--resume", "--lr", "0.5"])  # nothing left to train
    assert "lr 0.001 -> 0.5" in caplog.text and "freeze_epochs" not in caplog.text  # only what the flags changed
    assert len(read_log(output_dir)) == 2


def test_the_training_seed_leaves_the_validation_split_and_initial_weights_alone(tiny_pet_root, tmp_path):
    def trainer(*flags: str) -> Trainer:
        config, _ = parse_args(tiny_args(tiny_pet_root, tmp_path, *flags))
        return Trainer(config, train.Distributed())

    def val_names(*flags: str) -> list[str]:
        return [record.name for record in trainer(*flags).val_set.records]

    def decoder_weight(*flags: str) -> torch.Tensor:
        return trainer(*flags).model.decoder.state_dict()["classifier.weight"]

    assert val_names("--seed", "1") == val_names("--seed", "0"), "runs to compare or average validate alike"
    assert val_names("--split-seed", "1") != val_names(), "the split has its own seed"
    assert torch.equal(decoder_weight("--seed", "1"), decoder_weight()), "runs to average start alike"
    assert not torch.equal(decoder_weight("--init-seed", "1"), decoder_weight())


def test_resume_without_checkpoint_fails_clearly(tiny_pet_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train.main([*tiny_args(tiny_pet_root, tmp_path), "--resume"])


def test_early_stopping_when_patience_is_exhausted(tiny_pet_root, tmp_path, monkeypatch):
    val_losses = [1.0, 0.5, 0.7, 0.6, 0.9, 0.1]  # best at epoch 2, then 3 epochs without improvement
    validated, saved_epochs = [], []

    def validate(self):
        validated.append(val_losses[len(validated)])
        return {"val_total": validated[-1]}

    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch, model: {"train_total": 0.0})
    monkeypatch.setattr(Trainer, "validate", validate)
    monkeypatch.setattr(
        PetNet, "save_pretrained", lambda self, path: saved_epochs.append((Path(path).name, len(validated)))
    )
    train.main(tiny_args(tiny_pet_root, tmp_path, "--epochs", "6", "--patience", "3"))
    assert [row["val_total"] for row in read_log(tmp_path)] == ["1.0", "0.5", "0.7", "0.6", "0.9"]
    # model/ holds the best epoch's weights; final/ the weights where training stopped.
    assert saved_epochs == [(MODEL_DIR_NAME, 1), (MODEL_DIR_NAME, 2), (FINAL_DIR_NAME, 5)]
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["epochs_without_improvement"] == 3


def test_checkpoint_is_written_atomically(straight_run, tmp_path, monkeypatch):
    assert not list(straight_run.glob("*.tmp"))
    path = tmp_path / CHECKPOINT_NAME
    atomic_save({"epoch": 1}, path)

    def torn_save(payload, target):
        open(target, "wb").write(b"half a checkpo")  # noqa: SIM115
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"epoch": 2}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}  # the previous checkpoint survives intact
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # and no temporary file is left


def test_ddp_on_cpu_with_gloo(tiny_pet_root, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "petnet.training.train", *tiny_args(tiny_pet_root, tmp_path, "--freeze-epochs", "1")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [row["epoch"] for row in read_log(tmp_path)] == ["1", "2"]  # written by rank 0 only
    assert PetNet.from_pretrained(tmp_path / MODEL_DIR_NAME).config.image_size == 64
    assert not list(tmp_path.glob("*.tmp"))


def test_configs_from_before_the_split_and_init_seeds_keep_their_seed_for_both():
    from petnet.config import TrainConfig

    old = TrainConfig.from_dict({"seed": 3})
    assert (old.seed, old.split_seed, old.init_seed) == (3, 3, 3), "a resumed old run validates on its own photos"
    assert TrainConfig.from_dict({"seed": 3, "split_seed": 0}).split_seed == 0


def test_a_finished_model_can_be_refit_in_part(straight_run, tiny_pet_root, tmp_path):
    start = PetNet.from_pretrained(str(straight_run / FINAL_DIR_NAME))
    start.config.pet_threshold = 0.7  # inference settings of the start travel with the re-fit
    start.save_pretrained(tmp_path / "start")
    config_file = tmp_path / "start" / "config.json"  # as the shipped weights: an other-animal check's threshold
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "animal_check_threshold": 7.0}))
    trained = ("decoder.blocks.3.", "decoder.classifier.")
    train.main([*tiny_args(tiny_pet_root, tmp_path / "refit", "--epochs", "1"), "--init-from", str(tmp_path / "start"),
                "--train-only", ",".join(trained), "--image-size", "32"])  # fmt: skip
    refit = PetNet.from_pretrained(str(tmp_path / "refit" / FINAL_DIR_NAME))
    assert refit.config == start.config  # the start's model configuration, not the --image-size flag
    assert refit.config.animal_check_threshold is None, "fitted for the old network's masks: dropped"
    before, after = start.state_dict(), refit.state_dict()
    changed = {key for key in before if not torch.equal(before[key].half(), after[key].half())}
    assert changed and all(key.startswith(trained) for key in changed)  # frozen batch norms kept their statistics
    with pytest.raises(ValueError, match="names no parameter"):
        train.main([*tiny_args(tiny_pet_root, tmp_path / "bad"), "--init-from", str(tmp_path / "start"),
                    "--train-only", "decoder.nothing"])  # fmt: skip


def test_a_teacher_is_distilled_on_the_training_batches(straight_run, tiny_pet_root, tmp_path):
    teacher = str(straight_run / FINAL_DIR_NAME)
    train.main([*tiny_args(tiny_pet_root, tmp_path / "student", "--epochs", "1"), "--teacher", teacher,
                "--distill-weight", "1", "--distill-temperature", "2"])  # fmt: skip
    row = read_log(tmp_path / "student")[0]
    assert float(row["train_distill"]) > 0  # the student starts far from the teacher
    assert float(row["val_distill"]) == 0  # validation scores the student alone
    assert json.loads((tmp_path / "student" / TRAIN_CONFIG_NAME).read_text())["teacher"] == teacher
    with pytest.raises(ValueError, match="go together"):
        train.main([*tiny_args(tiny_pet_root, tmp_path / "unweighted"), "--teacher", teacher])
    with pytest.raises(ValueError, match="go together"):
        train.main([*tiny_args(tiny_pet_root, tmp_path / "teacherless"), "--distill-weight", "1"])


def test_a_teacher_must_be_a_local_folder_with_the_students_labels(straight_run, tiny_pet_root, tmp_path):
    distill = ["--distill-weight", "1"]
    with pytest.raises(FileNotFoundError, match="not a model folder"):  # never the bundled weights instead
        train.main([*tiny_args(tiny_pet_root, tmp_path / "a"), "--teacher", "runs/no-such-soup", *distill])
    teacher = PetNet.from_pretrained(str(straight_run / FINAL_DIR_NAME))
    teacher.config.breed_names = [*reversed(teacher.config.breed_names)]
    teacher.save_pretrained(tmp_path / "reordered")
    with pytest.raises(ValueError, match="breed_names"):
        train.main([*tiny_args(tiny_pet_root, tmp_path / "b"), "--teacher", str(tmp_path / "reordered"), *distill])
