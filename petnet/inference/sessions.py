"""ONNX Runtime sessions as PetNet runs them on a CPU: the network's graphs and the other-animal check's."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from petnet.errors import WeightsError

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

log = logging.getLogger(__name__)


def default_threads() -> int:
    """The CPUs this process may run on (a container's or ``taskset``'s share, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.cache
def _shared_arena() -> None:
    """One CPU memory arena registered with ONNX Runtime's environment, once per process, for every
    session that uses an arena: the full graph and the classification cut then draw on one pool
    (the larger of their needs) instead of keeping one each (their sum). Predicting the load test's
    227 photos in batches of 1-4, a process peaked at 210-213 MB against 223-227 MB with an arena per
    session, at the same speed (43-46 images/s; throwaway script, alternated runs)."""
    import onnxruntime as ort

    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    try:
        ort.create_and_register_allocator(info, None)
    except Exception as error:  # noqa: BLE001 - one registered before us (by the embedding program) serves as well
        log.debug("ONNX Runtime's environment already has a CPU allocator (%s); the sessions share that one.", error)


def make_session(path: Path, threads: int, memory_arena: bool = True) -> InferenceSession:
    """A CPU session: ``threads`` intra-op threads, full graph optimisation, spinning within a run only.

    ONNX Runtime's idle threads otherwise busy-wait after each run and take the cores from the
    pipeline's own work between passes (decoding, resizing masks, reading the next photo): on 2 cores
    that doubled an int8 first look (74 ms against 31 ms). Not spinning at all makes each of the
    graph's parallel sections wake its threads from sleep; spinning until the run ends
    (``session.force_spinning_stop``) took ``predict`` from 25.4-26.9 ms to 23.8-25.2 ms on the
    bench photo, the two sessions side by side in one process, three rounds.

    Memory patterns are off: ONNX Runtime would keep one planned allocation per input shape, and a
    server's batches come in every size from 1 to 8. Off, a process predicting 360 photos in batches
    of random sizes peaked at 196-199 MB against 220-225 MB, at the same speed (45-54 images/s both
    ways; the bench photo's p50 17.7-17.8 ms both ways).

    ``memory_arena`` False frees each run's buffers instead of keeping them in ONNX Runtime's arena:
    for the small other-animal check that kept 10-18 MB of a server's memory instead of 40-42 MB
    after batches of 4, at the same speed (2.25 against 2.28 ms a photo). Sessions with an arena
    share one (:func:`_shared_arena`)."""
    import onnxruntime as ort  # here, so that importing this module never needs it

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = False
    options.enable_cpu_mem_arena = memory_arena
    if memory_arena:
        _shared_arena()
        options.add_session_config_entry("session.use_env_allocators", "1")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the fallback in petnet.hub says what went wrong
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_session(path: Path, writer: str, threads: int | None = None, memory_arena: bool = True) -> InferenceSession:
    """:func:`make_session` for the graph at ``path`` (``threads`` default: :func:`default_threads`).
    Raises :class:`WeightsError` when the file is missing (naming ``writer``, the command that writes
    it) or ONNX Runtime cannot load it (a truncated or corrupt download)."""
    if not Path(path).is_file():
        raise WeightsError(f"{path} is missing ({writer} writes it)")
    try:
        return make_session(Path(path), threads or default_threads(), memory_arena)
    except Exception as error:  # onnxruntime's own exception types (InvalidProtobuf, Fail ...)
        raise WeightsError(f"ONNX Runtime cannot load {path} ({type(error).__name__}: {error})") from error
