"""Re-fit the pet-presence head for a sharper pooling on frozen features: ``python -m petnet.training.refit_pet_head``.

The recipe's pet head averages its per-location logits over the 8x8 feature map, so a pet has to
fill much of the photo to raise the mean: pets at a fifth of a scene's side were found in 9 of 50
validation scenes. This step keeps every weight of ``--model`` but the head's linear layer and
re-fits that layer for log-mean-exp pooling at a sharpness ``r``
(:attr:`petnet.config.PetNetConfig.pet_pooling_sharpness`), which leans towards the locations that
show a pet. The backbone is frozen, so species, breeds, masks and the centre head stay exactly those
of ``--model``; what it learns from is what the head needs:

- the training pets as they are, and the same pets placed into a training non-pet photo at 12-100%
  of its shorter side (:class:`petnet.data.scenes.ScenePlacer`, cut out or zoomed out);
- the training non-pet photos, the other animals among them weighted ``--other-animal-weight`` times
  (they are what a sharper pooling wrongly accepts first).

The features are computed once (eval mode, validation's preprocessing: the prediction pipeline's for photos of this size). ``r`` is chosen
among ``--sharpness`` by the weighted log loss on a held-out fifth of those training photos; the
head is then fitted on all of them at that ``r`` and saved with it. Validation and test are never
looked at: calibrate the threshold and temperature on validation next (``petnet.training.calibrate``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from petnet.config import TrainConfig
from petnet.data.datasets import is_other_animal, non_pet_split, read_non_pets, read_split, train_val_split
from petnet.data.scenes import ScenePlacer
from petnet.data.training_set import OxfordPetDataset, collate_skipping_failures
from petnet.data.transforms import val_transform
from petnet.hub import load_model
from petnet.models.network import PetNet, pool_sharply
from petnet.paths import NON_PET_ROOT
from petnet.training.train import FINAL_DIR_NAME, seed_everything

log = logging.getLogger("petnet.training.refit_pet_head")

HOLDOUT_FRACTION = 0.2
"""Share of the training photos held out to choose the sharpness."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("petnet/weights"), help="trained model whose pet head to re-fit")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/pet-head"))
    parser.add_argument("--sharpness", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0], help="pooling sharpnesses to choose from")
    parser.add_argument("--data-root", type=Path, default=Path(defaults.data_root))
    parser.add_argument("--non-pet-root", type=Path, default=NON_PET_ROOT)
    parser.add_argument("--pseudo-mask-dir", type=Path, help="pseudo masks of the photos without a trimap (cut-outs along them)")
    parser.add_argument("--other-animal-weight", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=400, help="optimiser steps per fit (full batch)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="as in training")
    parser.add_argument("--seed", type=int, default=defaults.split_seed, help="the validation split's, training's --split-seed; also seeds the scenes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=1)
    args = parser.parse_args(argv)
    if min(args.sharpness) <= 0:
        parser.error("--sharpness values must be above 0 (0 is the mean pooling the head was trained for)")
    return args


def training_photos(args: argparse.Namespace) -> tuple[list, list]:
    """The training pets and the training non-pet photos, carved as ``petnet.training.train`` carves them."""
    pets, _ = train_val_split(read_split(args.data_root, "trainval"), args.val_fraction, args.seed)
    return pets, non_pet_split(read_non_pets(args.non_pet_root), "train")


@torch.no_grad()
def features(model: PetNet, dataset: OxfordPetDataset, args: argparse.Namespace, description: str) -> torch.Tensor:
    """(N, C, h*w) last backbone features of every sample, in order; every photo must load."""
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.num_workers,
                        collate_fn=collate_skipping_failures, worker_init_fn=lambda worker: random.seed(args.seed + worker))  # fmt: skip
    chunks = []
    for batch in tqdm(loader, desc=description):
        if batch is not None:
            chunks.append(model.encoder(batch["image"])[-1].flatten(2))
    found = torch.cat(chunks)
    if len(found) != len(dataset):  # labels are matched to photos by position
        raise RuntimeError(f"{len(dataset) - len(found)} of the {description} photos failed to load (see the log)")
    return found


def fit(feats: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, sharpness: float, start: torch.nn.Linear,
        args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The pet head's weight and bias fitted to ``labels`` at ``sharpness``, from ``start``'s."""
    weight = start.weight.detach().clone().float().requires_grad_(True)
    bias = start.bias.detach().clone().float().requires_grad_(True)
    optimiser = torch.optim.AdamW([weight, bias], lr=args.lr, weight_decay=args.weight_decay)
    for _ in range(args.steps):
        optimiser.zero_grad()
        loss = weighted_log_loss(feats, labels, weights, weight, bias, sharpness)
        loss.backward()
        optimiser.step()
    return weight.detach(), bias.detach()


def pooled_logits(feats: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, sharpness: float) -> torch.Tensor:
    """The pet logit of each photo: per-location logits (the head's linear layer), pooled sharply."""
    locations = torch.einsum("ncl,c->nl", feats.float(), weight[0]) + bias[0]
    return pool_sharply(locations, sharpness)


def weighted_log_loss(feats, labels, weights, weight, bias, sharpness) -> torch.Tensor:
    logits = pooled_logits(feats, weight, bias, sharpness)
    return (F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * weights).sum() / weights.sum()


def main(argv: list[str] | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    seed_everything(args.seed)
    model = load_model(args.model, precision="float32", runtime="torch", fuse=False).eval()
    pets, non_pets = training_photos(args)
    transform = val_transform(model.config)
    groups = {
        "pets": OxfordPetDataset(pets, transform),
        "scenes": OxfordPetDataset(pets, transform, args.pseudo_mask_dir, ScenePlacer(non_pets), 1.0),
        "non-pets": OxfordPetDataset(non_pets, transform),
    }
    feats = torch.cat([features(model, dataset, args, name) for name, dataset in groups.items()])
    labels = torch.tensor([1.0] * (2 * len(pets)) + [0.0] * len(non_pets))
    animal = torch.tensor([False] * (2 * len(pets)) + [is_other_animal(r) for r in non_pets])
    # non-pets weigh as much in total as the pet photos, the other animals among them args.other_animal_weight times the rest
    weights = torch.where(animal, args.other_animal_weight, 1.0)
    weights[labels == 0] *= labels.sum() / weights[labels == 0].sum()
    # held out by source photo: a pet photo and its scene are both held out or both fitted on
    drawn = torch.rand(len(pets) + len(non_pets), generator=torch.Generator().manual_seed(args.seed)) < HOLDOUT_FRACTION
    held_out = torch.cat([drawn[: len(pets)], drawn[: len(pets)], drawn[len(pets) :]])
    head = model.pet_head[-1]
    choice = {}
    for sharpness in args.sharpness:
        weight, bias = fit(feats[~held_out], labels[~held_out], weights[~held_out], sharpness, head, args)
        with torch.no_grad():
            choice[sharpness] = float(weighted_log_loss(feats[held_out], labels[held_out], weights[held_out], weight, bias, sharpness))
        log.info("sharpness %.2f: held-out weighted log loss %.4f", sharpness, choice[sharpness])
    chosen = min(choice, key=choice.get)
    weight, bias = fit(feats, labels, weights, chosen, head, args)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    model.config.pet_pooling_sharpness = chosen
    final = args.output_dir / FINAL_DIR_NAME
    model.save_pretrained(final)
    summary = {"model": str(args.model), "chosen_sharpness": chosen, "held_out_log_loss": choice,
               "photos": {name: len(dataset) for name, dataset in groups.items()},
               "other_animals": int(animal.sum()), "held_out": int(held_out.sum()), "args": {k: str(v) for k, v in vars(args).items()}}  # fmt: skip
    (args.output_dir / "pet_head.json").write_text(json.dumps(summary, indent=2))
    log.info("sharpness %.2f chosen; saved to %s (calibrate the threshold next)", chosen, final)
    return final


if __name__ == "__main__":
    main()
