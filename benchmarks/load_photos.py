"""Write the load test's photo set to a folder: a fixed draw of Oxford-IIIT test photos and of the
held-out non-pets, so that a load test on "varied photos" can be repeated on the same photos::

    python benchmarks/load_photos.py /tmp/loadphotos
    python benchmarks/load_test.py --clients 20 --requests 300 --photos /tmp/loadphotos --compare --baseline-ref 5946b38 --rounds 2

About a third of the photos hold no pet, and those cost the pipeline most (the second look, and the
tile look where a look suspects a pet), so the mix is part of the figure.
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from petnet.data.datasets import non_pet_split, read_non_pets, read_split
from petnet.paths import NON_PET_ROOT, OXFORD_PET_ROOT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to copy the photos into")
    parser.add_argument("--pets", type=int, default=150, help="Oxford-IIIT test photos (default 150)")
    parser.add_argument("--non-pets", type=int, default=77, help="held-out non-pet photos (default 77)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty: the load test would send whatever else is in it")
    rng = random.Random(args.seed)  # one draw after the other, as the folder the figures in docs/ were measured on
    pets = rng.sample(read_split(OXFORD_PET_ROOT, "test"), args.pets)
    non_pets = rng.sample(non_pet_split(read_non_pets(NON_PET_ROOT), "holdout"), args.non_pets)
    args.out.mkdir(parents=True, exist_ok=True)
    for record in [*pets, *non_pets]:
        shutil.copy(record.image_path, args.out / Path(record.image_path).name)
    print(f"{len(pets)} pets and {len(non_pets)} non-pets in {args.out}")


if __name__ == "__main__":
    main()
