"""The number format PetNet's network computes in when it predicts.

bfloat16 roughly halves the forward pass on CPUs that compute it natively (AVX512-BF16 or AMX:
AMD Zen 4 and later, Intel Cooper Lake / Sapphire Rapids and later); elsewhere oneDNN would
emulate it, slower than float32. ``"auto"`` therefore picks bfloat16 only on such CPUs. The weights
are trained in float32 on CPU; their predictions in bfloat16 were checked against float32 on
validation (docs/experiments.md, "Against our goals"). Only the network runs in it: its outputs come back as float32 before
anything else reads them.
"""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16_cpu() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence looked up defensively
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def precision_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``: how reports and benchmarks name what the network computed in."""
    return str(dtype).removeprefix("torch.")


def inference_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """The dtype behind ``precision`` (one of :data:`PRECISIONS`) on ``device``.

    ``"auto"`` is bfloat16 on a CPU with native bfloat16, float32 otherwise (GPUs included: their
    speed-up would need its own check of the figures)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
    if precision == "auto":
        return torch.bfloat16 if torch.device(device).type == "cpu" and native_bfloat16_cpu() else torch.float32
    return getattr(torch, precision)
