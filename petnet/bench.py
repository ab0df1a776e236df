"""Measure PetNet on CPU: ``python -m petnet.bench [--threads 2] [--json bench.json]``.

Figures, not assertions (tests never time anything):

- single-image latency end to end, as the demo serves a request: decode JPEG bytes, preprocess,
  forward, species-conditioned top-3 and the mask upsampled to the photo's full size
  (``model.predict(jpeg_bytes)``), p50/p90 over ``--runs`` after ``--warmup`` runs;
- batch throughput of ``model.predict_batch`` on already preprocessed tensors (network + outputs);
- model load time: fresh ``python -c "import petnet; petnet.load_model(...)"`` processes (what a
  cold start costs, interpreter start-up included; the median of ``--load-runs``) and a second load
  inside this warm process;
- peak resident memory of this process and of the fresh loading process;
- with ``--compare OTHER``: the other model's single-image latency, timed in turns with this one's
  (one call each, alternately), and the ratio of the two p50s, which a shared machine's noise moves
  far less than either figure; ``--compare-precision float32`` compares with the other (or the same)
  model computing in another number format (``--precision``, :mod:`petnet.models.precision`);
- the latency on a photo of two animals (two example photos side by side), which adds one pass over
  the animals' crops.

Close other heavy jobs first; on a shared machine the figures are only indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from petnet import __version__
from petnet.data.composites import side_by_side
from petnet.hub import display_source, load_model
from petnet.images import load_image
from petnet.models.network import PetNet
from petnet.models.precision import PRECISIONS, precision_name
from petnet.paths import BUNDLED_MODEL_DIR, EXAMPLES_DIR

DEFAULT_IMAGE = EXAMPLES_DIR / "Abyssinian_202.jpg"
TWO_ANIMALS = (EXAMPLES_DIR / "Abyssinian_202.jpg", EXAMPLES_DIR / "beagle_196.jpg")
"""The cat and the dog of the two-animal timing, put side by side."""


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


def latency(models: Sequence[PetNet], image: bytes | Image.Image, runs: int, warmup: int) -> list[dict[str, float]]:
    """End-to-end single-image latency of each model in milliseconds; with several, the models are
    called in turn, one call each, so that they share the machine's noise."""
    for model in models:
        timings(partial(model.predict, image), runs=0, warmup=warmup)
    seconds: list[list[float]] = [[] for _ in models]
    for _ in range(runs):
        for model, times in zip(models, seconds):
            times.extend(timings(partial(model.predict, image), runs=1, warmup=0))
    return [summary(np.array(times)) for times in seconds]


def two_animal_photo() -> Image.Image:
    """A cat and a dog side by side, from the bundled example photos."""
    return side_by_side(*(load_image(photo) for photo in TWO_ANIMALS))


def throughput(model: PetNet, jpeg: bytes, batch_size: int, runs: int) -> float:
    """Images per second of ``predict_batch`` over preprocessed tensors at ``batch_size`` (median run)."""
    tensors = [model.preprocess(jpeg)] * batch_size
    seconds = timings(lambda: model.predict_batch(tensors, batch_size=batch_size), runs, warmup=1)
    return float(batch_size / np.median(seconds))


def fresh_process_load(model_source: str, threads: int) -> dict[str, float]:
    """Wall time and peak memory of a new interpreter that imports petnet and loads the model
    (``import_and_load_s`` counts from the first line of the script, so without interpreter start-up)."""
    code = (
        "import time; t = time.perf_counter(); import resource, sys, torch; torch.set_num_threads(int(sys.argv[2])); "
        "import petnet; petnet.load_model(sys.argv[1]); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, model_source, str(threads)], capture_output=True, text=True,
                            check=True)  # fmt: skip
    wall = time.perf_counter() - started
    import_and_load, max_rss_kib = result.stdout.split()[-2:]
    return {"process_wall_s": wall, "import_and_load_s": float(import_and_load), "peak_rss_mib": int(max_rss_kib) / 1024}


def cold_load(model_source: str, threads: int, runs: int) -> dict:
    """:func:`fresh_process_load` ``runs`` times in a row, the median of each time (one process alone
    swings by a few tenths of a second here) and every run's import-and-load time."""
    loads = [fresh_process_load(model_source, threads) for _ in range(runs)]
    return {
        "process_wall_s": float(np.median([load["process_wall_s"] for load in loads])),
        "import_and_load_s": float(np.median([load["import_and_load_s"] for load in loads])),
        "import_and_load_runs_s": [load["import_and_load_s"] for load in loads],
        "peak_rss_mib": max(load["peak_rss_mib"] for load in loads),
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    jpeg = Path(args.image).read_bytes()
    photo = load_image(jpeg)
    results: dict = {
        "petnet_version": __version__,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "model": display_source(args.model),
        "image": f"{Path(args.image).name} ({photo.width}x{photo.height})",
    }
    results["cold_load"] = cold_load(args.model, args.threads, args.load_runs) if args.load_runs > 0 else None
    started = time.perf_counter()
    model = load_model(args.model, precision=args.precision)
    results["warm_load_s"] = time.perf_counter() - started
    results["image_size"] = model.config.image_size
    results["dtype"] = precision_name(model.inference_dtype)
    compared = []
    if args.compare or args.compare_precision:
        compared = [load_model(args.compare or args.model, precision=args.compare_precision or args.precision)]
    results["latency"], *others = latency([model, *compared], jpeg, args.runs, args.warmup)
    if others:
        results["compared"] = {"model": display_source(args.compare or args.model), "dtype": precision_name(compared[0].inference_dtype),
                               "latency": others[0], "p50_ratio": results["latency"]["p50_ms"] / others[0]["p50_ms"]}  # fmt: skip
    two = two_animal_photo()
    [two_latency] = latency([model], two, args.runs, args.warmup)
    results["two_animal_latency"] = {**two_latency, "pets_found": len(model.predict(two).pets)}
    results["throughput_images_per_s"] = {str(b): throughput(model, jpeg, b, args.batch_runs) for b in args.batch_sizes}
    results["peak_rss_mib"] = peak_rss_mib()
    return results


def table(results: dict) -> str:
    header = (
        f"PetNet {results['petnet_version']} on CPU ({results['threads']} threads of {results['cpu_count']}), "
        f"torch {results['torch']}, {results['dtype']}, input {results['image_size']} px, photo {results['image']}"
    )
    lines = [
        header,
        f"{'single image end to end p50':<36} {results['latency']['p50_ms']:9.1f} ms",
        f"{'single image end to end p90':<36} {results['latency']['p90_ms']:9.1f} ms",
    ]
    if results.get("compared"):
        compared = results["compared"]
        lines += [
            f"{'  the same for ' + compared['model'] + ', ' + compared['dtype']:<36} {compared['latency']['p50_ms']:9.1f} ms",
            f"{'  p50 ratio, this model / that one':<36} {compared['p50_ratio']:9.2f}",
        ]
    two = results["two_animal_latency"]
    lines.append(f"{'two animals side by side, p50':<36} {two['p50_ms']:9.1f} ms ({two['pets_found']} found)")
    lines += [f"{f'throughput at batch {b}':<36} {v:9.1f} images/s" for b, v in results["throughput_images_per_s"].items()]
    if results["cold_load"]:
        cold = results["cold_load"]
        runs = ", ".join(f"{seconds:.2f}" for seconds in cold["import_and_load_runs_s"])
        lines += [
            f"{'cold start: new process, total':<36} {cold['process_wall_s']:9.2f} s",
            f"{'cold start: import torch/petnet, load':<36} {cold['import_and_load_s']:9.2f} s (median of {runs})",
            f"{'cold start: peak memory':<36} {cold['peak_rss_mib']:9.0f} MiB",
        ]
    lines += [
        f"{'load again in a warm process':<36} {results['warm_load_s']:9.2f} s",
        f"{'peak memory of this benchmark':<36} {results['peak_rss_mib']:9.0f} MiB",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="petnet-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR), help="model folder or Hub repo id (default: bundled)")
    parser.add_argument("--compare", help="another model folder or repo id timed in turns with --model")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="what the network computes in")
    parser.add_argument("--compare-precision", choices=PRECISIONS, help="--compare's precision (default: --precision)")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="JPEG used for every run")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--runs", type=int, default=50, help="timed single-image runs")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--batch-runs", type=int, default=5, help="timed runs per batch size")
    parser.add_argument("--load-runs", type=int, default=3, help="fresh processes timed loading the model (0: none)")
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
