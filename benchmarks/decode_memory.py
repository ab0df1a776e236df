"""What reading a large photo costs in memory, and what reading a large JPEG reduced changes.

    python benchmarks/decode_memory.py
    python benchmarks/decode_memory.py --demo 20 --fidelity 3

Writes 64 MP photos (8000x8000 baseline and progressive JPEGs, and RGB and RGBA PNGs, which have no
reduced decoding) to a temporary folder and reads each with :func:`petnet.images.load_image` in a
fresh process, printing its peak resident memory; then four threads reading eight RGBA PNGs with large decodes one at a
time (:data:`petnet.images.FULL_SIZE_DECODE_PIXELS`, as served) and side by side. ``--demo N`` starts
``python app.py`` and sends it N of those PNGs at once, printing the server's peak memory.
``--fidelity K`` enlarges every K-th validation photo to a 6000x4500 JPEG and predicts it read at
the 2048 px working size both ways: decoded at half size first (as served) and decoded whole.
Validation only: the figures choose nothing on test.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from petnet.images import MAX_SIDE

READ = """
import sys
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from petnet import images
path, threads, reads, threshold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
images.FULL_SIZE_DECODE_PIXELS = threshold
with ThreadPoolExecutor(threads) as pool:
    list(pool.map(images.load_image, [path] * reads))
print(next(int(line.split()[1]) // 1024 for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM")))
"""
"""A reader's peak, VmHWM: ``ru_maxrss`` would keep the peak of the process that started it."""


def write_photos(folder: Path, side: int = 8000) -> dict[str, Path]:
    """Smooth 64 MP pictures (small files, within the demo's 10 MB upload limit)."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    rgb = np.stack([np.broadcast_to(ramp, (side, side)), np.broadcast_to(ramp[:, None], (side, side)), np.full((side, side), 90.0)], -1).astype(np.uint8)
    paths = {"JPEG": folder / "large.jpg", "JPEG (progressive)": folder / "large-progressive.jpg",
             "PNG (RGB)": folder / "large.png", "PNG (RGBA)": folder / "large-rgba.png"}  # fmt: skip
    Image.fromarray(rgb).save(paths["JPEG"], quality=85)
    Image.fromarray(rgb).save(paths["JPEG (progressive)"], quality=85, progressive=True)
    Image.fromarray(rgb).save(paths["PNG (RGB)"])
    Image.fromarray(np.dstack([rgb, np.full((side, side), 255, np.uint8)])).save(paths["PNG (RGBA)"])
    return paths


def peak_mb(path: Path, threads: int = 1, reads: int = 1, threshold: int | None = None) -> int:
    """Peak resident memory (MB) of a fresh process reading ``path`` ``reads`` times in ``threads`` threads."""
    from petnet.images import FULL_SIZE_DECODE_PIXELS

    limit = FULL_SIZE_DECODE_PIXELS if threshold is None else threshold
    command = [sys.executable, "-c", READ, str(path), str(threads), str(reads), str(limit)]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def demo_peak(photo: Path, callers: int, port: int = 7889) -> None:
    """Start ``python app.py``, send ``callers`` uploads of ``photo`` at once, print its peak memory."""
    import httpx
    from gradio_client import Client, handle_file

    root = Path(__file__).resolve().parents[1]
    # as many visitors' uploads as callers, sent from one client: the cap on one visitor's calls is off
    environ = {**os.environ, "GRADIO_SERVER_PORT": str(port), "PETNET_CALLS_PER_VISITOR": "0"}
    server = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(1)
        client = Client(url, verbose=False)
        before = _status_mb(server.pid, "VmRSS")
        start = time.perf_counter()
        with ThreadPoolExecutor(callers) as pool:
            answers = list(pool.map(lambda _: client.predict(handle_file(str(photo)), 0.5, api_name="/predict")[2], range(callers)))
        seconds = time.perf_counter() - start
        answered = sum("has_pet" in answer for answer in answers)
        print(f"demo: {callers} uploads of {photo.name} at once, {answered} answered in {seconds:.1f} s; "
              f"server {before} MB before, peak {_status_mb(server.pid, 'VmHWM')} MB")  # fmt: skip
    finally:
        server.terminate()
        server.wait()


def _status_mb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) // 1024
    raise KeyError(field)


def fidelity(every: int, size: tuple[int, int] = (6000, 4500)) -> None:
    """Predict enlarged validation photos read reduced (as served) and decoded whole, and compare."""
    from petnet.config import TrainConfig
    from petnet.data.datasets import split_records
    from petnet.hub import load_model
    from petnet.images import load_image
    from petnet.labels import BREEDS
    from petnet.paths import OXFORD_PET_ROOT

    model = load_model()
    split = TrainConfig()
    records = split_records(OXFORD_PET_ROOT, "val", split.val_fraction, split.split_seed)[::every]
    same_breed, score_gaps, same_mask, right = 0, [], [], [0, 0]
    for record in records:
        buffer = io.BytesIO()
        Image.open(record.image_path).convert("RGB").resize(size, Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=90)
        served = load_image(buffer.getvalue())
        whole = Image.open(io.BytesIO(buffer.getvalue()))
        whole.load()  # decoded whole: no reduced decoding is asked for once the data is read
        whole.thumbnail((MAX_SIDE, MAX_SIDE))
        predictions = [model.predict(photo) for photo in (served, whole.convert("RGB"))]
        same_breed += predictions[0].breed[0] == predictions[1].breed[0]
        right = [r + (p.breed[0] == BREEDS[record.breed_index].name) for r, p in zip(right, predictions, strict=True)]
        score_gaps.append(abs(predictions[0].pet_score - predictions[1].pet_score))
        same_mask.append(float((predictions[0].full_mask == predictions[1].full_mask).mean()))
    print(f"{len(records)} validation photos as {size[0]}x{size[1]} JPEGs, read reduced (as served) against decoded whole:")
    print(f"  top breed the same for {same_breed}; breeds right {right[0]} and {right[1]}; "
          f"pet score at most {max(score_gaps):.4f} apart; mask pixels the same {100 * np.mean(same_mask):.2f}%")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=int, default=0, metavar="N", help="also send N large PNGs to app.py at once")
    parser.add_argument("--fidelity", type=int, default=0, metavar="K", help="also compare predictions on every K-th validation photo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_photos(Path(folder))
        print(f"peak resident memory reading one 8000x8000 photo at most {MAX_SIDE} px (fresh process each):")
        for name, path in paths.items():
            print(f"  {name}: {peak_mb(path)} MB")
        rgba = paths["PNG (RGBA)"]
        print("four threads reading eight RGBA PNGs:")
        print(f"  large decodes one at a time (as served): {peak_mb(rgba, threads=4, reads=8)} MB")
        print(f"  side by side: {peak_mb(rgba, threads=4, reads=8, threshold=10**12)} MB")
        if args.demo:
            demo_peak(rgba, args.demo)
    if args.fidelity:
        fidelity(args.fidelity)


if __name__ == "__main__":
    main()
