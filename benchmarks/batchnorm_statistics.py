"""Recompute a model's batch-norm statistics on the training photos and save it, for ``petnet.evaluate``.

    python benchmarks/batchnorm_statistics.py --out runs/bn-train [--model DIR] [--preprocessing train|eval]

The shipped weights are a soup: the mean of several runs' weights, batch-norm running statistics
included. SWA (Izmailov et al., UAI 2018) recomputes those statistics after averaging, since the
averaged network's activations need not have the averaged statistics; FixRes (Touvron et al.,
NeurIPS 2019) argues for statistics at the test-time preprocessing. This runs the training split's
photos (pets and the non-pet part trained on, as in training) through the backbone and the mask
decoder with their batch norms accumulating a plain mean (``momentum=None``), everything else in
eval mode, and saves the result: ``--preprocessing train`` with the training augmentation (208 px
crops, TrivialAugmentWide), ``eval`` with the prediction preprocessing (the whole photo at the input
size). The centre head keeps its statistics: it was trained on photos of several animals. Then
``python -m petnet.evaluate --split val --model OUT`` scores it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from petnet.config import TrainConfig
from petnet.data import OxfordPetDataset, collate_skipping_failures, non_pet_split, read_non_pets, split_records
from petnet.hub import load_model
from petnet.model import PetNet
from petnet.paths import BUNDLED_MODEL_DIR, NON_PET_ROOT
from petnet.transforms import eval_transform, train_transform


def accumulate_statistics(model: PetNet, batches: Iterable[dict]) -> PetNet:
    """``model`` with its backbone's and decoder's batch-norm statistics replaced by their mean over ``batches``."""
    model.eval()
    norms = [m for part in (model.encoder, model.decoder) for m in part.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative mean over every batch, not an EMA
        norm.train()
    with torch.inference_mode():
        for batch in tqdm(batches, desc="batch-norm statistics"):
            model(batch["image"].contiguous(memory_format=torch.channels_last))
    return model.eval()


def main() -> None:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preprocessing", choices=("train", "eval"), default="train")
    parser.add_argument("--crop-size", type=int, default=208, help="training crops for --preprocessing train (the shipped recipe's)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    model = load_model(args.model, fuse=False, precision="float32")
    records = split_records(defaults.data_root, "train", defaults.val_fraction, defaults.split_seed)
    records += non_pet_split(read_non_pets(NON_PET_ROOT), "train")
    transform = (train_transform(model.config, args.crop_size, trivial_augment=True) if args.preprocessing == "train"
                 else eval_transform(model.config))  # fmt: skip
    loader = DataLoader(OxfordPetDataset(records, transform), batch_size=args.batch_size, shuffle=True, num_workers=1,
                        collate_fn=collate_skipping_failures, generator=torch.Generator().manual_seed(0))  # fmt: skip
    accumulate_statistics(model, loader).save_pretrained(args.out)
    print(f"Saved {args.out}: statistics over {len(records)} training photos, {args.preprocessing} preprocessing")


if __name__ == "__main__":
    main()
