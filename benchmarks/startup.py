"""Time the demo's start-up: launch ``python app.py`` and poll until the page is served.

    python benchmarks/startup.py --runs 3

Each run starts a fresh process on a free loopback port (offline, so the Hub lookup cannot add
network time) and measures from process start to the first ``200`` on ``/``; the run's output is
shown if it fails.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent



def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def time_start(timeout: float) -> float:
    """Seconds from launching ``app.py`` until ``/`` answers 200."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"app.py did not serve a page within {timeout:.0f} s")
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one start")
    args = parser.parse_args(argv)
    seconds = [time_start(args.timeout) for _ in range(args.runs)]
    print("start-up to a served page: " + ", ".join(f"{s:.2f} s" for s in seconds)
          + f" (median {statistics.median(seconds):.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
