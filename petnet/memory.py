"""glibc heap controls for long-running processes: a server or batch run that decodes photos of every
size in several threads should hold what it uses, not what its busiest moment left behind. Each is a
no-op where libc is not glibc (musl, macOS, Windows)."""

from __future__ import annotations

import ctypes
import os
import sys

MALLOC_ARENAS = 2
"""glibc malloc arenas for the server process. By default glibc gives each thread that allocates
its own arena (up to 8 per core), and Gradio's worker threads, each decoding and drawing photos of
every size, then keep memory the others freed: under the 20-client load test with varied photos
the server's resident memory grew from round to round (1.4, 1.6, 1.8 GB at the end of three
rounds); with two arenas it levelled off (1.1, 1.3, 1.3 GB) at the same throughput."""


def cap_malloc_arenas() -> None:
    """Cap glibc's malloc arenas (:data:`MALLOC_ARENAS`, unless ``MALLOC_ARENA_MAX`` is set), for the
    server process only: it changes the whole process (``app.py`` calls it before anything is loaded).
    The network's threads are the model's own (``load_model(threads=...)`` in :func:`app.demo.build_demo`)."""
    if "MALLOC_ARENA_MAX" not in os.environ and _GLIBC is not None:
        _GLIBC.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def return_freed_memory() -> None:
    """Give the heap memory freed so far (a batch's decoded photos, masks and drawings; a full-size
    decode) back to the system (glibc's ``malloc_trim``, every arena). Without it, memory a thread
    freed stays in its arena, and the next large decode in another thread's arena adds to it."""
    if _GLIBC is not None:
        _GLIBC.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6") if sys.platform == "linux" else None
    except OSError:  # musl
        return None


_GLIBC = _glibc()
_M_ARENA_MAX = -8
"""``mallopt``'s parameter number for the arena cap (glibc ``malloc.h``)."""
