"""Add the animal-centre head to a trained PetNet and train it alone: ``python -m petnet.training.train_centers``.

The rest of the network is frozen (eval mode, no gradients), so species, breed, mask and pet-score
outputs stay exactly those of ``--model``; only :class:`petnet.models.centers.CenterHead` learns, from
single pets, photos with no pet and made-up photos of several pets (:mod:`petnet.data.center_data`),
and with ``--scene-share`` pets and other animals placed small into photos with no pet.
Training photos are the training part of ``trainval`` (carved as in ``petnet.training.train``) and the
training part of the non-pet photos. The peak thresholds are then chosen on validation: on two-animal
composites of the validation pets and on the validation pets themselves (:func:`choose_center_threshold`),
and written into the exported model's ``config.json``. The test split is never looked at.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.special import expit
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from petnet.config import TrainConfig
from petnet.data.center_data import CenterTrainingSet
from petnet.data.composites import build_composites
from petnet.data.datasets import non_pet_split, read_non_pets, read_split, train_val_split
from petnet.data.scenes import ScenePlacer
from petnet.data.transforms import center_transform
from petnet.evaluation.report import TRAIN_CONFIG_NAME, TRAINING_LOG_NAME
from petnet.hub import load_model
from petnet.inference.centers import find_peaks
from petnet.models.network import PetNet
from petnet.models.precision import inference_dtype
from petnet.paths import NON_PET_ROOT
from petnet.training.losses import center_focal_loss
from petnet.training.train import (
    CHECKPOINT_NAME,
    FINAL_DIR_NAME,
    append_log,
    atomic_save,
    seed_everything,
    train_only,
    truncate_log,
    warmup_cosine,
)

log = logging.getLogger("petnet.training.train_centers")

THRESHOLDS = [(float(on), float(off)) for on in np.round(np.arange(0.10, 0.61, 0.05), 2)
              for off in np.round(np.arange(0.10, 0.91, 0.05), 2) if off >= on]  # fmt: skip
"""(``center_threshold``, ``center_off_mask_threshold``) pairs tried on validation."""
MAX_SINGLE_PETS_SPLIT = 0.02
"""Share of single-pet validation photos that may get more than one answer: a pet split in two is
the error users of a one-pet-per-photo dataset would see most."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; data defaults and the validation carve are ``petnet.training.train``'s, so the
    photos the thresholds are chosen on are the ones training held out."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="petnet-train-centers", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("petnet/weights"), help="trained model to add the head to")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/centers"))
    parser.add_argument("--head-from", type=Path, help="start from this model's centre head (after a change of "
                        "the rest of the network, a fine-tune instead of a head from scratch)")  # fmt: skip
    parser.add_argument("--data-root", type=Path, default=Path(defaults.data_root))
    parser.add_argument("--non-pet-root", type=Path, default=NON_PET_ROOT)
    parser.add_argument("--pseudo-mask-dir", type=Path, help="pseudo masks of the photos without a trimap")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--samples-per-epoch", type=int, default=3000)
    parser.add_argument("--val-samples", type=int, default=400)
    parser.add_argument("--scene-share", type=float, default=0.0, help="share of the training photos placed into a "
                        "training non-pet photo (pets small, and other animals, as in training's --scene-probability)")
    parser.add_argument("--composites-per-layout", type=int, default=50, help="validation composites for the threshold")
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="as in training")
    parser.add_argument("--seed", type=int, default=defaults.split_seed, help="the validation split's, training's --split-seed; also seeds this run")
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoint.pt")
    return parser.parse_args(argv)


def with_center_head(model: PetNet) -> PetNet:
    """``model``'s weights in a PetNet that also has a (new, untrained) centre head, all other
    tensors frozen; the trained model may already have a head, which is then kept."""
    config = dataclasses.replace(model.config, center_head=True)
    result = PetNet(config)
    missing, unexpected = result.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not name.startswith("center_head.") for name in missing):
        raise ValueError(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    result.weights_source = model.weights_source
    result.predictor.animal_check = model.predictor.animal_check  # saved with it (PetNet.save_pretrained)
    train_only(result, ["center_head."])
    return result


def trained_center_head(model: PetNet) -> torch.nn.Module:
    """``model``'s centre head; a clear error for a model trained without one."""
    if model.center_head is None:
        raise ValueError(f"{model.weights_source} has no centre head to start from")
    return model.center_head


def center_logits(model: PetNet, images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The head's heatmap logits, the frozen network run without gradients in ``dtype``."""
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        features = model.encoder(images)
        blocks = model.decoder.block_outputs(features)
    return model.center_logits(features, blocks)


def animal_counts(model: PetNet, images: Sequence[Image.Image], thresholds: Sequence[tuple[float, float]]) -> np.ndarray:
    """(len(images), len(thresholds)) animals found per photo at each pair of peak thresholds, as
    ``predict`` counts them for a photo with a pet (one when no region stands out).

    A pair's answer depends only on how many of the photo's peaks reach each of its two thresholds:
    :func:`~petnet.inference.centers.find_peaks` at a threshold keeps exactly the peaks it keeps at a lower one
    that are that high (higher peaks are settled first). So the peak heights are read once per photo
    at the lowest threshold, and the region rule runs once per distinct pair of counts rather than
    for each of the pairs (132 in :data:`THRESHOLDS`). ``model`` has the centre head."""
    lowest = min(min(pair) for pair in thresholds)
    predictor = model.predictor
    counts = []
    for image in tqdm(images, desc="counting animals", leave=False):
        output, [mask] = predictor.first_look([predictor.prepare(image).pixels])
        heights = np.array([height for *_, height in find_peaks(expit(output.center_logits[0]), lowest)])
        by_peaks_reached: dict[tuple[int, int], int] = {}
        row = []
        for pair in thresholds:
            reached = (int((heights >= pair[0]).sum()), int((heights >= pair[1]).sum()))
            if reached not in by_peaks_reached:
                by_peaks_reached[reached] = max(1, len(predictor.regions(mask, output, 0, pair)))
            row.append(by_peaks_reached[reached])
        counts.append(row)
    return np.asarray(counts)


def choose_center_threshold(
    composite_counts: np.ndarray, single_counts: np.ndarray, thresholds: Sequence[tuple[float, float]],
    max_single_split: float = MAX_SINGLE_PETS_SPLIT,
) -> tuple[tuple[float, float], dict]:
    """The thresholds with the most two-animal composites counted right among those that give at
    most ``max_single_split`` of the single pets more than one answer (of equals, those that split
    fewest, then the lowest); with none allowed, those that split fewest single pets. Returns the
    pair and a table keyed ``"on/off"``."""
    right = (composite_counts == 2).mean(axis=0)
    split = (single_counts > 1).mean(axis=0)
    table = {threshold_key(t): {"composites_count_right": float(r), "single_pets_split": float(s)}
             for t, r, s in zip(thresholds, right, split)}  # fmt: skip
    allowed = np.flatnonzero(split <= max_single_split)
    if len(allowed):
        best = min(allowed, key=lambda i: (-right[i], split[i], thresholds[i]))
    else:
        best = int(np.argmin(split))
    return thresholds[best], table


def threshold_key(pair: tuple[float, float]) -> str:
    """``"0.20/0.35"``: on-mask and off-mask peak thresholds."""
    return f"{pair[0]:.2f}/{pair[1]:.2f}"


class CenterTrainer:
    """Trains the centre head of ``args.model`` (the rest frozen), checkpoints every epoch, exports."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.output_dir = args.output_dir
        self.dtype = inference_dtype("auto", "cpu")
        self.model = with_center_head(load_model(args.model, runtime="torch", fuse=False, precision="float32"))
        if args.head_from:
            self.model.center_head.load_state_dict(trained_center_head(load_model(args.head_from, runtime="torch", fuse=False)).state_dict())
        self.model.inference_dtype = self.dtype  # thresholds are chosen on what users get
        records = read_split(args.data_root, "trainval")
        self.train_pets, self.val_pets = train_val_split(records, args.val_fraction, args.seed)
        non_pets = read_non_pets(args.non_pet_root) if args.non_pet_root.name else []  # --non-pet-root '': none
        size = self.model.config.image_size
        with torch.no_grad():
            heatmap_size = tuple(self.model(torch.zeros(1, 3, size, size)).center_logits.shape[-2:])
        transform = center_transform(self.model.config)
        train_non_pets = non_pet_split(non_pets, "train") if non_pets else []
        if not 0 <= args.scene_share <= 1:
            raise ValueError(f"--scene-share is a share of the samples, from 0 to 1; got {args.scene_share}.")
        if args.scene_share and not train_non_pets:
            raise ValueError("--scene-share needs --non-pet-root: scenes are built on the training non-pet photos.")
        self.train_set = CenterTrainingSet(
            self.train_pets, train_non_pets, transform, heatmap_size, args.samples_per_epoch, args.pseudo_mask_dir,
            scenes=ScenePlacer(train_non_pets), scene_share=args.scene_share,
        )
        # validation loss: the training recipe on validation pets with trimaps, drawn the same way every epoch
        self.val_set = CenterTrainingSet(
            self.val_pets, non_pet_split(non_pets, "calibration") if non_pets else [], transform, heatmap_size,
            args.val_samples, fixed=True,
        )
        self.optimizer = torch.optim.AdamW(self.model.center_head.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        steps_per_epoch = math.ceil(args.samples_per_epoch / args.batch_size)
        total = steps_per_epoch * args.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: warmup_cosine(s, steps_per_epoch // 2, total))
        self.start_epoch = 0

    def loader(self, dataset: CenterTrainingSet, epoch: int, train: bool) -> DataLoader:
        """Batches of ``dataset``; the generator seeded per epoch makes a resumed run draw the same photos."""
        generator = torch.Generator().manual_seed(self.args.seed * 1000 + epoch)
        return DataLoader(dataset, batch_size=self.args.batch_size, shuffle=train, generator=generator,
                          num_workers=self.args.num_workers)  # fmt: skip

    def step(self, batch: dict, train: bool) -> float:
        """The focal loss of one batch, and with ``train`` one optimiser step on the head."""
        images = batch["image"].contiguous(memory_format=torch.channels_last)
        self.model.center_head.train(train)
        with torch.set_grad_enabled(train):
            loss = center_focal_loss(center_logits(self.model, images, self.dtype), batch["heatmap"])
        if train:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
        return loss.item()

    def save_checkpoint(self, epoch: int) -> None:
        atomic_save({"epoch": epoch, "center_head": self.model.center_head.state_dict(),
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
                    self.output_dir / CHECKPOINT_NAME)  # fmt: skip

    def resume(self) -> None:
        state = torch.load(self.output_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
        self.model.center_head.load_state_dict(state["center_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.start_epoch = state["epoch"] + 1
        truncate_log(self.output_dir / TRAINING_LOG_NAME, keep_epochs_below=self.start_epoch)
        log.info("Resumed at epoch %d", self.start_epoch)

    def fit(self) -> Path:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items() if k != "resume"}
        (self.output_dir / TRAIN_CONFIG_NAME).write_text(json.dumps(settings, indent=2))
        self.model.eval()
        for epoch in range(self.start_epoch, self.args.epochs):
            seed_everything(self.args.seed * 1000 + epoch)
            started = time.time()
            train = [self.step(b, True) for b in tqdm(self.loader(self.train_set, epoch, True), desc=f"epoch {epoch + 1}", leave=False)]
            val = [self.step(b, False) for b in self.loader(self.val_set, 0, False)]
            row = {"epoch": epoch + 1, "lr": self.scheduler.get_last_lr()[0], "train_center": float(np.mean(train)),
                   "val_center": float(np.mean(val)), "seconds": round(time.time() - started, 1)}  # fmt: skip
            append_log(self.output_dir / TRAINING_LOG_NAME, row)
            self.save_checkpoint(epoch)
            log.info(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        return self.export()

    def export(self) -> Path:
        """Save the model with its head, the peak threshold chosen on validation in its config."""
        self.model.eval()
        composites = build_composites(self.val_pets, self.args.composites_per_layout, seed=self.args.seed + 1)
        composite_counts = animal_counts(self.model, [c.image for c in composites], THRESHOLDS)
        single_counts = animal_counts(self.model, [r.image_path for r in self.val_pets], THRESHOLDS)
        (on_mask, off_mask), table = choose_center_threshold(composite_counts, single_counts, THRESHOLDS)
        final = self.output_dir / FINAL_DIR_NAME
        self.model.config.center_threshold, self.model.config.center_off_mask_threshold = on_mask, off_mask
        self.model.save_pretrained(final)
        chosen_key = threshold_key((on_mask, off_mask))
        (self.output_dir / "center_thresholds.json").write_text(json.dumps({"chosen": chosen_key, "thresholds": table}, indent=2))
        chosen = table[chosen_key]
        log.info("center_threshold %.2f, center_off_mask_threshold %.2f: %.1f%% of %d validation composites counted "
                 "right, %.1f%% of %d validation pets split; saved to %s", on_mask, off_mask,
                 100 * chosen["composites_count_right"], len(composites), 100 * chosen["single_pets_split"],
                 len(self.val_pets), final)  # fmt: skip
        return final


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    trainer = CenterTrainer(args)
    if args.resume:
        trainer.resume()
    trainer.fit()


if __name__ == "__main__":
    main()
