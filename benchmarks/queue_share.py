"""One stranger floods the demo's queue while another visitor uses it; prints what each got.

Starts ``python app.py`` on a free loopback port twice, without the cap on one visitor's calls
(``PETNET_CALLS_PER_VISITOR=0``) and with the default, and for ``--seconds`` has

- a stranger post calls through the REST API (``/gradio_api/call/predict``) at ``--rate`` a second
  and never read their answers, as a script would that wants the server to itself, and
- a visitor send one call at a time, as the page does, and wait for each answer,

each naming a bundled example by its path, with its own address in ``X-Forwarded-For`` (which the
server believes from its loopback proxy, as it believes a Space's proxy). It prints, per server,
the visitor's calls answered and refused and their latency, and the stranger's calls taken and
refused::

    python benchmarks/queue_share.py --seconds 30 --rate 60
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter

import httpx
from load_test import EXAMPLES_DIR, find_photos, percentile, read_answer, served_demo

STRANGER, VISITOR = "203.0.113.7", "198.51.100.2"  # documentation addresses (RFC 5737)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the stranger floods the queue")
    parser.add_argument("--rate", type=float, default=60.0, help="the stranger's calls a second")
    return parser.parse_args(argv)


async def stranger(client: httpx.AsyncClient, photo: str, rate: float, until: float, statuses: Counter[str]) -> None:
    """Post calls at ``rate`` a second until ``until``, answers unread."""

    async def post() -> None:
        try:
            answer = await client.post("/gradio_api/call/predict", json={"data": [{"path": photo}, 0.5]},
                                       headers={"x-forwarded-for": STRANGER})  # fmt: skip
            statuses[f"HTTP {answer.status_code}"] += 1
        except httpx.HTTPError as error:
            statuses[type(error).__name__] += 1

    tasks = []
    while time.monotonic() < until:
        tasks.append(asyncio.create_task(post()))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)


async def visitor(client: httpx.AsyncClient, photo: str, until: float) -> tuple[list[float], Counter[str]]:
    """One call at a time until ``until``: the latency of each answered call and what the others got."""
    latencies: list[float] = []
    refused: Counter[str] = Counter()
    headers = {"x-forwarded-for": VISITOR}
    while time.monotonic() < until:
        sent = time.perf_counter()
        posted = await client.post("/gradio_api/call/predict", json={"data": [{"path": photo}, 0.5]}, headers=headers)
        if posted.status_code != 200:
            refused[f"HTTP {posted.status_code}"] += 1
            await asyncio.sleep(0.5)  # a person tries again a little later
            continue
        event, _ = await read_answer(client, posted.json()["event_id"], headers)
        if event == "complete":
            latencies.append(time.perf_counter() - sent)
        else:
            refused[f"event {event or 'none'}"] += 1
    return latencies, refused


async def measure(url: str, seconds: float, rate: float) -> str:
    """The stranger and the visitor on the demo at ``url`` for ``seconds``, each with its own
    connections; one line of what each got."""
    photos = [str(photo) for photo in find_photos(EXAMPLES_DIR)]
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=100)
    async with (httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as flooding,
                httpx.AsyncClient(base_url=url, timeout=120) as browsing):  # fmt: skip
        until = time.monotonic() + seconds
        statuses: Counter[str] = Counter()
        flood = asyncio.create_task(stranger(flooding, photos[0], rate, until, statuses))
        await asyncio.sleep(2)  # the queue fills first
        latencies, refused = await visitor(browsing, photos[1], until)
        await flood
    served = (f"p50 {statistics.median(latencies):.2f} s, p95 {percentile(latencies, 95):.2f} s"
              if latencies else "none answered")  # fmt: skip
    return (f"visitor: {len(latencies)} answered ({served}), refused {dict(refused) or 0}; "
            f"stranger: {dict(sorted(statuses.items()))}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for label, settings in (("no cap", {"PETNET_CALLS_PER_VISITOR": "0"}), ("the default cap", {})):
        with served_demo(None, settings=settings) as (url, _):
            print(f"{label}: {asyncio.run(measure(url, args.seconds, args.rate))}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
