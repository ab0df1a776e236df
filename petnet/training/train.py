"""Train PetNet: ``python -m petnet.training.train`` (one process) or ``torchrun --nproc_per_node N -m petnet.training.train``.

Each epoch starts by seeding every random generator from (seed, epoch, rank), so a run resumed
from its last checkpoint (``--resume``) replays the remaining epochs exactly. The validation set is
carved from ``trainval`` by :func:`petnet.data.datasets.train_val_split` (seeded, stratified per breed and
trimap presence); the official test split is never touched here.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler
from tqdm.auto import tqdm

from petnet.config import MODEL_FLAGS, LossWeights, PetNetConfig, TrainConfig
from petnet.data.cutmix import copy_paste_pets, cutmix_pets
from petnet.data.datasets import (
    is_other_animal,
    non_pet_split,
    read_non_pets,
    read_split,
    train_val_split,
)
from petnet.data.scenes import ScenePlacer
from petnet.data.training_set import OxfordPetDataset, collate_skipping_failures
from petnet.data.transforms import SCENE_CROP_SCALE, train_transform, val_transform
from petnet.evaluation.metrics import (
    accuracy,
    binary_auroc,
    confusion_matrix,
    iou_per_class,
    ranked_within_species,
    species_of_top_breed,
    top_k_accuracy,
)
from petnet.evaluation.report import TRAIN_CONFIG_NAME, TRAINING_LOG_NAME
from petnet.hub import load_model
from petnet.inference.decoding import TOP_K_BREEDS, PetNetOutput
from petnet.labels import BREED_SPECIES_INDEX, IGNORE_INDEX, SPECIES
from petnet.models.network import PetNet
from petnet.training.losses import LOSS_NAMES, multitask_loss

BREED_SPECIES_ARRAY = np.array(BREED_SPECIES_INDEX)

log = logging.getLogger("petnet.training.train")

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_DIR_NAME = "model"
FINAL_DIR_NAME = "final"


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, bool]:
    """Flags override a resumed run's own settings (``--resume``), which override ``--config FILE``, then defaults."""
    parser = argparse.ArgumentParser(prog="petnet-train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="JSON file with TrainConfig fields")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoint.pt")
    run_fields = [f for f in dataclasses.fields(TrainConfig) if f.name not in ("model", "loss_weights")]
    model_fields = [f for f in dataclasses.fields(PetNetConfig) if f.name in MODEL_FLAGS]
    for item in run_fields + model_fields:
        flag = "--" + item.name.replace("_", "-")
        if item.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, type={"int": int, "float": float}.get(item.type, str), default=None)
    for name in dataclasses.asdict(LossWeights()):
        parser.add_argument(f"--{name.replace('_', '-')}-weight", type=float, default=None, help=f"weight of the {name} loss")
    args = parser.parse_args(argv)
    values = dataclasses.asdict(TrainConfig())
    if args.config:
        values = dataclasses.asdict(TrainConfig.from_dict({**values, **json.loads(args.config.read_text())}))
    given = {k: v for k, v in vars(args).items() if v is not None}
    if args.resume:  # a resumed run keeps its own settings; flags given now still override them
        saved = saved_train_config(Path(given.get("output_dir", values["output_dir"])))
        if saved:
            values = dataclasses.asdict(TrainConfig.from_dict(saved))
    values.update({f.name: given[f.name] for f in run_fields if f.name in given})
    values["model"].update({f.name: given[f.name] for f in model_fields if f.name in given})
    for name in dataclasses.asdict(LossWeights()):
        if getattr(args, f"{name}_weight") is not None:
            values["loss_weights"][name] = getattr(args, f"{name}_weight")
    return TrainConfig.from_dict(values), args.resume


def saved_train_config(output_dir: Path) -> dict:
    """The settings stored in a run's checkpoint; ``{}`` without one (``Trainer.resume`` then says so)."""
    path = output_dir / CHECKPOINT_NAME
    if not path.is_file():
        return {}
    return json.loads(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["train_config"])


class Distributed:
    """Rank/world-size facts; initialises the process group when launched by ``torchrun``."""

    def __init__(self) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device("cpu")
        if self.enabled:
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce(self, values: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            values = values.to(self.device)
            dist.all_reduce(values)
        return values.cpu()

    def gather(self, items: list) -> list:
        """Every rank's ``items``, concatenated (on every rank)."""
        if not self.enabled:
            return items
        gathered: list[list] = [[] for _ in range(self.world_size)]
        dist.all_gather_object(gathered, items)
        return [item for part in gathered for item in part]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled:
            dist.destroy_process_group()


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: linear warm-up from ~0 to 1, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(model: PetNet, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and normalisation parameters; the backbone's learning
    rate is ``backbone_lr_scale`` times the heads' and decoder's."""
    groups = []
    for part_is_backbone in (True, False):
        parameters = [
            p for name, p in model.named_parameters() if name.startswith("encoder.") == part_is_backbone
        ]
        lr = config.lr * (config.backbone_lr_scale if part_is_backbone else 1.0)
        for decays in (True, False):
            chosen = [p for p in parameters if (p.ndim > 1) == decays]
            groups.append({"params": chosen, "lr": lr, "weight_decay": config.weight_decay if decays else 0.0})
    return torch.optim.AdamW(groups, lr=config.lr)


def atomic_save(payload: dict, path: Path) -> None:
    """Write to a temporary file and rename it, so an interruption never leaves a torn checkpoint."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on GPU (no loss scaling needed); full precision on CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def set_backbone_frozen(model: PetNet, frozen: bool) -> None:
    """Frozen: no gradients through the encoder and its BatchNorm statistics kept fixed."""
    model.encoder.requires_grad_(not frozen)
    model.encoder.train(not frozen)


def train_only(model: PetNet, prefixes: Sequence[str]) -> None:
    """Freeze every parameter whose name starts with none of ``prefixes``, and put every module
    without a trainable parameter in eval mode, so the frozen part computes what it does at inference."""
    matched = set()
    for name, parameter in model.named_parameters():
        trainable = name.startswith(tuple(prefixes))
        parameter.requires_grad_(trainable)
        matched.update(prefix for prefix in prefixes if name.startswith(prefix))
    if unmatched := [prefix for prefix in prefixes if prefix not in matched]:
        raise ValueError(f"--train-only {','.join(unmatched)} names no parameter of the model.")
    for module in model.modules():
        if not any(parameter.requires_grad for parameter in module.parameters()):
            module.eval()


TEACHER_MUST_MATCH = ("species_names", "breed_names", "mean", "std")
"""Model settings a distillation teacher shares with its student: its logits are the student's targets
class by class, computed on the student's normalised input."""


def load_teacher(config: TrainConfig, device: torch.device) -> PetNet | None:
    """The distillation teacher of ``config`` (``--teacher``), or None for a run without one.

    Only a local folder: ``petnet.load_model`` would fall back to the bundled weights for a path it
    cannot find, and a mistyped path must fail rather than teach another model. The teacher predicts
    as shipped models do (batch norms folded; bfloat16 on CPUs that compute it natively,
    :mod:`petnet.models.precision`), as for the distilled run of docs/experiments.md.
    """
    weight = config.loss_weights.distill + config.loss_weights.mask_distill
    if bool(config.teacher) != (weight > 0):
        raise ValueError(f"--teacher and a --distill-weight or --mask-distill-weight above 0 go together; got teacher "
                         f"{config.teacher!r}, --distill-weight {config.loss_weights.distill}, "
                         f"--mask-distill-weight {config.loss_weights.mask_distill}.")  # fmt: skip
    if not config.teacher:
        return None
    if not Path(config.teacher).is_dir():
        raise FileNotFoundError(f"--teacher {config.teacher} is not a model folder (config.json + model.safetensors).")
    teacher = load_model(config.teacher, device=str(device), runtime="torch")
    if differing := [name for name in TEACHER_MUST_MATCH if getattr(teacher.config, name) != getattr(config.model, name)]:
        raise ValueError(f"--teacher {config.teacher} differs from the model it would teach in {', '.join(differing)}.")
    return teacher


class Trainer:
    def __init__(self, config: TrainConfig, distributed: Distributed) -> None:
        self.config = config
        self.dist = distributed
        self.output_dir = Path(config.output_dir)
        records = read_split(config.data_root, "trainval")
        if config.limit:
            records = records[: config.limit]
        train_records, val_records = train_val_split(records, config.val_fraction, config.split_seed)
        backgrounds = []
        if config.non_pet_root:  # photos with no pet: trained on, and validated on the calibration part
            non_pets = read_non_pets(config.non_pet_root)
            backgrounds = non_pet_split(non_pets, "train")
            train_records += backgrounds + [r for r in backgrounds if is_other_animal(r)] * (config.other_animal_repeats - 1)
            val_records += non_pet_split(non_pets, "calibration")
        if config.scene_probability and not backgrounds:
            raise ValueError("--scene-probability needs --non-pet-root: scenes are built on the training non-pet photos.")
        if not 0 < config.scene_smallest <= 1:
            raise ValueError(f"--scene-smallest must be in (0, 1] (a share of the scene's shorter side), got {config.scene_smallest}.")
        start = PetNet.from_pretrained(config.init_from) if config.init_from else None
        if start is not None:  # a finished model to re-fit parts of: its weights and its model configuration
            config = self.config = dataclasses.replace(config, model=start.config)
        if config.model.animal_check_threshold is not None:  # fitted on views cut with another network's masks
            log.info("Training drops animal_check_threshold: fit it again for the new network with python -m petnet.training.animal_check.")
            config = self.config = dataclasses.replace(config, model=dataclasses.replace(config.model, animal_check_threshold=None))
            if start is not None:
                start.config = config.model
        self.teacher = load_teacher(config, distributed.device)
        model_config = config.model
        augment = train_transform(model_config, config.crop_size, config.trivial_augment)
        scene_augment = train_transform(model_config, config.crop_size, config.trivial_augment, SCENE_CROP_SCALE)
        self.train_set = OxfordPetDataset(train_records, augment, config.pseudo_mask_dir or None,
                                          ScenePlacer(backgrounds, (config.scene_smallest, 1.0)), config.scene_probability, scene_augment,
                                          config.scene_other_animals, config.scene_masks)
        self.val_set = OxfordPetDataset(val_records, val_transform(model_config))
        seed_everything(config.init_seed)  # the same initial decoder and heads on every rank and run
        self.model = start if start is not None else (PetNet.from_imagenet if config.pretrained else PetNet)(model_config)
        # channels_last: ~1.8x faster convolutions on CPU (oneDNN) and on GPU tensor cores
        self.model.to(distributed.device, memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, config)
        # warm-up (decay 1 - (1 + step)^-0.75, capped at ema_decay) lets the average forget the untrained
        # heads within the first epochs of a ~100-step epoch, and reach the full decay by the end
        self.ema = ModelEmaV3(self.model, decay=config.ema_decay, use_warmup=True, warmup_power=0.75) if config.ema_decay else None
        self.steps_per_epoch = math.ceil(len(train_records) / distributed.world_size / config.batch_size)
        total = self.steps_per_epoch * config.epochs
        warmup = max(1, round(self.steps_per_epoch * config.warmup_epochs))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: warmup_cosine(s, warmup, total))
        self.start_epoch = 0
        self.best_val_loss = float("inf")
        self.epochs_without_improvement = 0

    # ----- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, epoch: int) -> None:
        atomic_save(
            {
                "epoch": epoch,
                "model": self.model.state_dict(),
                "ema": self.ema.module.state_dict() if self.ema else None,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "best_val_loss": self.best_val_loss,
                "epochs_without_improvement": self.epochs_without_improvement,
                "train_config": json.dumps(dataclasses.asdict(self.config)),
            },
            self.output_dir / CHECKPOINT_NAME,
        )

    def resume(self) -> None:
        path = self.output_dir / CHECKPOINT_NAME
        if not path.is_file():
            raise FileNotFoundError(f"--resume given but {path} does not exist.")
        state = torch.load(path, map_location=self.dist.device, weights_only=True)
        saved = json.loads(state["train_config"])
        saved = dataclasses.asdict(TrainConfig.from_dict(saved))
        changed = sorted(k for k, v in dataclasses.asdict(self.config).items() if k != "num_workers" and saved.get(k) != v)
        if changed and self.dist.is_main:
            log.warning("Resuming with settings that differ from the checkpoint's, so the run will not replay "
                        "exactly: %s", ", ".join(f"{k} {saved.get(k)!r} -> {getattr(self.config, k)!r}" for k in changed))
        self.model.load_state_dict(state["model"])
        if self.ema:
            self.ema.module.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.start_epoch = state["epoch"] + 1
        self.best_val_loss = state["best_val_loss"]
        self.epochs_without_improvement = state["epochs_without_improvement"]
        if self.dist.is_main:
            truncate_log(self.output_dir / TRAINING_LOG_NAME, keep_epochs_below=self.start_epoch)
            log.info("Resumed from %s at epoch %d", path, self.start_epoch)

    # ----- loops -------------------------------------------------------------------------------
    def loader(self, dataset: OxfordPetDataset, train: bool, epoch: int) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed * 1000 + epoch)
        if self.dist.enabled:
            sampler = DistributedSampler(dataset, shuffle=train, seed=self.config.seed, drop_last=False)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(dataset, generator=generator) if train else SequentialSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            sampler=sampler,
            num_workers=self.config.num_workers,
            collate_fn=collate_skipping_failures,
            generator=generator,
            persistent_workers=False,
            drop_last=train and len(dataset) > self.config.batch_size * self.dist.world_size,
        )

    def set_trainable(self, frozen: bool) -> None:
        """The backbone frozen or not (``freeze_epochs``), then everything but ``train_only`` frozen."""
        set_backbone_frozen(self.model, frozen)
        if self.config.train_only:
            train_only(self.model, self.config.train_only.split(","))

    def wrapped_model(self, frozen: bool) -> torch.nn.Module:
        """The model to train this epoch: DDP is rebuilt when the set of trainable tensors changes."""
        self.set_trainable(frozen)
        if not self.dist.enabled:
            return self.model
        device_ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=device_ids)

    def train_epoch(self, epoch: int, model: torch.nn.Module) -> dict[str, float]:
        sums: dict[str, float] = {}
        batches = 0
        progress = tqdm(self.loader(self.train_set, True, epoch), desc=f"epoch {epoch + 1}/{self.config.epochs}",
                        disable=not self.dist.is_main, leave=False)
        mixing = np.random.default_rng([self.config.seed, epoch, self.dist.rank])
        for batch in progress:
            if batch is None:
                continue
            batch = to_device(batch, self.dist.device)
            if mixing.random() < self.config.cutmix_probability:
                batch = cutmix_pets(batch, self.config.cutmix_alpha, mixing)
            elif self.config.copy_paste_probability and mixing.random() < self.config.copy_paste_probability:
                batch = copy_paste_pets(batch, mixing)
            teacher = self.teacher_output(batch["image"])
            with autocast(self.dist.device, self.config.amp):
                losses = multitask_loss(model(batch["image"]), batch, self.config.loss_weights,
                                        self.config.label_smoothing, teacher, self.config.distill_temperature)
            self.optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            if self.ema:
                self.ema.update(self.model, step=self.scheduler.last_epoch)
            batches += 1
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.item()
            progress.set_postfix({k: f"{v / batches:.3f}" for k, v in sums.items()})
        totals = self.dist.all_reduce(torch.tensor([batches, *sums.values()], dtype=torch.float64))
        return {f"train_{name}": float(v / max(1, totals[0])) for name, v in zip(sums, totals[1:])}

    @torch.no_grad()
    def teacher_output(self, images: torch.Tensor) -> PetNetOutput | None:
        """The teacher's logits on the very batch the student sees (augmentation included), or None."""
        return self.teacher.infer_single_view(images) if self.teacher is not None else None

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Losses over the whole validation set; species, breed and mask figures over its pets;
        pet-presence figures over its pets and non-pets. Scores the EMA weights when there are."""
        model = self.ema.module if self.ema else self.model
        model.eval()
        loss_sums = torch.zeros(len(LOSS_NAMES), dtype=torch.float64)
        count = pets = 0
        species_conf = np.zeros((2, 2), dtype=np.int64)
        pixel_conf = np.zeros((3, 3), dtype=np.int64)
        top1 = top3 = 0.0
        pet_scores: list[tuple[float, bool]] = []
        for batch in self.loader(self.val_set, False, 0):
            if batch is None:
                continue
            batch = to_device(batch, self.dist.device)
            with autocast(self.dist.device, self.config.amp):
                output = model(batch["image"])
            losses = multitask_loss(output, batch, self.config.loss_weights, self.config.label_smoothing)
            n = len(batch["image"])
            loss_sums += torch.tensor([float(losses[k]) * n for k in LOSS_NAMES], dtype=torch.float64)
            count += n
            is_pet = batch["is_pet"].cpu().bool()
            pet_scores += list(zip(output.pet_logits.float().sigmoid().cpu().tolist(), is_pet.tolist()))
            breed_logits = output.breed_logits.float().cpu()[is_pet].numpy()
            breed_truth = batch["breed"].cpu()[is_pet].numpy()
            if len(breed_truth):  # species and breeds as PetNet names them (petnet.evaluate's definitions)
                pets += len(breed_truth)
                ranked = ranked_within_species(breed_logits, BREED_SPECIES_ARRAY)
                top1 += top_k_accuracy(ranked, breed_truth, 1) * len(breed_truth)
                top3 += top_k_accuracy(ranked, breed_truth, TOP_K_BREEDS) * len(breed_truth)
                named = species_of_top_breed(breed_logits, BREED_SPECIES_ARRAY)
                species_conf += confusion_matrix(batch["species"].cpu()[is_pet].numpy(), named, len(SPECIES))
            pet_masks = batch["mask"].cpu()[is_pet]
            pixel_conf += confusion_matrix(pet_masks, output.mask_logits.argmax(1).cpu()[is_pet], 3, IGNORE_INDEX)
        stats = torch.cat([loss_sums, torch.tensor([count, pets, top1, top3], dtype=torch.float64),
                           torch.from_numpy(species_conf.ravel()).double(), torch.from_numpy(pixel_conf.ravel()).double()])
        stats = self.dist.all_reduce(stats)
        pet_scores = self.dist.gather(pet_scores)
        n_losses = len(LOSS_NAMES)
        count, pets = max(1.0, float(stats[n_losses])), max(1.0, float(stats[n_losses + 1]))
        result = {f"val_{k}": float(v / count) for k, v in zip(LOSS_NAMES, stats[:n_losses])}
        species_conf = stats[n_losses + 4 : n_losses + 8].numpy().reshape(2, 2)
        pixel_conf = stats[n_losses + 8 :].numpy().reshape(3, 3)
        ious = iou_per_class(pixel_conf)
        scores = np.array([score for score, _ in pet_scores])
        truth = np.array([label for _, label in pet_scores], dtype=bool)
        result.update(
            val_named_species_accuracy=accuracy(species_conf),
            val_breed_top1_accuracy=float(stats[n_losses + 2] / pets),
            val_breed_top3_accuracy=float(stats[n_losses + 3] / pets),
            # cheaper than petnet.evaluate's (at each trimap's own size), on purpose: at the network's input size
            val_mean_iou_at_input_size=float(np.nanmean(ious)) if pixel_conf.sum() else float("nan"),
            val_min_iou_at_input_size=float(np.nanmin(ious)) if pixel_conf.sum() else float("nan"),
            val_pet_auroc=binary_auroc(scores, truth),
        )
        return result

    def exported_model(self) -> PetNet:
        """The weights a run hands on: the moving average when there is one."""
        return self.ema.module if self.ema else self.model

    def fit(self) -> Path:
        """Train until the last epoch or early stop; export the best weights with ``save_pretrained``."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        best_dir = self.output_dir / MODEL_DIR_NAME
        if self.dist.is_main:
            (self.output_dir / TRAIN_CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(self.config), indent=2))
        model, frozen = None, None
        for epoch in range(self.start_epoch, self.config.epochs):
            if self.epochs_without_improvement >= self.config.patience:
                break
            seed_everything(self.config.seed * 1000 + epoch * 10 + self.dist.rank)
            if frozen != (epoch < self.config.freeze_epochs) or model is None:
                frozen = epoch < self.config.freeze_epochs
                model = self.wrapped_model(frozen)
            self.model.train()
            self.set_trainable(frozen)
            started = time.time()
            row = {"epoch": epoch + 1, "lr": self.scheduler.get_last_lr()[0], "frozen_backbone": frozen}
            row.update(self.train_epoch(epoch, model))
            row.update(self.validate())
            row["seconds"] = round(time.time() - started, 1)
            improved = row["val_total"] < self.best_val_loss
            if improved:
                self.best_val_loss, self.epochs_without_improvement = row["val_total"], 0
            else:
                self.epochs_without_improvement += 1
            if self.dist.is_main:
                if improved:
                    self.exported_model().save_pretrained(best_dir)
                append_log(self.output_dir / TRAINING_LOG_NAME, row)
                self.save_checkpoint(epoch)
                log.info(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            self.dist.barrier()
        if self.dist.is_main:
            # The weights at the end of the cosine schedule: validation loss (breed cross-entropy grows
            # with confidence) can bottom out epochs before accuracy and IoU peak, so keep both.
            self.exported_model().save_pretrained(self.output_dir / FINAL_DIR_NAME)
        if self.dist.is_main and self.train_set.failures:
            log.warning("Skipped %d unreadable images: %s", len(self.train_set.failures), sorted(self.train_set.failures))
        return best_dir


def to_device(batch: dict, device: torch.device) -> dict:
    """Move a batch to ``device``, images in channels_last layout to match the model."""
    moved = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    moved["image"] = moved["image"].contiguous(memory_format=torch.channels_last)
    return moved


def append_log(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def truncate_log(path: Path, keep_epochs_below: int) -> None:
    """Drop log rows of epochs that a resumed run will redo."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [row for row in rows if int(row["epoch"]) <= keep_epochs_below]
    path.unlink()
    for row in kept:
        append_log(path, row)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config, resume = parse_args(argv)
    distributed = Distributed()
    try:
        trainer = Trainer(config, distributed)
        if resume:
            trainer.resume()
        best = trainer.fit()
        if distributed.is_main:
            log.info("Best model (val loss %.4f) saved to %s", trainer.best_val_loss, best)
    finally:
        distributed.close()


if __name__ == "__main__":
    main()
