"""Which rule should name the species? Prints, on validation, how many photos each rule gets right.

``python benchmarks/species_rules.py [--model DIR]`` runs the model on the validation pets (carved
from ``trainval`` as in training) and compares four ways of naming the species: the species head,
the species whose breeds hold the most breed probability, the mean of those two distributions, and
the species of the single most likely breed (what ``predict`` does, chosen by this script). For
each it prints the species right and the breed top-1 when the breeds are ranked among that
species' (as ``predict`` ranks them).
Validation data only: a rule chosen here is reported on test by ``petnet.evaluate``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from petnet.config import TrainConfig
from petnet.data import split_records
from petnet.evaluate import run_model
from petnet.hub import load_model
from petnet.paths import BUNDLED_MODEL_DIR


def main() -> None:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR))
    args = parser.parse_args()
    model = load_model(args.model)
    records = split_records(defaults.data_root, "val", defaults.val_fraction, defaults.split_seed)
    outcomes, _ = run_model(model, records)  # what petnet.evaluate scores: the same pass, the same logits
    species = torch.from_numpy(np.stack([o.species_logits for o in outcomes])).softmax(dim=1)
    species_of_breeds = torch.from_numpy(np.stack([o.species_probabilities for o in outcomes]))
    breeds = torch.from_numpy(np.stack([o.breed_logits for o in outcomes])).softmax(dim=1)
    true_species = torch.tensor([o.record.species_index for o in outcomes])
    true_breed = torch.tensor([o.record.breed_index for o in outcomes])
    breed_species = model.breed_species_index.cpu()
    rules = {
        "species head": species.argmax(dim=1),
        "most breed probability": species_of_breeds.argmax(dim=1),
        "mean of the two": (species + species_of_breeds).argmax(dim=1),
        "species of the top breed (predict)": breed_species[breeds.argmax(dim=1)],
    }
    print(f"{len(outcomes)} validation pets; breed top-1 over all 37 breeds: {int((breeds.argmax(1) == true_breed).sum())}")
    print(f"{'rule':<36} {'species right':>14} {'breed top-1 within it':>22}")
    for name, named in rules.items():
        ranked = breeds.masked_fill(breed_species[None] != named[:, None], -1).argmax(dim=1)
        print(f"{name:<36} {int((named == true_species).sum()):>14} {int((ranked == true_breed).sum()):>22}")


if __name__ == "__main__":
    main()
