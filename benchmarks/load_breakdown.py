"""Where a fresh process's model load goes: each import in the order ``load_model`` needs them, then the load.

    python benchmarks/load_breakdown.py --runs 3

``python -m petnet.bench`` times the whole cold start; this splits it. ``torch._dynamo`` is timed on
its own because nothing in PetNet uses it: torchvision imports it (``torchvision.ops.roi_align``) and
timm imports torchvision, so it is paid on every start. Each run is a new interpreter; the figures
are medians over the runs, in seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from petnet.paths import BUNDLED_MODEL_DIR

STAGES = ["torch", "torch._dynamo", "torchvision", "timm", "petnet.hub"]
"""Imports in load order: each one's time excludes the modules the stages before it already loaded."""

_CHILD = """
import importlib, json, sys, time
times = {}
for name in sys.argv[2:]:
    started = time.perf_counter()
    importlib.import_module(name)
    times[name] = time.perf_counter() - started
started = time.perf_counter()
importlib.import_module("petnet.hub").load_model(sys.argv[1])
times["load_model"] = time.perf_counter() - started
print(json.dumps(times))
"""


def one_process(model: str) -> dict[str, float]:
    """Seconds per stage in one new interpreter."""
    result = subprocess.run([sys.executable, "-c", _CHILD, model, *STAGES], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR), help="model folder to load")
    args = parser.parse_args(argv)
    runs = [one_process(args.model) for _ in range(args.runs)]
    for stage in [*STAGES, "load_model"]:
        print(f"{stage:<16} {statistics.median(run[stage] for run in runs):6.2f} s")
    print(f"{'total':<16} {statistics.median(sum(run.values()) for run in runs):6.2f} s (median of {args.runs} processes)")


if __name__ == "__main__":
    main()
