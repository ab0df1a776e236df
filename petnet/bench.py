"""Measure PetNet on CPU, runtime against runtime: ``python -m petnet.bench [--threads 2] [--json bench.json]``.

Figures, not assertions (tests never time anything). For each runtime of ``--runtimes`` (default:
PyTorch in the precision ``load_model`` picks, ONNX Runtime float32 and int8; those not installed
are skipped), in one process and in turns, so that they share the machine's noise:

- single-image latency end to end, as the demo serves a request: decode JPEG bytes, preprocess,
  the network, the closer look, decoding and the mask upsampled to the photo's size
  (``model.predict(jpeg_bytes)``), p50/p90 over ``--runs`` after ``--warmup`` runs, called one
  runtime after the other; and the ratio of each p50 to the first runtime's, which the noise of a
  shared machine moves far less than either figure;
- the network's first look alone (``network.infer`` on the photo and its mirror image);
- a photo of two animals (two example photos side by side), which adds one pass over their crops;
- batch throughput of ``predict_batch`` on already preprocessed inputs;
- the first prediction in a fresh process (``import petnet``, ``load_model``, one ``predict``:
  what a cold start costs a user, the median of ``--load-runs``) and that process's peak memory,
  with a few more predictions: a serving process's footprint;
- the size of the light install: the files of every distribution ``requirements.txt`` pulls in.

Close other heavy jobs first; on a shared machine the figures are only indicative.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from petnet import __version__
from petnet.data.composites import side_by_side
from petnet.hub import display_source, load_model
from petnet.images import load_image
from petnet.paths import BUNDLED_MODEL_DIR, EXAMPLES_DIR

DEFAULT_IMAGE = EXAMPLES_DIR / "Abyssinian_202.jpg"
TWO_ANIMALS = (EXAMPLES_DIR / "Abyssinian_202.jpg", EXAMPLES_DIR / "beagle_196.jpg")
"""The cat and the dog of the two-animal timing, put side by side."""
RUNTIMES = {
    "torch": {"runtime": "torch", "precision": "auto"},
    "torch-float32": {"runtime": "torch", "precision": "float32"},
    "torch-bfloat16": {"runtime": "torch", "precision": "bfloat16"},
    "onnx-float32": {"runtime": "onnx", "precision": "float32"},
    "onnx-int8": {"runtime": "onnx", "precision": "int8"},
}
"""``--runtimes`` choices: ``load_model`` arguments (``torch``: the precision it picks on this CPU)."""
DEFAULT_RUNTIMES = ("torch", "onnx-float32", "onnx-int8")
REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"


def timings(function: Callable[[], object], runs: int, warmup: int) -> np.ndarray:
    """Seconds per call of ``function`` over ``runs`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        function()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return np.array(seconds)


def summary(seconds: np.ndarray) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(seconds, 50) * 1e3), "p90_ms": float(np.percentile(seconds, 90) * 1e3),
            "runs": len(seconds)}  # fmt: skip


def in_turns(functions: Sequence[Callable[[], object]], runs: int, warmup: int) -> list[dict[str, float]]:
    """:func:`summary` of each function, called in turn, one call each, ``runs`` rounds after ``warmup``."""
    for function in functions:
        timings(function, runs=0, warmup=warmup)
    seconds: list[list[float]] = [[] for _ in functions]
    for _ in range(runs):
        for function, times in zip(functions, seconds):
            times.extend(timings(function, runs=1, warmup=0))
    return [summary(np.array(times)) for times in seconds]


def two_animal_photo() -> Image.Image:
    """A cat and a dog side by side, from the bundled example photos."""
    return side_by_side(*(load_image(photo) for photo in TWO_ANIMALS))


def throughput(model, jpeg: bytes, batch_size: int, runs: int) -> float:
    """Images per second of ``predict_batch`` over preprocessed inputs at ``batch_size`` (median run)."""
    inputs = [model.predictor.prepare(jpeg).pixels] * batch_size
    seconds = timings(lambda: model.predict_batch(inputs, batch_size=batch_size), runs, warmup=1)
    return float(batch_size / np.median(seconds))


def network_pass(model, jpeg: bytes) -> Callable[[], object]:
    """The first look alone: the photo (and its mirror image) through the network."""
    batch = np.asarray(model.predictor.prepare(jpeg).pixels)[None]
    return partial(model.predictor.network.infer, batch)


def first_prediction(model_source: str, runtime: dict[str, str], image: Path, threads: int) -> dict[str, float]:
    """A new interpreter: ``import petnet``, ``load_model``, one ``predict`` (timed from the script's
    first line, so without interpreter start-up), then 9 more; its wall time and peak memory. The
    peak is the kernel's ``VmHWM``, which starts afresh at ``exec``: ``getrusage``'s ``ru_maxrss``
    would carry over this (large) benchmark process's size from the ``fork``."""
    code = (
        "import time; t = time.perf_counter(); import json, sys; import petnet\n"
        "model = petnet.load_model(sys.argv[1], runtime=sys.argv[2], precision=sys.argv[3], threads=int(sys.argv[5]))\n"
        "model.predict(sys.argv[4]); first = time.perf_counter() - t\n"
        "for _ in range(9): model.predict(sys.argv[4])\n"
        "peak = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
        "print(json.dumps({'first_prediction_s': first, 'runtime': model.runtime, 'torch': 'torch' in sys.modules,\n"
        "                  'peak_rss_mib': peak / 1024}))"
    )
    if runtime["runtime"] == "torch":  # PyTorch's own threads, as the demo sets them
        code = code.replace("import petnet\n", "import petnet, torch; torch.set_num_threads(int(sys.argv[5]))\n", 1)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code, model_source, runtime["runtime"], runtime["precision"], str(image), str(threads)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {"process_wall_s": time.perf_counter() - started, **json.loads(result.stdout.strip().splitlines()[-1])}


def cold_start(model_source: str, runtime: dict[str, str], image: Path, threads: int, runs: int) -> dict:
    """:func:`first_prediction` ``runs`` times, the median of each time and the largest peak memory."""
    starts = [first_prediction(model_source, runtime, image, threads) for _ in range(runs)]
    return {
        "process_wall_s": float(np.median([start["process_wall_s"] for start in starts])),
        "first_prediction_s": float(np.median([start["first_prediction_s"] for start in starts])),
        "first_prediction_runs_s": [start["first_prediction_s"] for start in starts],
        "peak_rss_mib": max(start["peak_rss_mib"] for start in starts),
        "imports_torch": any(start["torch"] for start in starts),
    }


def install_size_mib(requirements: Path = REQUIREMENTS) -> float | None:
    """Size on disk of every installed distribution ``requirements`` names and, recursively, what
    they require (extras and environment markers as pip would read them); None without the file."""
    if not requirements.is_file():
        return None
    from packaging.requirements import Requirement  # pip's own parser, installed with every tool here

    pending = [Requirement(line.split("#")[0].strip()) for line in requirements.read_text().splitlines()
               if line.split("#")[0].strip()]  # fmt: skip
    seen: set[str] = set()
    total = 0
    while pending:
        requirement = pending.pop()
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name in seen:
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        seen.add(name)
        total += sum(file.locate().stat().st_size for file in distribution.files or () if file.locate().is_file())
        for text in distribution.requires or ():
            child = Requirement(text)
            extras = requirement.extras or {""}
            if child.marker is None or any(child.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(child)
    return total / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def available(names: Sequence[str], model_source: str) -> list[str]:
    """The runtimes of ``names`` this install and model can run (PyTorch installed; ONNX graphs present)."""
    import importlib.util

    from petnet.inference.onnx_network import graph_files

    kept = []
    for name in names:
        runtime = RUNTIMES[name]
        if importlib.util.find_spec("torch" if runtime["runtime"] == "torch" else "onnxruntime") is None:
            continue
        graphs = graph_files(runtime["precision"]) if runtime["runtime"] == "onnx" else ()
        if Path(model_source).is_dir() and not all((Path(model_source) / file).is_file() for file in graphs):
            continue
        kept.append(name)
    return kept


def run(args: argparse.Namespace) -> dict:
    jpeg = Path(args.image).read_bytes()
    photo = load_image(jpeg)
    names = available(args.runtimes, args.model)
    if not names:
        raise SystemExit(f"none of the runtimes {', '.join(args.runtimes)} can run here")
    if any(RUNTIMES[name]["runtime"] == "torch" for name in names):
        import torch

        torch.set_num_threads(args.threads)
    results: dict = {
        "petnet_version": __version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "model": display_source(args.model),
        "image": f"{Path(args.image).name} ({photo.width}x{photo.height})",
        "light_install_mib": install_size_mib(),
    }
    models = {}
    for name in names:
        started = time.perf_counter()
        models[name] = load_model(args.model, threads=args.threads, **RUNTIMES[name])
        results.setdefault("runtimes", {})[name] = {"runtime": models[name].runtime, "warm_load_s": time.perf_counter() - started}
    results["image_size"] = next(iter(models.values())).config.image_size
    two = two_animal_photo()
    for figure, calls in (
        ("latency", [partial(model.predict, jpeg) for model in models.values()]),
        ("network", [network_pass(model, jpeg) for model in models.values()]),
        ("two_animal_latency", [partial(model.predict, two) for model in models.values()]),
    ):
        for name, timing in zip(models, in_turns(calls, args.runs, args.warmup)):
            results["runtimes"][name][figure] = timing
    reference = results["runtimes"][names[0]]
    for name, model in models.items():
        figures = results["runtimes"][name]
        figures["p50_ratio"] = figures["latency"]["p50_ms"] / reference["latency"]["p50_ms"]
        figures["network_p50_ratio"] = figures["network"]["p50_ms"] / reference["network"]["p50_ms"]
        figures["pets_found_side_by_side"] = len(model.predict(two).pets)
        figures["throughput_images_per_s"] = {str(b): throughput(model, jpeg, b, args.batch_runs) for b in args.batch_sizes}
        if args.load_runs > 0:
            figures["cold_start"] = cold_start(args.model, RUNTIMES[name], args.image, args.threads, args.load_runs)
    results["reference"] = names[0]
    results["peak_rss_mib"] = peak_rss_mib()
    return results


def table(results: dict) -> str:
    names = list(results["runtimes"])
    runtimes = [results["runtimes"][name] for name in names]
    width = 22

    def row(label: str, values: Sequence[str]) -> str:
        return f"{label:<40}" + "".join(f"{value:>{width}}" for value in values)

    lines = [
        (f"PetNet {results['petnet_version']} on CPU ({results['threads']} threads of {results['cpu_count']}), "
         f"input {results['image_size']} px, photo {results['image']}"),
        row("", [figures["runtime"] for figures in runtimes]),
        row("single image end to end p50 (ms)", [f"{f['latency']['p50_ms']:.1f}" for f in runtimes]),
        row("single image end to end p90 (ms)", [f"{f['latency']['p90_ms']:.1f}" for f in runtimes]),
        row(f"  p50 ratio to {runtimes[0]['runtime']}", [f"{f['p50_ratio']:.2f}" for f in runtimes]),
        row("network's first look p50 (ms)", [f"{f['network']['p50_ms']:.1f}" for f in runtimes]),
        row(f"  ratio to {runtimes[0]['runtime']}", [f"{f['network_p50_ratio']:.2f}" for f in runtimes]),
        row("two animals side by side p50 (ms)",
            [f"{f['two_animal_latency']['p50_ms']:.1f} ({f['pets_found_side_by_side']} found)" for f in runtimes]),
    ]  # fmt: skip
    for size in runtimes[0]["throughput_images_per_s"]:
        lines.append(row(f"throughput at batch {size} (images/s)", [f"{f['throughput_images_per_s'][size]:.1f}" for f in runtimes]))
    if all("cold_start" in f for f in runtimes):
        lines += [
            row("first prediction, fresh process (s)", [f"{f['cold_start']['first_prediction_s']:.2f}" for f in runtimes]),
            row("  the whole process (s)", [f"{f['cold_start']['process_wall_s']:.2f}" for f in runtimes]),
            row("  peak memory after 10 photos (MiB)", [f"{f['cold_start']['peak_rss_mib']:.0f}" for f in runtimes]),
            row("  imports torch", ["yes" if f["cold_start"]["imports_torch"] else "no" for f in runtimes]),
        ]
    if results["light_install_mib"] is not None:
        lines.append(f"{'light install (requirements.txt), MiB':<40}{results['light_install_mib']:>{width}.0f}")
    lines.append(f"{'peak memory of this benchmark (MiB)':<40}{results['peak_rss_mib']:>{width}.0f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="petnet-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR), help="model folder or Hub repo id (default: bundled)")
    parser.add_argument("--runtimes", nargs="+", choices=list(RUNTIMES), default=list(DEFAULT_RUNTIMES),
                        help="what to compare; the first is the reference of the ratios")  # fmt: skip
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="JPEG used for every run")
    parser.add_argument("--threads", type=int, default=2, help="threads of each runtime (default 2)")
    parser.add_argument("--runs", type=int, default=50, help="timed single-image runs per runtime")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--batch-runs", type=int, default=5, help="timed runs per batch size")
    parser.add_argument("--load-runs", type=int, default=3, help="fresh processes timed to their first prediction (0: none)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    for photo in (args.image, *TWO_ANIMALS):
        if not photo.is_file():
            parser.error(f"no photo at {photo}: run from a PetNet checkout, or set PETNET_EXAMPLES_DIR (and --image)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    results = run(args)
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
