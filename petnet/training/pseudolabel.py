"""Pseudo-label the training photos that have no trimap, as an extra training signal for the mask head.

``python -m petnet.training.pseudolabel --model petnet/weights --out runs/pseudo-masks`` writes one PNG per photo
(values 0 pet, 1 background, 2 boundary, 255 where the model is not confident enough). Only photos of
the training part of ``trainval`` are labelled, never validation or test, and evaluation only ever
scores real trimaps: pseudo masks are a training aid (self-training), never ground truth.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import constants
from PIL import Image
from safetensors import safe_open
from scipy.special import softmax
from tqdm.auto import tqdm

from petnet.config import TrainConfig
from petnet.data.datasets import pseudo_mask_path, split_records
from petnet.errors import WeightsError
from petnet.images import load_image
from petnet.inference.decoding import mask_from_logits, resize_scores
from petnet.labels import IGNORE_INDEX
from petnet.models.network import PetNet

log = logging.getLogger("petnet.training.pseudolabel")

DEFAULT_MIN_CONFIDENCE = 0.9
"""Pixels whose most likely class has a lower probability are left unlabelled (255)."""


def pseudo_mask(mask_logits: np.ndarray | torch.Tensor, size: tuple[int, int], min_confidence: float) -> np.ndarray:
    """(3, h, w) logits (an array or a CPU tensor) -> (H, W) uint8 labels at ``size``,
    ``IGNORE_INDEX`` below ``min_confidence``."""
    probabilities = softmax(resize_scores(np.asarray(mask_logits), size), axis=0)
    labels = mask_from_logits(probabilities)
    labels[probabilities.max(axis=0) < min_confidence] = IGNORE_INDEX
    return labels


def load_mask_teacher(directory: Path) -> PetNet:
    """The model whose masks become the pseudo labels. Only its mask head is used, so weights saved
    before the pet-presence head existed load too (their pet head stays untrained)."""
    model = PetNet.from_pretrained(directory, strict=False)
    with safe_open(directory / constants.SAFETENSORS_SINGLE_FILE, "pt") as weights:
        missing = set(model.state_dict()) - set(weights.keys())
    if any(not key.startswith("pet_head.") for key in missing):
        raise WeightsError(f"{directory} lacks tensors other than the pet head's: {sorted(missing)[:3]} ...")
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="petnet-pseudolabel", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder (config.json + model.safetensors)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, default=Path(defaults.data_root))
    parser.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE)
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="as in training")
    parser.add_argument("--seed", type=int, default=defaults.split_seed, help="the validation split's, training's --split-seed")
    args = parser.parse_args(argv)
    train_records = split_records(args.data_root, "train", args.val_fraction, args.seed)
    unlabelled = [record for record in train_records if not record.has_trimap]
    model = load_mask_teacher(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    kept = 0.0
    with torch.inference_mode():
        for record in tqdm(unlabelled, desc="pseudo masks"):
            photo = load_image(record.image_path)
            output = model.infer(model.preprocess(photo)[None].contiguous(memory_format=torch.channels_last))
            labels = pseudo_mask(output.mask_logits[0], (photo.height, photo.width), args.min_confidence)
            Image.fromarray(labels).save(pseudo_mask_path(args.out, record.name))
            kept += float((labels != IGNORE_INDEX).mean())
    log.info("Wrote %d pseudo masks to %s; %.1f%% of their pixels are labelled (confidence >= %.2f)",
             len(unlabelled), args.out, 100 * kept / max(1, len(unlabelled)), args.min_confidence)


if __name__ == "__main__":
    main()
