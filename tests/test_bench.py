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


def test_bench_compares_the_runtimes_in_one_run(tmp_path, real_image_path, tiny_onnx_model):
    out = tmp_path / "bench.json"
    results = main(["--model", str(tiny_onnx_model), "--image", str(real_image_path), "--runs", "2", "--rounds", "2", "--warmup", "1",
                    "--batch-sizes", "2", "--batch-runs", "1", "--threads", "1", "--load-runs", "1", "--json", str(out)])  # fmt: skip
    assert json.loads(out.read_text()) == results
    assert list(results["runtimes"]) == ["torch", "onnx-float32", "onnx-int8"] and results["reference"] == "torch"
    assert results["image_size"] == 64 and results["threads"] == 1 and results["light_install_mib"] > 0
    assert results["rounds"] == 2 and results["runtimes"]["onnx-int8"]["latency"]["runs"] == 4  # 2 processes x 2 runs
    for name, figures in results["runtimes"].items():
        assert figures["runtime"].startswith("torch" if name == "torch" else "onnxruntime")
        assert 0 < figures["latency"]["p50_ms"] <= figures["latency"]["p90_ms"] and figures["network"]["p50_ms"] > 0
        assert figures["throughput_images_per_s"]["2"] > 0
        cold = figures["cold_start"]
        assert 0 < cold["first_prediction_s"] < cold["process_wall_s"] and cold["peak_rss_mib"] > 0
        assert cold["imports_torch"] == (name == "torch"), "ONNX Runtime predicts without importing torch"
    assert results["runtimes"]["torch"]["p50_ratio"] == 1.0
    text = table(results)
    assert "onnxruntime int8" in text and "first prediction" in text and "light install" in text


def test_runtimes_that_cannot_run_are_left_out(tmp_path, real_image_path):
    model_dir = tmp_path / "model"
    PetNet(PetNetConfig(image_size=64)).save_pretrained(model_dir)  # no ONNX graphs
    results = main(["--model", str(model_dir), "--image", str(real_image_path), "--runs", "1", "--rounds", "1", "--warmup", "0",
                    "--batch-sizes", "1", "--batch-runs", "1", "--threads", "1", "--load-runs", "0"])  # fmt: skip
    assert list(results["runtimes"]) == ["torch"] and "first prediction" not in table(results)


def test_load_breakdown_times_every_import_stage_and_the_load(tmp_path):
    model_dir = tmp_path / "model"
    PetNet(PetNetConfig(image_size=64)).save_pretrained(model_dir)
    script = PROJECT_ROOT / "benchmarks" / "load_breakdown.py"
    result = subprocess.run([sys.executable, str(script), "--runs", "1", "--model", str(model_dir)],
                            capture_output=True, text=True, check=True)  # fmt: skip
    stages = [line.split()[0] for line in result.stdout.splitlines()]
    assert stages == ["torch", "torch._dynamo", "torchvision", "timm", "petnet.hub", "load_model", "total"]


def test_bench_times_the_project_at_a_git_commit_as_a_baseline(tmp_path, real_image_path, tiny_onnx_model):
    results = main(["--model", str(tiny_onnx_model), "--image", str(real_image_path), "--runtimes", "onnx-int8",
                    "--runs", "1", "--rounds", "1", "--warmup", "0", "--batch-sizes", "1", "--batch-runs", "1",
                    "--threads", "1", "--load-runs", "0", "--baseline-ref", "HEAD"])  # fmt: skip
    baseline = results["baseline"]
    assert baseline["ref"] == "HEAD" and baseline["latency"]["p50_ms"] > 0 and baseline["large_photo_latency"]["runs"] == 1
    figures = results["runtimes"]["onnx-int8"]
    assert figures["p50_ratio_to_baseline"] == figures["latency"]["p50_ms"] / baseline["latency"]["p50_ms"]
    assert "the project at HEAD" in table(results)
