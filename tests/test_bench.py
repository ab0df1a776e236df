"""petnet.bench and the benchmark scripts run and report every figure (timings are not asserted:
benchmarks print)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import PROJECT_ROOT

from petnet.bench import main, table
from petnet.config import PetNetConfig
from petnet.models.network import PetNet


def test_bench_writes_all_figures(tmp_path, real_image_path):
    model_dir = tmp_path / "model"
    PetNet(PetNetConfig(image_size=64)).save_pretrained(model_dir)
    out = tmp_path / "bench.json"
    results = main(["--model", str(model_dir), "--image", str(real_image_path), "--runs", "3", "--warmup", "1",
                    "--batch-sizes", "2", "--batch-runs", "1", "--threads", "1", "--load-runs", "2", "--json", str(out)])  # fmt: skip
    assert json.loads(out.read_text()) == results
    assert results["image_size"] == 64 and results["threads"] == 1
    assert 0 < results["latency"]["p50_ms"] <= results["latency"]["p90_ms"]
    assert results["throughput_images_per_s"]["2"] > 0
    cold = results["cold_load"]
    assert 0 < cold["import_and_load_s"] < cold["process_wall_s"] and cold["peak_rss_mib"] > 0
    assert len(cold["import_and_load_runs_s"]) == 2
    assert "throughput at batch 2" in table(results) and "cold start" in table(results)


def test_bench_compares_two_models_in_turns(tmp_path, real_image_path):
    for name, size in (("new", 64), ("old", 32)):
        PetNet(PetNetConfig(image_size=size)).save_pretrained(tmp_path / name)
    results = main(["--model", str(tmp_path / "new"), "--compare", str(tmp_path / "old"), "--image", str(real_image_path),
                    "--runs", "2", "--warmup", "0", "--batch-sizes", "1", "--batch-runs", "1", "--threads", "1",
                    "--load-runs", "0"])  # fmt: skip
    compared = results["compared"]
    assert compared["latency"]["runs"] == results["latency"]["runs"] == 2
    assert compared["p50_ratio"] == results["latency"]["p50_ms"] / compared["latency"]["p50_ms"]
    assert "p50 ratio" in table(results) and "two animals side by side" in table(results)


def test_load_breakdown_times_every_import_stage_and_the_load(tmp_path):
    model_dir = tmp_path / "model"
    PetNet(PetNetConfig(image_size=64)).save_pretrained(model_dir)
    script = PROJECT_ROOT / "benchmarks" / "load_breakdown.py"
    result = subprocess.run([sys.executable, str(script), "--runs", "1", "--model", str(model_dir)],
                            capture_output=True, text=True, check=True)  # fmt: skip
    stages = [line.split()[0] for line in result.stdout.splitlines()]
    assert stages == ["torch", "torch._dynamo", "torchvision", "timm", "petnet.hub", "load_model", "total"]
