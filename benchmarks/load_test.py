"""Load-test the PetNet demo with parallel callers; prints throughput and latency percentiles.

Against a running demo (``python app.py``)::

    python benchmarks/load_test.py --clients 20 --requests 100 --url http://127.0.0.1:7860

or, to compare servers in one run on the same machine, let it start ``app.py`` itself on free
ports: one photo per network pass (``PETNET_MAX_BATCH_SIZE=1``), batched (the default), and with
``--baseline-ref REF`` the demo as it was at git commit ``REF`` (from a temporary worktree), loaded
in turn for ``--rounds`` rounds::

    python benchmarks/load_test.py --clients 20 --requests 100 --compare --baseline-ref 76d6e77

Each caller sends the photos of ``--photos`` (default: the six examples, which repeat and so hit
the demo's output cache; pass a folder of varied photos, subfolders included, for a fair figure) in
turn through the ``/predict`` endpoint until ``--requests``
calls are done or ``--max-seconds`` have passed; all connect before the clock starts, and none
downloads the answer's files. The server's resident memory is sampled while it works (``--server-pid``
for a running demo; the servers it starts itself with ``--compare``): after the first tenth of the
calls (warm-up), at the end and at its peak, which tells whether it stays flat. Latency includes upload, queueing and the answer. ``--client http``
(the default) is what a browser does, in one thread: upload the photo, start the call, read its
event stream (Gradio's HTTP API, ``/gradio_api/upload`` and ``/gradio_api/call/predict``), the
callers as asyncio tasks sharing one ``httpx`` connection pool. ``--client gradio`` gives each
caller a thread with its own ``gradio_client.Client``, many times the client CPU per call (the
docs/serving.md gives the figures): on a small machine the load generator then takes a
good part of the CPU the servers compete for, and a comparison measures the client as much as the
server. Each caller is a visitor of its own, its address in ``X-Forwarded-For``, which a demo
believes from loopback or a private network (``app.demo.TRUSTED_PROXIES``): a demo reached
otherwise sees one visitor, whose share of the queue refuses calls past 8; start it with
``PETNET_CALLS_PER_VISITOR=0``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import mimetypes
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from gradio_client import Client, handle_file

from petnet.bench import worktree
from petnet.images import IMAGE_SUFFIXES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = PROJECT_ROOT / "assets" / "examples"


@dataclass
class Tally:
    """Latencies of successful calls and messages of failed ones, shared by the client threads."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    elapsed: float = 0.0
    max_seconds: float = math.inf
    """No call starts later than this after the start."""
    rss: list[float] = field(default_factory=list)
    """The server's resident memory (MB), sampled every half second while it is loaded."""

    def add(self, other: Tally) -> None:
        """Count ``other``'s calls and wall time as part of this tally."""
        self.latencies += other.latencies
        self.errors += other.errors
        self.elapsed += other.elapsed
        self.rss += other.rss

    @property
    def throughput(self) -> float:
        """Successful requests per second of wall time."""
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="address of the running demo")
    parser.add_argument("--photos", type=Path, default=EXAMPLES_DIR, help="folder of photos to send (subfolders too)")
    parser.add_argument("--server-pid", type=int, help="pid of the running demo, to sample its memory")
    parser.add_argument("--clients", type=int, default=20, help="callers running in parallel")
    parser.add_argument("--requests", type=int, default=100, help="total predictions to request")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop starting new calls after this")
    parser.add_argument("--client", choices=("http", "gradio"), default="http",
                        help="http: asyncio callers on Gradio's HTTP API in one thread; gradio: a gradio_client.Client thread per caller")  # fmt: skip
    parser.add_argument(
        "--compare",
        action="store_true",
        help="start app.py unbatched (PETNET_MAX_BATCH_SIZE=1) and batched (and --baseline-ref), load them in turn, print each",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="with --compare: the batched server's batch size")
    parser.add_argument("--baseline-ref", help="with --compare: also load-test the demo at this git commit, first")
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: rounds over the servers in turn")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1 or args.rounds < 1:
        parser.error("--clients, --requests and --rounds must be at least 1")
    return args


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def run_client(
    url: str, tickets: itertools.count, total: int, start: threading.Barrier, images: list[Path], tally: Tally,
    address: str,
) -> None:  # fmt: skip
    """One visitor (from ``address``, :func:`caller_address`): connect, wait for the start, take
    ticket numbers until all requests are handed out or time is up."""
    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False, headers={"x-forwarded-for": address})
    except Exception as error:  # noqa: BLE001 - a refused connection is a result to report, not a crash
        with tally.lock:
            tally.errors.append(f"connect: {type(error).__name__}: {error}")
        start.wait()
        return
    start.wait()
    deadline = time.monotonic() + tally.max_seconds
    for ticket in tickets:
        if ticket >= total or time.monotonic() > deadline:
            return
        image = images[ticket % len(images)]
        sent = time.perf_counter()
        try:
            _check(client.predict(handle_file(str(image)), 0.5, api_name="/predict"))
        except Exception as error:  # noqa: BLE001 - every failed call is counted, whatever the cause
            with tally.lock:
                tally.errors.append(f"{image.name}: {type(error).__name__}: {error}")
            continue
        with tally.lock:
            tally.latencies.append(time.perf_counter() - sent)


def _check(answer: list) -> None:
    """Raise unless ``answer`` (the endpoint's outputs) holds a prediction."""
    if not answer[0] or (isinstance(answer[2], dict) and "error" in answer[2]):
        raise ValueError(f"no prediction in the answer: {answer!r}")


def find_photos(folder: Path) -> list[Path]:
    """The image files (by suffix) in ``folder`` and its subfolders, sorted."""
    photos = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise SystemExit(f"No photos in {folder}.")
    return photos


def resident_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")


@contextmanager
def sampling_rss(pid: int | None, tally: Tally, every: float = 0.5) -> Iterator[None]:
    """Append the resident memory of ``pid`` to ``tally.rss`` every ``every`` seconds meanwhile."""
    if pid is None:
        yield
        return
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every):
            tally.rss.append(resident_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()
        tally.rss.append(resident_mb(pid))


def load(
    url: str, clients: int, requests: int, max_seconds: float, client: str = "http",
    photos: Sequence[Path] = (), server_pid: int | None = None,
) -> Tally:  # fmt: skip
    """Run ``clients`` callers against ``url`` until ``requests`` calls are done or time is up,
    sending ``photos`` in turn (default: the examples); samples the memory of ``server_pid``."""
    images = list(photos) or find_photos(EXAMPLES_DIR)
    if client == "http":
        tally = Tally(max_seconds=max_seconds)
        with sampling_rss(server_pid, tally):
            asyncio.run(_load_http(url, clients, requests, images, tally))
        return tally
    tally = Tally(max_seconds=max_seconds)
    tickets = itertools.count()  # next() on itertools.count is atomic under the GIL
    start = threading.Barrier(clients + 1)
    with ThreadPoolExecutor(max_workers=clients) as pool, sampling_rss(server_pid, tally):
        for number in range(clients):
            pool.submit(run_client, url, tickets, requests, start, images, tally, caller_address(number))
        start.wait()  # every client has connected (or failed to)
        started = time.perf_counter()
    tally.elapsed = time.perf_counter() - started
    return tally


async def _load_http(url: str, clients: int, requests: int, images: list[Path], tally: Tally) -> None:
    max_seconds = tally.max_seconds
    photos = [(image.name, image.read_bytes()) for image in images]
    tickets = itertools.count()
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)
    async with httpx.AsyncClient(base_url=url, timeout=max_seconds + 60, limits=limits) as session:
        (await session.get("/config")).raise_for_status()  # the server answers before the clock starts
        started = time.perf_counter()
        deadline = time.monotonic() + max_seconds
        callers = (_http_caller(session, tickets, requests, deadline, photos, tally, caller_address(number)) for number in range(clients))
        await asyncio.gather(*callers)
    tally.elapsed = time.perf_counter() - started


async def _http_caller(
    session: httpx.AsyncClient, tickets: itertools.count, total: int, deadline: float,
    photos: list[tuple[str, bytes]], tally: Tally, address: str,
) -> None:  # fmt: skip
    """One visitor (from ``address``, :func:`caller_address`) as a browser calls the endpoint:
    upload, start the call, read its event stream."""
    headers = {"x-forwarded-for": address}
    for ticket in tickets:
        if ticket >= total or time.monotonic() > deadline:
            return
        name, content = photos[ticket % len(photos)]
        sent = time.perf_counter()
        try:
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            upload = await session.post("/gradio_api/upload", files={"files": (name, content, kind)}, headers=headers)
            photo = {"path": upload.raise_for_status().json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}
            call = await session.post("/gradio_api/call/predict", json={"data": [photo, 0.5]}, headers=headers)
            event, data = await read_answer(session, call.raise_for_status().json()["event_id"], headers)
            if event != "complete":
                raise ValueError(f"{event}: {data}")
            _check(json.loads(data))
        except Exception as error:  # noqa: BLE001 - every failed call is counted, whatever the cause
            tally.errors.append(f"{name}: {type(error).__name__}: {error}")
            continue
        tally.latencies.append(time.perf_counter() - sent)


async def read_answer(session: httpx.AsyncClient, event_id: str, headers: dict[str, str]) -> tuple[str | None, str | None]:
    """The end of a ``/predict`` call's event stream, as a browser reads it: its last event
    (``complete`` or ``error``, None if the stream ended without one) and that event's data."""
    event = data = None
    async with session.stream("GET", f"/gradio_api/call/predict/{event_id}", headers=headers) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = line.removeprefix("data:").strip()
                break
    return event, data


def summary(tally: Tally) -> str:
    """Throughput and latency lines of one run."""
    done = len(tally.latencies)
    lines = [
        f"ok {done}  errors {len(tally.errors)}  wall {tally.elapsed:.1f} s  throughput {tally.throughput:.2f} req/s"
    ]
    if done:
        lines.append(
            "latency s: "
            + "  ".join(f"p{q} {percentile(tally.latencies, q):.2f}" for q in (50, 90, 95, 99))
            + f"  mean {statistics.fmean(tally.latencies):.2f}  max {max(tally.latencies):.2f}"
        )
    if tally.rss:
        warm = tally.rss[min(len(tally.rss) - 1, len(tally.rss) // 10)]
        lines.append(f"server RSS MB: after warm-up {warm:.0f}  end {tally.rss[-1]:.0f}  peak {max(tally.rss):.0f}")
    lines += [f"error: {message}" for message in tally.errors[:10]]
    return "\n".join(lines)


def caller_address(number: int) -> str:
    """Caller ``number``'s address, which it sends as the loopback proxy's ``X-Forwarded-For``: each
    caller (up to 250) is a visitor of its own to the demo's share of the queue per visitor
    (documentation addresses, RFC 5737)."""
    return f"198.51.100.{1 + number % 250}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served_demo(
    max_batch_size: int | None, root: Path = PROJECT_ROOT, timeout: float = 180.0, settings: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """``python app.py`` of the project at ``root`` on a free loopback port with the given batch
    size (None = the default) and other ``PETNET_*`` settings; yields its address and process id."""
    port = _free_port()
    environ = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), **(settings or {})}
    environ.pop("PETNET_MAX_BATCH_SIZE", None)
    if max_batch_size is not None:
        environ["PETNET_MAX_BATCH_SIZE"] = str(max_batch_size)
    server = subprocess.Popen(
        [sys.executable, "app.py"], cwd=root, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"app.py did not serve {url} (exit status {server.poll()})") from None
                time.sleep(0.5)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def compare(args: argparse.Namespace) -> int:
    """The demo at ``--baseline-ref`` (if given), unbatched, then batched serving, same clients and
    requests, in ``--rounds`` rounds that visit the servers in turn (all started first), so that
    the shared machine's drift from minute to minute falls on every server alike; prints each
    server's totals and the throughput ratios."""
    servers = [("unbatched (max_batch_size 1)", 1, PROJECT_ROOT), ("batched", args.batch_size, PROJECT_ROOT)]
    with ExitStack() as stack:
        if args.baseline_ref:
            servers.insert(0, (f"demo at {args.baseline_ref}", None, stack.enter_context(worktree(args.baseline_ref))))
        served = {label: stack.enter_context(served_demo(batch_size, root)) for label, batch_size, root in servers}
        results = {label: Tally() for label in served}
        photos = find_photos(args.photos)
        for _ in range(args.rounds):
            for label, (url, pid) in served.items():
                results[label].add(load(url, args.clients, args.requests, args.max_seconds, args.client, photos, pid))
    for label, tally in results.items():
        print(f"== {label}: {args.client} clients {args.clients}  requested {args.requests} x {args.rounds} rounds\n{summary(tally)}")
    *others, batched = results.items()
    for label, tally in others:
        if tally.throughput:
            print(f"batched / {label} throughput: {batched[1].throughput / tally.throughput:.2f}x")
    failed = any(tally.errors or len(tally.latencies) < args.requests * args.rounds for tally in results.values())
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare:
        return compare(args)
    photos = find_photos(args.photos)
    tally = load(args.url, args.clients, args.requests, args.max_seconds, args.client, photos, args.server_pid)
    print(f"url {args.url}  {args.client} clients {args.clients}  requested {args.requests}  photos {len(photos)} from {args.photos}")
    print(summary(tally))
    return 1 if tally.errors or len(tally.latencies) < args.requests else 0


if __name__ == "__main__":
    raise SystemExit(main())
