"""What reducing a large photo before the exact resize costs in fidelity, and saves in time.

    python benchmarks/large_photos.py --every 3

The prediction pipeline shrinks a large photo by a whole factor first (:func:`~petnet.inference.preprocess.reduce_large`).
This takes every ``--every``-th validation photo, enlarged to ``--size`` (a phone photo read at
``petnet.images.MAX_SIDE``), through the network's first look preprocessed both ways, and prints how
far apart the inputs and the answers are; then times both preprocessings of one such photo.
Validation only: the figures choose nothing on test.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np
from PIL import Image
from scipy.special import expit

from petnet.config import TrainConfig
from petnet.data.datasets import split_records
from petnet.hub import load_model
from petnet.images import load_image
from petnet.inference import preprocess
from petnet.paths import OXFORD_PET_ROOT


def resized(photo: Image.Image, size: int, reduce: bool) -> np.ndarray:
    """The photo's uint8 (S, S, 3) network-size pixels, reduced first or not."""
    source = preprocess.reduce_large(photo, size) if reduce else photo
    return preprocess._resize_uint8(np.asarray(source), (size, size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, default=3, help="take every N-th validation photo")
    parser.add_argument("--size", type=int, nargs=2, default=[2048, 1536], help="width and height the photos are enlarged to")
    args = parser.parse_args()
    model = load_model()
    size = model.config.image_size
    transforms = (preprocess.eval_transform(model.config, reducing_gap=0), model.predictor.preprocess)  # direct, reduced first
    split = TrainConfig()
    records = split_records(OXFORD_PET_ROOT, "val", split.val_fraction, split.split_seed)[:: args.every]
    grey_levels, score_gaps, same_breed, same_mask, right = [], [], 0, [], [0, 0]
    for record in records:
        photo = load_image(record.image_path).resize(tuple(args.size), Image.Resampling.BICUBIC)
        pixels = [resized(photo, size, reduce) for reduce in (False, True)]
        grey_levels.append(np.abs(pixels[0].astype(int) - pixels[1]))
        inputs = np.stack([transform(photo) for transform in transforms])
        outputs = [model.predictor.network.infer(inputs[i : i + 1]) for i in range(2)]
        score_gaps.append(abs(float(expit(outputs[0].pet_logits[0]) - expit(outputs[1].pet_logits[0]))))
        breeds = [int(o.breed_logits[0].argmax()) for o in outputs]
        same_breed += breeds[0] == breeds[1]
        right = [r + (b == record.breed_index) for r, b in zip(right, breeds, strict=True)]
        same_mask.append(float((outputs[0].mask_logits[0].argmax(0) == outputs[1].mask_logits[0].argmax(0)).mean()))
    levels = np.concatenate([g.ravel() for g in grey_levels])
    print(f"{len(records)} validation photos enlarged to {args.size[0]}x{args.size[1]}, direct resize against reduced first ({model.runtime}):")
    print(f"  input pixels: at most {levels.max()} grey levels apart, mean {levels.mean():.3f}, {100 * (levels > 1).mean():.2f}% more than 1")
    print(f"  pet score: at most {max(score_gaps):.4f} apart; top breed the same for {same_breed}; breeds right {right[0]} and {right[1]}")
    print(f"  mask pixels the same (network size): {100 * np.mean(same_mask):.2f}%")
    photo = load_image(records[0].image_path).resize(tuple(args.size), Image.Resampling.BICUBIC)
    for reduce in (False, True):
        seconds = min(timeit.repeat(lambda reduce=reduce: resized(photo, size, reduce), number=5, repeat=5)) / 5
        print(f"  {'reduced first' if reduce else 'direct resize'}: {1000 * seconds:.1f} ms to resize")


if __name__ == "__main__":
    main()
