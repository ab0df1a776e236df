"""The first look's network time: two views of the shipped network, plus a partner's backbone pass, or one view each (V2); and the partner's memory."""

import json
import os
import time
from pathlib import Path

import numpy as np

from petnet.config import PetNetConfig
from petnet.inference.onnx_network import OnnxNetwork


def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


cfgs = {
    p: PetNetConfig.from_dict(json.loads((Path(p) / "config.json").read_text()), p)
    for p in ["petnet/weights", "runs/scene-s4dec-centres/final"]
}
r0 = rss()
a = OnnxNetwork.from_directory(Path("petnet/weights"), cfgs["petnet/weights"], "int8", threads=2)
x = np.random.default_rng(0).standard_normal((1, 3, 240, 240)).astype(np.float32)
a.infer(x)
a.infer_classification(x)
r1 = rss()
b = OnnxNetwork.from_directory(
    Path("runs/scene-s4dec-centres/final"), cfgs["runs/scene-s4dec-centres/final"], "int8", threads=2
)
b.infer_classification(x)
b.infer_single_view(x)
r2 = rss()
print(f"rss: start {r0:.0f} MB, shipped loaded and run {r1:.0f}, + partner {r2:.0f} (+{r2 - r1:.0f} MB)")
t = {"two views (now)": [], "two views + partner backbone": [], "V2: one view each": []}
for _ in range(60):
    s = time.perf_counter()
    a.infer(x)
    t["two views (now)"].append(time.perf_counter() - s)
    s = time.perf_counter()
    a.infer(x)
    b.infer_classification(x)
    t["two views + partner backbone"].append(time.perf_counter() - s)
    s = time.perf_counter()
    a.infer_single_view(x)
    b.infer_single_view(x[..., ::-1].copy())
    t["V2: one view each"].append(time.perf_counter() - s)
base = np.median(t["two views (now)"])
for k, v in t.items():
    print(f"{k:32s} p50 {1000 * np.median(v):.1f} ms  ({np.median(v) / base:.2f}x)")
