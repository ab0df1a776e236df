"""The network's number format: what "auto" picks, and bfloat16 predictions matching float32 ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from petnet.hub import load_model
from petnet.models import precision
from petnet.models.precision import inference_dtype


def test_explicit_precisions_and_unknown_names() -> None:
    assert inference_dtype("float32", "cpu") is torch.float32
    assert inference_dtype("bfloat16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of"):
        inference_dtype("fp16", "cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bfloat16_only_on_cpus_that_have_it(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(precision, "native_bfloat16_cpu", lambda: native)
    assert inference_dtype("auto", "cpu") is (torch.bfloat16 if native else torch.float32)
    assert inference_dtype("auto", "meta") is torch.float32  # not a CPU: float32 whatever this CPU has


def test_load_model_sets_the_precision() -> None:
    assert load_model(precision="bfloat16").inference_dtype is torch.bfloat16
    assert load_model(runtime="torch", precision="float32").inference_dtype is torch.float32


def test_bfloat16_predictions_match_float32(real_image_path: Path) -> None:
    """Same species and breeds, nearly the same mask; outputs stay float32 for everything after the network."""
    fast, exact = load_model(precision="bfloat16"), load_model(runtime="torch", precision="float32")
    image = fast.preprocess(real_image_path)
    output = fast.infer(image[None])
    assert all(tensor.dtype is torch.float32 for tensor in output)
    quick, reference = fast.predict(real_image_path), exact.predict(real_image_path)
    assert (quick.species, quick.breed[0], quick.has_pet) == (reference.species, reference.breed[0], reference.has_pet)
    assert (quick.mask == reference.mask).mean() > 0.98
    assert abs(quick.pet_score - reference.pet_score) < 0.02
