"""Measure PetNet on CPU, runtime against runtime: ``python -m petnet.bench [--threads 2] [--json bench.json]``.

Figures, not assertions (tests never time anything). For each runtime of ``--runtimes`` (default:
PyTorch in the precision ``load_model`` picks, ONNX Runtime float32 and int8; those not installed
are skipped), each timed in a process of its own, the runtimes one after the other for ``--rounds``
rounds, so that they share the machine's noise without sharing a process: in one process, PyTorch's
OpenMP threads keep spinning after each call and slowed the ONNX Runtime call after it by 3-8 ms
(int8 ``predict`` 22.5-23.0 ms alone, 26.1-31.2 ms right after PyTorch's; 23.5-24.6 ms with
``OMP_WAIT_POLICY=PASSIVE``, which slowed PyTorch to 81-86 ms):

- single-image latency end to end, as the demo serves a request: decode JPEG bytes, preprocess,
  the network, the closer look, decoding and the mask upsampled to the photo's size
  (``model.predict(jpeg_bytes)``), p50/p90 over ``--runs`` per round after ``--warmup`` runs; and
  the ratio of each p50 to the first runtime's, which the noise of a shared machine moves far less
  than either figure;
- the network's first look alone (``network.infer`` on the photo and its mirror image);
- a photo of two animals (two example photos side by side), which adds one pass over their crops;
- a phone-size photo: the photo enlarged to :data:`LARGE_PHOTO` and saved as a JPEG, as large as
  ``petnet.images.load_image`` reads photos: decoding, preprocessing and the photo-size mask grow
  with its pixels, the network does not;
- batch throughput of ``predict_batch`` on already preprocessed inputs (the median round);
- with ``--baseline-ref REF``, the same two photos end to end through the project as it was at git
  commit ``REF`` (a temporary worktree, its own bundled weights, its default runtime), in processes
  of its own taking turns with the others: the goals of the serving issue are ratios to the PyTorch
  path of its day, which this project's later work on the shared pipeline has since made faster too;
- the first prediction in a fresh process (``import petnet``, ``load_model``, one ``predict``:
  what a cold start costs a user, the median of ``--load-runs``) and that process's peak memory,
  with a few more predictions: a serving process's footprint;
- the size of the light install: the files of every distribution ``requirements.txt`` pulls in.

Close other heavy jobs first; on a shared machine the figures are only indicative.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
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
LARGE_PHOTO = (2048, 1536)
"""Width and height of the phone-size photo (``petnet.images.MAX_SIDE`` on its longer side)."""
PROJECT_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = PROJECT_ROOT / "requirements.txt"
_BASELINE_WORKER = """
import json, sys, time
photo, large, runs, warmup, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
import torch; torch.set_num_threads(threads)
import petnet
model = petnet.load_model(sys.argv[6])
seconds = {}
for figure, path in (("latency", photo), ("large_photo_latency", large)):
    data = open(path, "rb").read()
    for _ in range(warmup):
        model.predict(data)
    seconds[figure] = []
    for _ in range(runs):
        started = time.perf_counter(); model.predict(data); seconds[figure].append(time.perf_counter() - started)
print(json.dumps({"runtime": getattr(model, "runtime", "torch"), "seconds": seconds}))
"""
"""One round of the baseline's timings, run by the interpreter of today's install on the old project's code."""


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


def large_photo_jpeg(photo: Image.Image) -> bytes:
    """``photo`` enlarged to :data:`LARGE_PHOTO`, as JPEG bytes (quality 90, as cameras save)."""
    encoded = io.BytesIO()
    photo.resize(LARGE_PHOTO, Image.Resampling.BICUBIC).save(encoded, format="JPEG", quality=90)
    return encoded.getvalue()


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
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return {"process_wall_s": time.perf_counter() - started, **_json_of(result)}


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


def time_runtime(args: argparse.Namespace, name: str) -> dict:
    """One round for runtime ``name`` in this process: its load time, raw seconds per call of each
    timed figure, the throughputs, and what the two-animal photo is answered with."""
    if RUNTIMES[name]["runtime"] == "torch":
        import torch

        torch.set_num_threads(args.threads)
    jpeg = Path(args.image).read_bytes()
    started = time.perf_counter()
    model = load_model(args.model, threads=args.threads, **RUNTIMES[name])
    loaded = time.perf_counter() - started
    two, large = two_animal_photo(), large_photo_jpeg(load_image(jpeg))
    calls = {"latency": partial(model.predict, jpeg), "network": network_pass(model, jpeg),
             "two_animal_latency": partial(model.predict, two), "large_photo_latency": partial(model.predict, large)}  # fmt: skip
    return {
        "runtime": model.runtime,
        "warm_load_s": loaded,
        "image_size": model.config.image_size,
        "seconds": {figure: timings(call, args.runs, args.warmup).tolist() for figure, call in calls.items()},
        "throughput_images_per_s": {str(b): throughput(model, jpeg, b, args.batch_runs) for b in args.batch_sizes},
        "pets_found_side_by_side": len(model.predict(two).pets),
    }


def round_in_a_process(args: argparse.Namespace, name: str) -> dict:
    """:func:`time_runtime` in a new interpreter (``--worker``), so no other runtime's threads are about."""
    command = [sys.executable, "-m", "petnet.bench", "--worker", name, "--model", args.model, "--image", str(args.image),
               "--threads", str(args.threads), "--runs", str(args.runs), "--warmup", str(args.warmup),
               "--batch-runs", str(args.batch_runs), "--batch-sizes", *map(str, args.batch_sizes)]  # fmt: skip
    return _json_of(subprocess.run(command, capture_output=True, text=True, check=False))


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """A temporary, detached git worktree of the project at commit ``ref``."""
    with tempfile.TemporaryDirectory(prefix="petnet-baseline-") as parent:
        path = Path(parent) / "project"
        subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=PROJECT_ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=PROJECT_ROOT, check=False)
            subprocess.run(["git", "worktree", "prune"], cwd=PROJECT_ROOT, check=False)


def baseline_round(args: argparse.Namespace, tree: Path, large: Path) -> dict:
    """One round of :data:`_BASELINE_WORKER` on the project at ``tree``: its code first on the path."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", _BASELINE_WORKER, str(Path(args.image).resolve()), str(large), str(args.runs),
               str(args.warmup), str(args.threads), str(tree / "petnet" / "weights")]  # fmt: skip
    return _json_of(subprocess.run(command, capture_output=True, text=True, check=False, env=environment, cwd=tree))


def pooled_summaries(rounds: Sequence[dict]) -> dict[str, dict[str, float]]:
    """:func:`summary` of each timed figure over the seconds of all ``rounds`` of one runtime."""
    return {figure: summary(np.concatenate([r["seconds"][figure] for r in rounds])) for figure in rounds[0]["seconds"]}


def _json_of(result: subprocess.CompletedProcess) -> dict:
    """The JSON a timing process printed last, or its error output as the error."""
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, result.args[:4]))} ... failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict:
    photo = load_image(Path(args.image).read_bytes())
    names = available(args.runtimes, args.model)
    if not names:
        raise SystemExit(f"none of the runtimes {', '.join(args.runtimes)} can run here")
    rounds: dict[str, list[dict]] = {name: [] for name in names}
    baseline: list[dict] = []
    with ExitStack() as stack:
        if args.baseline_ref:
            tree = stack.enter_context(worktree(args.baseline_ref))
            large = tree / "large-photo.jpg"
            large.write_bytes(large_photo_jpeg(photo))
        for _ in range(args.rounds):
            if args.baseline_ref:
                baseline.append(baseline_round(args, tree, large))
            for name in names:
                rounds[name].append(round_in_a_process(args, name))
    results: dict = {
        "petnet_version": __version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "rounds": args.rounds,
        "model": display_source(args.model),
        "image": f"{Path(args.image).name} ({photo.width}x{photo.height})",
        "image_size": rounds[names[0]][0]["image_size"],
        "light_install_mib": install_size_mib(),
        "runtimes": {},
    }
    for name, measured in rounds.items():
        figures = results["runtimes"][name] = {
            "runtime": measured[0]["runtime"],
            "warm_load_s": float(np.median([r["warm_load_s"] for r in measured])),
            "pets_found_side_by_side": measured[0]["pets_found_side_by_side"],
        }
        figures.update(pooled_summaries(measured))
        figures["throughput_images_per_s"] = {
            size: float(np.median([r["throughput_images_per_s"][size] for r in measured])) for size in measured[0]["throughput_images_per_s"]
        }
    reference = results["runtimes"][names[0]]
    if baseline:
        results["baseline"] = {"ref": args.baseline_ref, "runtime": baseline[0]["runtime"], **pooled_summaries(baseline)}
    for name in names:
        figures = results["runtimes"][name]
        for figure, ratio in (("latency", "p50_ratio"), ("network", "network_p50_ratio"), ("large_photo_latency", "large_photo_p50_ratio")):
            figures[ratio] = figures[figure]["p50_ms"] / reference[figure]["p50_ms"]
        if baseline:
            for figure, ratio in (("latency", "p50_ratio_to_baseline"), ("large_photo_latency", "large_photo_p50_ratio_to_baseline")):
                figures[ratio] = figures[figure]["p50_ms"] / results["baseline"][figure]["p50_ms"]
        if args.load_runs > 0:
            figures["cold_start"] = cold_start(args.model, RUNTIMES[name], args.image, args.threads, args.load_runs)
    results["reference"] = names[0]
    return results


def table(results: dict) -> str:
    names = list(results["runtimes"])
    runtimes = [results["runtimes"][name] for name in names]
    width = 22

    def row(label: str, values: Sequence[str]) -> str:
        return f"{label:<40}" + "".join(f"{value:>{width}}" for value in values)

    lines = [
        (f"PetNet {results['petnet_version']} on CPU ({results['threads']} threads of {results['cpu_count']}), "
         f"input {results['image_size']} px, photo {results['image']}, {results['rounds']} rounds of a process per runtime"),
        row("", [figures["runtime"] for figures in runtimes]),
        row("single image end to end p50 (ms)", [f"{f['latency']['p50_ms']:.1f}" for f in runtimes]),
        row("single image end to end p90 (ms)", [f"{f['latency']['p90_ms']:.1f}" for f in runtimes]),
        row(f"  p50 ratio to {runtimes[0]['runtime']}", [f"{f['p50_ratio']:.2f}" for f in runtimes]),
        row("network's first look p50 (ms)", [f"{f['network']['p50_ms']:.1f}" for f in runtimes]),
        row(f"  ratio to {runtimes[0]['runtime']}", [f"{f['network_p50_ratio']:.2f}" for f in runtimes]),
        row("two animals side by side p50 (ms)",
            [f"{f['two_animal_latency']['p50_ms']:.1f} ({f['pets_found_side_by_side']} found)" for f in runtimes]),
        row(f"{LARGE_PHOTO[0]}x{LARGE_PHOTO[1]} JPEG end to end p50 (ms)", [f"{f['large_photo_latency']['p50_ms']:.1f}" for f in runtimes]),
        row(f"  ratio to {runtimes[0]['runtime']}", [f"{f['large_photo_p50_ratio']:.2f}" for f in runtimes]),
    ]  # fmt: skip
    if "baseline" in results:
        base = results["baseline"]
        lines += [
            (f"the project at {base['ref']} ({base['runtime']}): single image p50 {base['latency']['p50_ms']:.1f} ms, "
             f"{LARGE_PHOTO[0]}x{LARGE_PHOTO[1]} JPEG p50 {base['large_photo_latency']['p50_ms']:.1f} ms"),
            row("  single image p50 ratio to it", [f"{f['p50_ratio_to_baseline']:.2f}" for f in runtimes]),
            row(f"  {LARGE_PHOTO[0]}x{LARGE_PHOTO[1]} p50 ratio to it", [f"{f['large_photo_p50_ratio_to_baseline']:.2f}" for f in runtimes]),
        ]
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
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="petnet-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR), help="model folder or Hub repo id (default: bundled)")
    parser.add_argument("--runtimes", nargs="+", choices=list(RUNTIMES), default=list(DEFAULT_RUNTIMES),
                        help="what to compare; the first is the reference of the ratios")  # fmt: skip
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="JPEG used for every run")
    parser.add_argument("--threads", type=int, default=2, help="threads of each runtime (default 2)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each figure per runtime and round")
    parser.add_argument("--rounds", type=int, default=4, help="processes per runtime, the runtimes taking turns")
    parser.add_argument("--worker", choices=list(RUNTIMES), help=argparse.SUPPRESS)  # one round, printed as JSON
    parser.add_argument("--baseline-ref", help="also time the project at this git commit (a temporary worktree)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--batch-runs", type=int, default=5, help="timed runs per batch size")
    parser.add_argument("--load-runs", type=int, default=3, help="fresh processes timed to their first prediction (0: none)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.runs < 1:
        parser.error("--rounds and --runs must be at least 1")
    for photo in (args.image, *TWO_ANIMALS):
        if not photo.is_file():
            parser.error(f"no photo at {photo}: run from a PetNet checkout, or set PETNET_EXAMPLES_DIR (and --image)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.worker:
        measured = time_runtime(args, args.worker)
        print(json.dumps(measured))
        return measured
    results = run(args)
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
