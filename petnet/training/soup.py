"""Average the weights of several PetNet training runs into one model (a uniform "model soup").

Runs fine-tuned from the same ImageNet initialisation end up close enough in weight space that
the mean of their weights predicts better than each of them, at no extra cost per image
(Wortsman et al., "Model soups", ICML 2022). ``python -m petnet.training.soup RUN_DIR ... --out DIR``
averages each run's ``model/`` export (lowest validation loss); ``--export final`` the end of the
schedule (the moving average, for runs with an EMA). An ingredient can also be a model folder
(``config.json`` + ``model.safetensors``, such as an earlier soup), and ``--weights`` weighs the
ingredients: a soup of three runs grows by a fourth as ``SOUP RUN --weights 3 1``, without the three
runs' folders.

That closeness holds for weights that started from the same place. The backbone always does
(ImageNet); the mask decoder starts from random weights drawn with ``TrainConfig.init_seed``, and
two decoders drawn differently cannot be averaged (their channels do not line up: the mean of two
such decoders marks no boundary at all). ``--decoder-from RUN ...`` then takes the decoder from the
runs named (its mean over them; they must have drawn the same initial decoder) and averages the
rest. The classification heads are linear on the pooled backbone features, so on the same features
their mean is the mean of their logits, whatever their starting weights (here the features are the
averaged backbone's).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from huggingface_hub import constants

from petnet.config import TrainConfig
from petnet.errors import WeightsError
from petnet.evaluation.report import SOUP_RECIPE_NAME, TRAIN_CONFIG_NAME
from petnet.hub import load_model
from petnet.models.network import PetNet

log = logging.getLogger(__name__)


def average_state_dicts(
    states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors, weighted by ``weights`` (default: uniform;
    computed in float32, stored in the first state's dtype); integer tensors, the batch norms' step
    counters, are taken from the first state."""
    if not states:
        raise ValueError("average_state_dicts needs at least one state dict")
    shares = _shares(len(states), weights)
    first = states[0]
    for index, state in enumerate(states[1:], start=2):
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            raise WeightsError(f"State dict {index} does not have the tensors of state dict 1; only one architecture mixes.")
    return {
        key: torch.einsum("n,n...->...", shares, torch.stack([state[key].float() for state in states])).to(tensor.dtype)
        if tensor.is_floating_point()
        else tensor.clone()
        for key, tensor in first.items()
    }


def _shares(count: int, weights: Sequence[float] | None) -> torch.Tensor:
    """Each state's share of the mean: ``weights`` normalised to sum to one (uniform without them)."""
    if weights is None:
        return torch.full((count,), 1.0 / count)
    if len(weights) != count or any(weight < 0 for weight in weights) or sum(weights) <= 0:
        raise ValueError(f"Give one non-negative weight per state dict ({count}), not all zero; got {list(weights)}.")
    shares = torch.tensor(weights, dtype=torch.float32)
    return shares / shares.sum()


EXPORTS = ("model", "final")
"""The exports a training run writes: lowest validation loss, end of the schedule."""


CENTER_HEAD_PREFIX = "center_head."
"""The centre head's weights: averaged over every ingredient where all have one, else taken from the ``--decoder-from`` runs."""
DECODER_PREFIXES = ("decoder.", CENTER_HEAD_PREFIX)
"""What ``--decoder-from`` takes from its runs alone: the decoder and the centre head that reads its features."""


def cook_soup(
    run_dirs: Sequence[Path],
    export: str = "model",
    decoder_from: Sequence[Path] = (),
    weights: Sequence[float] | None = None,
) -> PetNet:
    """One model whose weights average the exported models (``RUN_DIR/<export>``, or ``RUN_DIR``
    itself when it is a model folder) of ``run_dirs``, weighted by ``weights`` (default uniform);
    with ``decoder_from`` (some of ``run_dirs``) the mask decoder and centre head are the mean of those
    runs' alone. Then the other runs need no centre head: a run straight from ``train`` has none until
    ``train_centers`` fits one, and the soup takes the ``decoder_from`` runs' (the head reads the
    decoder's features, so it is theirs either way)."""
    if export not in EXPORTS:
        raise ValueError(f"export must be one of {', '.join(EXPORTS)}; got {export!r}.")
    models = [load_model(_model_dir(Path(run), export), runtime="torch", fuse=False) for run in run_dirs]
    shapes = [{name: getattr(model.config, name) for name in _SHAPE_FIELDS} for model in models]
    if any(shape != shapes[0] for shape in shapes[1:]):
        raise WeightsError("The runs have different model configurations (backbone, size, labels); they cannot be averaged.")
    chosen = _decoder_runs(run_dirs, decoder_from)
    with_head = [model.config.center_head for model in models]
    mixed = any(with_head) and not all(with_head)  # the head then comes from the decoder_from runs alone
    if mixed and not (chosen and all(with_head[i] for i in chosen)):
        raise WeightsError("Some runs have a centre head and some not: name runs that have one in --decoder-from, "
                           "and the soup takes its centre head from them.")  # fmt: skip
    soup = models[chosen[0]] if mixed else models[0]  # its config goes with its head
    states = [{k: v for k, v in model.state_dict().items() if not (mixed and k.startswith(CENTER_HEAD_PREFIX))} for model in models]
    averaged = average_state_dicts(states, weights)
    source = "average of " + ", ".join(str(run) for run in run_dirs)
    if weights is not None:
        source += " weighted " + ":".join(f"{weight:g}" for weight in weights)
    if chosen:
        decoders = [{k: v for k, v in models[i].state_dict().items() if k.startswith(DECODER_PREFIXES)} for i in chosen]
        averaged.update(average_state_dicts(decoders, None if weights is None else [weights[i] for i in chosen]))
        source += f", the decoder and centre head of {', '.join(str(run) for run in decoder_from)} alone"
    soup.load_state_dict(averaged)
    soup.weights_source = source
    return soup


def _decoder_runs(run_dirs: Sequence[Path], decoder_from: Sequence[Path]) -> list[int]:
    """Where in ``run_dirs`` the ``decoder_from`` runs are; ValueError for one outside them, one named
    twice, or runs that drew different initial decoders."""
    runs = [Path(run).resolve() for run in run_dirs]
    outside = [str(run) for run in decoder_from if Path(run).resolve() not in runs]
    if outside:
        raise ValueError(f"--decoder-from {' '.join(outside)} is not one of the runs averaged.")
    if len({Path(run).resolve() for run in decoder_from}) < len(decoder_from):
        raise ValueError("--decoder-from names a run twice.")
    seeds = {str(run): _initial_weights_seed(Path(run)) for run in decoder_from}
    if len({seed for seed in seeds.values() if seed is not None}) > 1:
        raise ValueError(f"--decoder-from runs drew different initial decoders (init_seed {seeds}); their mean is no decoder.")
    return [runs.index(Path(run).resolve()) for run in decoder_from]


_SHAPE_FIELDS = ("backbone", "image_size", "decoder_channels", "species_names", "breed_names", "breed_species",
                 "mask_classes", "mean", "std")
"""What ingredients must share; their thresholds and temperature may differ (the soup keeps those of the
first ingredient, or of the first ``--decoder-from`` run where some have no centre head, whose head's
thresholds ``train_centers`` fitted, until ``petnet.training.calibrate`` fits its own)."""


def _model_dir(run_dir: Path, export: str) -> Path:
    """Where an ingredient's weights are: ``run_dir`` itself if it is a model folder, else its export."""
    return run_dir if (run_dir / constants.CONFIG_NAME).is_file() else run_dir / export


def _initial_weights_seed(run_dir: Path) -> int | None:
    """The ``init_seed`` a run drew its decoder with, from its ``train_config.json``; None without one."""
    path = run_dir / TRAIN_CONFIG_NAME
    return TrainConfig.from_dict(json.loads(path.read_text())).init_seed if path.is_file() else None


def main(argv: list[str] | None = None) -> PetNet:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="petnet-soup", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path,
                        help="output directories of python -m petnet.training.train, or model folders (an earlier soup)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="folder for config.json and model.safetensors")
    parser.add_argument("--export", choices=EXPORTS, default="model",
                        help="which export of each run: lowest validation loss (model) or end of schedule (final)")
    parser.add_argument("--decoder-from", type=Path, nargs="+", default=[],
                        help="some of the runs: the mask decoder is the mean of theirs alone (for runs whose decoders "
                        "started from different random weights; name runs that drew the same ones)")  # fmt: skip
    parser.add_argument("--weights", type=float, nargs="+",
                        help="one weight per run, in their order (default: all equal)")  # fmt: skip
    args = parser.parse_args(argv)
    soup = cook_soup(args.runs, args.export, args.decoder_from, args.weights)
    soup.save_pretrained(args.out)
    recipe = {"runs": [str(run) for run in args.runs], "export": args.export,
              "decoder_from": [str(run) for run in args.decoder_from]}  # fmt: skip
    if args.weights:
        recipe["weights"] = args.weights
    (args.out / SOUP_RECIPE_NAME).write_text(json.dumps(recipe, indent=2) + "\n")
    log.info("Saved the %s to %s", soup.weights_source, args.out)
    return soup


if __name__ == "__main__":
    main()
