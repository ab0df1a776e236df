"""petnet.bench and the benchmark scripts run and report every figure (timings are not asserted: benchmarks
print); the scripts' computations are checked on tiny inputs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import torch

from petnet.bench import main, table
from petnet.config import PetNetConfig
from petnet.model import PetNet
from petnet.paths import PROJECT_ROOT


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


def _benchmark_script(name: str):
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batchnorm_statistics_become_the_mean_over_the_batches_and_spare_the_centre_head():
    accumulate_statistics = _benchmark_script("batchnorm_statistics").accumulate_statistics
    model = PetNet(PetNetConfig(image_size=64, center_head=True))
    centre_before = {k: v.clone() for k, v in model.center_head.state_dict().items()}
    batches = [torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * scale for seed, scale in ((0, 1), (1, 3))]
    with torch.no_grad():
        expected = torch.stack([model.encoder.conv_stem(images).mean(dim=(0, 2, 3)) for images in batches]).mean(dim=0)
    result = accumulate_statistics(model, [{"image": images} for images in batches])
    assert torch.allclose(result.encoder.bn1.running_mean, expected, atol=1e-5)
    assert not any(module.training for module in result.modules())
    assert all(torch.equal(value, centre_before[key]) for key, value in result.center_head.state_dict().items())


def test_mask_class_biases_shift_the_argmax_only_where_the_bias_decides():
    scores = _benchmark_script("mask_class_biases").scores
    # one row of three pixels, truly pet, background and boundary; the boundary pixel's background logit just ahead
    logits = [torch.tensor([[[3.0, 0.0, 0.0]], [[0.0, 3.0, 0.6]], [[0.0, 0.0, 0.5]]])]
    trimap = [np.array([[0, 1, 2]], dtype=np.uint8)]
    unbiased, biased = scores(logits, trimap, torch.zeros(3)), scores(logits, trimap, torch.tensor([0.0, 0.0, 0.2]))
    assert unbiased[1] == 0.0 and biased == (1.0, 1.0, 1.0)
