"""Load-test a running PetNet demo with parallel gradio_client callers; prints latency percentiles.

Start the demo first (``python app.py``), then e.g.::

    python benchmarks/load_test.py --clients 20 --requests 100 --url http://127.0.0.1:7860

Each client is one thread with its own ``gradio_client.Client`` sending the example photos in turn
through the ``/predict`` endpoint, as a real visitor's browser would, until ``--requests`` calls
are done or ``--max-seconds`` have passed. Latency includes upload, queueing and download.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gradio_client import Client, handle_file

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "examples"


@dataclass
class Tally:
    """Latencies of successful calls and messages of failed ones, shared by the client threads."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="address of the running demo")
    parser.add_argument("--clients", type=int, default=20, help="callers running in parallel")
    parser.add_argument("--requests", type=int, default=100, help="total predictions to request")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop starting new calls after this")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be at least 1")
    return args


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def run_client(
    url: str, tickets: itertools.count, total: int, deadline: float, images: list[Path], tally: Tally
) -> None:
    """One visitor: take ticket numbers until all requests are handed out or time is up."""
    try:
        client = Client(url, verbose=False, analytics_enabled=False)
    except Exception as error:  # noqa: BLE001 - a refused connection is a result to report, not a crash
        with tally.lock:
            tally.errors.append(f"connect: {type(error).__name__}: {error}")
        return
    for ticket in tickets:
        if ticket >= total or time.monotonic() > deadline:
            return
        image = images[ticket % len(images)]
        start = time.perf_counter()
        try:
            species = client.predict(handle_file(str(image)), 0.5, api_name="/predict")[1]
            if not species:
                raise ValueError("empty species")
        except Exception as error:  # noqa: BLE001 - every failed call is counted, whatever the cause
            with tally.lock:
                tally.errors.append(f"{image.name}: {type(error).__name__}: {error}")
            continue
        with tally.lock:
            tally.latencies.append(time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    images = sorted(EXAMPLES_DIR.glob("*.jpg"))
    tally = Tally()
    tickets = itertools.count()  # next() on itertools.count is atomic under the GIL
    started = time.perf_counter()
    deadline = time.monotonic() + args.max_seconds
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        for _ in range(args.clients):
            pool.submit(run_client, args.url, tickets, args.requests, deadline, images, tally)
    elapsed = time.perf_counter() - started
    done = len(tally.latencies)
    print(f"url {args.url}  clients {args.clients}  requested {args.requests}  wall {elapsed:.1f} s")
    print(f"ok {done}  errors {len(tally.errors)}  throughput {done / elapsed:.2f} req/s")
    if done:
        print(
            "latency s: "
            + "  ".join(f"p{q} {percentile(tally.latencies, q):.2f}" for q in (50, 90, 99))
            + f"  mean {statistics.fmean(tally.latencies):.2f}  max {max(tally.latencies):.2f}"
        )
    for message in tally.errors[:10]:
        print("error:", message)
    return 1 if tally.errors or done < args.requests else 0


if __name__ == "__main__":
    raise SystemExit(main())
