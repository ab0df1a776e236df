"""How closely a model's int8 graph answers as its float32 graph does, on this CPU.

    python benchmarks/int8_agreement.py --model petnet/weights
    qemu-x86_64 -cpu max .venv/bin/python benchmarks/int8_agreement.py --model petnet/weights

Runs both ONNX graphs of ``--model`` on ``--photos`` validation photos (spread over the breeds) and
prints the share of top breeds and mask pixels that agree and the largest pet-score and breed-logit
gaps. The second line runs it on an emulated x86 CPU with AVX2 and no AVX-512 (Debian's
``qemu-user``; about 10 minutes for 32 photos), where ONNX Runtime's uint8 x int8 convolutions add
product pairs into saturating 16-bit sums: graphs whose 8-bit weights overflow them agree visibly
less there than on a VNNI machine (docs/experiments.md, "int8 graphs with 7-bit weights").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.special import expit

from petnet.config import TrainConfig
from petnet.data.datasets import load_record_image, split_records
from petnet.hub import int8_may_saturate, load_model
from petnet.paths import OXFORD_PET_ROOT
from petnet.training.export import spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("petnet/weights"), help="a model folder with both graphs")
    parser.add_argument("--photos", type=int, default=32, help="validation photos")
    args = parser.parse_args()
    split = TrainConfig()
    records = spread(split_records(OXFORD_PET_ROOT, "val", split.val_fraction, split.split_seed), args.photos)
    float32 = load_model(args.model, runtime="onnx", precision="float32")
    int8 = load_model(args.model, runtime="onnx", precision="int8")
    images = np.stack([float32.predictor.preprocess(load_record_image(record)) for record in records])
    want, have = float32.predictor.network.infer(images), int8.predictor.network.infer(images)
    print(f"{args.model}, {len(records)} validation photos, int8 may saturate here: {int8_may_saturate()}")
    print(f"  top breed agreeing {np.mean(want.breed_logits.argmax(1) == have.breed_logits.argmax(1)):.1%}, "
          f"mask pixels agreeing {np.mean(want.mask_logits.argmax(1) == have.mask_logits.argmax(1)):.2%}, "
          f"largest pet-score gap {np.abs(expit(want.pet_logits) - expit(have.pet_logits)).max():.3f}, "
          f"largest breed-logit gap {np.abs(want.breed_logits - have.breed_logits).max():.2f}")


if __name__ == "__main__":
    main()
