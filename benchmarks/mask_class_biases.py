"""Would a bias per mask class beat the plain argmax? Prints the IoUs over a grid of biases on validation.

    python benchmarks/mask_class_biases.py [--model DIR] [--step 0.1] [--span 0.6]

The mask is the argmax of the (mirror-averaged) mask logits. Adding a constant to one class's logit
moves the decision between classes, the way a threshold does for two; the thin boundary class is
the one such a shift could help. The validation photos with a trimap are predicted once (logits at
the trimap's size, as ``petnet.evaluate`` scores them), then every (pet, boundary) bias pair of the
grid is scored, background's fixed at 0. Validation only: if a pair were kept, test would report it.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch
from torch.utils.data import DataLoader

from petnet.config import TrainConfig
from petnet.data import OxfordPetDataset, collate_skipping_failures, read_trimap, split_records
from petnet.hub import load_model
from petnet.inference import mask_from_logits, resize_scores
from petnet.labels import BACKGROUND_INDEX, BOUNDARY_INDEX, MASK_CLASSES, PET_INDEX
from petnet.metrics import binary_pet_iou, confusion_matrix, iou_per_class
from petnet.paths import BUNDLED_MODEL_DIR
from petnet.transforms import eval_transform


def validation_logits(model_dir: str) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """Mask logits (float16, at trimap size) and trimaps of the validation photos that have one."""
    defaults = TrainConfig()
    model = load_model(model_dir)
    records = [r for r in split_records(defaults.data_root, "val", defaults.val_fraction, defaults.split_seed) if r.has_trimap]
    loader = DataLoader(OxfordPetDataset(records, eval_transform(model.config)), batch_size=16,
                        collate_fn=collate_skipping_failures)  # fmt: skip
    logits, trimaps = [], []
    with torch.inference_mode():
        for batch in loader:
            mask_logits = model.infer(batch["image"]).mask_logits
            for i, index in enumerate(batch["index"].tolist()):
                trimap = read_trimap(records[index].trimap_path)
                logits.append(resize_scores(mask_logits[i], trimap.shape).half())
                trimaps.append(trimap)
    return logits, trimaps


def scores(logits: list[torch.Tensor], trimaps: list[np.ndarray], bias: torch.Tensor) -> tuple[float, float, float]:
    """Mean, worst-class and binary pet IoU of the argmax of ``logits + bias`` over all pixels."""
    confusion = sum(
        confusion_matrix(trimap, mask_from_logits(class_logits.float() + bias[:, None, None]).numpy(), len(MASK_CLASSES))
        for class_logits, trimap in zip(logits, trimaps)
    )
    iou = iou_per_class(confusion)
    return float(iou.mean()), float(iou.min()), binary_pet_iou(confusion, BACKGROUND_INDEX)


def _ious(values) -> str:
    return " / ".join(f"{value:.4f}" for value in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR))
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--span", type=float, default=0.6, help="biases from -SPAN to +SPAN")
    parser.add_argument("--top", type=int, default=10, help="how many bias pairs to print, best mean IoU first")
    args = parser.parse_args()
    logits, trimaps = validation_logits(args.model)
    grid = np.round(np.arange(-args.span, args.span + args.step / 2, args.step), 6)
    rows = []
    for pet, boundary in itertools.product(grid, grid):
        bias = torch.zeros(len(MASK_CLASSES))
        bias[PET_INDEX], bias[BOUNDARY_INDEX] = pet, boundary
        rows.append((pet, boundary, *scores(logits, trimaps, bias)))
    print(f"{len(trimaps)} validation trimaps; mean / worst-class / binary pet IoU")
    print(f"{'no bias':<25}: {_ious(scores(logits, trimaps, torch.zeros(len(MASK_CLASSES))))}")
    for pet, boundary, *ious in sorted(rows, key=lambda row: -row[2])[: args.top]:
        print(f"pet {pet:+.2f}, boundary {boundary:+.2f}: {_ious(ious)}")


if __name__ == "__main__":
    main()
