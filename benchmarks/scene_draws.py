"""Pets in validation scenes over several draws: the figures a candidate's scene bar is judged on.

    python benchmarks/scene_draws.py --model runs/NAME-centres/final --runtime onnx --precision int8

One draw of the report (``petnet.evaluate``, 200 scenes a size band) moves a band's share by a photo
or two, so candidates are compared on six: the report's own draw (the split seed + ``SCENE_SEED_OFFSET``) and
seeds 11-15, 1,200 scenes a band (docs/experiments.md, "How many scenes the checks need"). Scenes
are built and counted as the report builds and counts them (validation pets, the calibration part of
the non-pet photos as backgrounds); the lines printed are the report's, summed over the draws.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm.auto import tqdm

from petnet.config import TrainConfig
from petnet.data.datasets import non_pet_split, read_non_pets, split_records
from petnet.data.scenes import build_scenes
from petnet.evaluate import NON_PET_PART, SCENE_SEED_OFFSET, SCENES_PER_CELL, scene_counts, scene_lines
from petnet.hub import ALL_PRECISIONS, RUNTIMES, load_model
from petnet.paths import NON_PET_ROOT, OXFORD_PET_ROOT

MORE_DRAW_SEEDS = (11, 12, 13, 14, 15)
"""The draws beside the report's own."""


def add_counts(total: dict, counts: dict) -> None:
    """``counts`` (:func:`petnet.evaluate.scene_counts`) added cell by cell into ``total``."""
    for kind, bands in counts.items():
        for band, cell in bands.items():
            into = total.setdefault(kind, {}).setdefault(band, dict.fromkeys(cell, 0))
            for key, value in cell.items():
                into[key] += value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="petnet/weights", help="model folder or Hub repo id")
    parser.add_argument("--runtime", choices=RUNTIMES, default=None)
    parser.add_argument("--precision", choices=ALL_PRECISIONS, default="auto")
    split = TrainConfig()
    parser.add_argument("--seeds", type=int, nargs="+", default=[split.split_seed + SCENE_SEED_OFFSET, *MORE_DRAW_SEEDS],
                        help="one draw per seed (default: the report's and five more)")  # fmt: skip
    parser.add_argument("--per-cell", type=int, default=SCENES_PER_CELL, help="scenes per kind and size band per draw")
    args = parser.parse_args()
    pets = split_records(OXFORD_PET_ROOT, "val", split.val_fraction, split.split_seed)
    backgrounds = non_pet_split(read_non_pets(Path(NON_PET_ROOT)), NON_PET_PART["val"])
    model = load_model(args.model, runtime=args.runtime, precision=args.precision)
    total: dict = {}
    for seed in args.seeds:
        scenes = build_scenes(pets, backgrounds, args.per_cell, seed=seed)
        predictions = model.predict_batch([scene.image for scene in tqdm(scenes, desc=f"draw {seed}")])
        add_counts(total, scene_counts(scenes, predictions))
    print(
        f"{args.model} ({model.runtime}), draws {' '.join(map(str, args.seeds))}, {args.per_cell} scenes per kind and band each"
    )
    print("\n".join(scene_lines({"scenes": total})))
    both: dict = {}
    for bands in total.values():
        add_counts(both, {"both kinds": bands})
    print(scene_lines({"scenes": both})[0])  # the bar's figures: both kinds summed


if __name__ == "__main__":
    main()
