"""Export a PetNet model folder to ONNX: the float32 graphs and their int8 twins, for ONNX Runtime.

    python -m petnet.training.export --model petnet/weights

writes, beside the folder's ``config.json`` and ``model.safetensors``, the graphs
:mod:`petnet.inference.onnx_network` runs (:data:`ONNX_FILES`):

- ``model.onnx``: ``PetNet.forward`` in float32 with batch norms folded, input ``images``
  (batch, 3, S, S), the six :class:`~petnet.inference.decoding.PetNetOutput` fields as outputs, in
  order. Single view: the runtime averages masks with the mirror image's itself, as
  ``PetNet.infer`` does. ``classify.onnx`` is the same graph cut to the backbone and the species
  and breed heads (the closer look; the decoder would cost as much again).
- ``model.int8.onnx`` and ``classify.int8.onnx``: static QDQ quantization with per-channel int8
  weights and uint8 activations, calibrated on training photos (and their mirror images, which the
  first look runs too) only; the heads' last layers stay float32 (:func:`output_layers`).

Why it is made this way (each a problem met, with its fix; docs/experiments.md has the figures):

1. ``torch.onnx.export(dynamo=True)`` at opset 18, then down to 17 with ONNX's version converter:
   asked for 17 directly the exporter converts *before* optimising, fails on timm's ``F.pad``
   ("No Adapter To Version $17 for Pad") and silently stays at 18. Two opset-18 attributes that
   hold their defaults are dropped first (:data:`_OPSET18_DEFAULTS`).
2. Height and width are fixed at ``config.image_size``: timm's ``tf_`` "same" padding is a
   constant (folded into each Conv's ``pads``) only at a fixed size. The batch is dynamic.
3. The model is copied to ``contiguous_format`` first: channels_last weights turn the heads'
   flatten into an ``as_strided`` chain in the graph.
4. int8: dynamic or per-tensor quantization wrecks depthwise networks; static per-channel QDQ does
   not. Quantized, the graph outputs got their uint8 range from pet photos alone, which clipped
   every non-pet photo's negative pet logit to 0 (pet score exactly 0.5), hence float32 output
   layers. Percentile calibration keeps every activation of every photo unless the reader is fed
   in chunks (``CalibStridedMinMax``: 22 GB RSS otherwise); ``CalibMaxIntermediateOutputs`` drops
   all but the last chunk in onnxruntime 1.32, so it is not used.
5. The decoder's upsampling exports as ``Resize`` with a ``sizes`` input computed from ``Shape``
   (the batch is dynamic), and in an int8 graph ``Shape`` needs a whole activation dequantized just
   to read its shape. With height and width fixed, constant ``scales`` say the same
   (:func:`constant_resize_scales`): the same outputs, 5 of 14 dequantizations and 4 of 8
   transposes fewer in ONNX Runtime's int8 graph.
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
import torch
from onnx import helper, numpy_helper, shape_inference
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from petnet.config import TrainConfig
from petnet.data.datasets import load_record_image, split_records
from petnet.hub import load_model
from petnet.inference.onnx_network import CLASSIFY_OUTPUTS, FULL_OUTPUTS, INPUT_NAME, ONNX_FILES, ONNX_PRECISIONS, OPSET
from petnet.models.network import PetNet
from petnet.paths import OXFORD_PET_ROOT

log = logging.getLogger(__name__)

CALIBRATION_PHOTOS = 160
"""Training photos (each with its mirror image) the int8 activation ranges are calibrated on."""
_OPSET18_DEFAULTS = {
    "ReduceMean": {"noop_with_empty_axes": 0},
    "ReduceLogSumExp": {"noop_with_empty_axes": 0},
    "Resize": {"antialias": 0, "keep_aspect_ratio_policy": b"stretch"},
}
"""Attributes opset 18 added, removed (point 1) only where they hold the value opset 17 implies."""
_PASS_THROUGH_OPS = ("Gather", "Resize", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Cast",
                     "Mul", "Div", "Sub", "Add", "ReduceLogSumExp")  # fmt: skip
"""Weightless ops between a layer and a graph output (the last ones: a sharp pet pooling's arithmetic)."""


class _FullGraph(torch.nn.Module):
    """``PetNet.forward`` as a plain tuple of the :data:`FULL_OUTPUTS`."""

    def __init__(self, net: PetNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.net(images)
        return tuple(tensor for tensor in output if tensor is not None)


def export_float32(model: PetNet, path: Path) -> None:
    """``model`` (fused, float32) as an opset-17 graph with a dynamic batch at ``path``."""
    net = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format).eval()  # point 3
    outputs = FULL_OUTPUTS if model.config.center_head else FULL_OUTPUTS[:-1]
    size = model.config.image_size
    with torch.no_grad():
        program = torch.onnx.export(
            _FullGraph(net).eval(), (torch.randn(2, 3, size, size),), dynamo=True, opset_version=18, optimize=True,
            input_names=[INPUT_NAME], output_names=list(outputs),
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=256)},),
        )  # fmt: skip
    proto = program.model_proto
    for node in proto.graph.node:
        defaults = _OPSET18_DEFAULTS.get(node.op_type, {})
        for attribute in list(node.attribute):
            if attribute.name in defaults:
                if helper.get_attribute_value(attribute) != defaults[attribute.name]:
                    raise ValueError(f"{node.name}: {attribute.name} is not its default; opset {OPSET} cannot express it")
                node.attribute.remove(attribute)
    converted = onnx.version_converter.convert_version(proto, OPSET)
    onnx.checker.check_model(converted, full_check=True)
    onnx.save(converted, str(path))


def constant_resize_scales(path: Path) -> None:
    """Rewrite graph ``path`` in place with each ``Resize`` scaled by constants instead of sized by
    ``Shape`` ops (point 5), and the ops that only fed those sizes removed. Its input's height and
    width must be fixed (point 2); a size that is no whole multiple (8 to 15) is still met exactly,
    as ``floor(8 * 15/8)`` is 15 and the pixel mapping uses that same ratio."""
    model = onnx.load(str(path))
    shapes = {
        info.name: [dim.dim_value or None for dim in info.type.tensor_type.shape.dim]
        for info in (*shape_inference.infer_shapes(model).graph.value_info, *model.graph.input, *model.graph.output)
    }
    for node in model.graph.node:
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        source, target = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not source or not target or None in source[2:] + target[2:]:
            raise ValueError(f"{node.name}: the spatial size is not fixed ({source} -> {target})")
        scales = np.array([1, 1, target[2] / source[2], target[3] / source[3]], dtype=np.float32)
        if [int(np.floor(np.float32(size) * scale)) for size, scale in zip(source[2:], scales[2:])] != target[2:]:
            raise ValueError(f"{node.name}: no float32 scale gives {source[2:]} -> {target[2:]} exactly")
        model.graph.initializer.append(numpy_helper.from_array(scales, f"{node.name}_scales"))
        node.input[2] = f"{node.name}_scales"
        del node.input[3]
    onnx.save(model, str(path))
    outputs = [output.name for output in model.graph.output]
    onnx.utils.extract_model(str(path), str(path), [INPUT_NAME], outputs)  # drops what fed only the sizes


def cut_classification(full: Path, path: Path) -> None:
    """The backbone and the species, breed and pet heads of graph ``full``, sharing its weights (and
    an int8 graph's scales, so the closer and second looks see the first look's backbone exactly)."""
    onnx.utils.extract_model(str(full), str(path), [INPUT_NAME], list(CLASSIFY_OUTPUTS))


class _PhotoReader(CalibrationDataReader):
    """Calibration batches: each photo followed by its mirror image. ``__len__`` and ``set_range``
    let ``quantize_static`` read it in chunks (point 4)."""

    def __init__(self, images: np.ndarray, batch: int = 8) -> None:
        both = np.stack([images, images[..., ::-1]], axis=1).reshape(-1, *images.shape[1:])
        self.batches = [np.ascontiguousarray(both[i : i + batch]) for i in range(0, len(both), batch)]
        self.start, self.end, self.position = 0, len(self.batches), 0

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = start_index, min(end_index, len(self.batches))
        self.position = self.start

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.end:
            return None
        self.position += 1
        return {INPUT_NAME: self.batches[self.position - 1]}

    def rewind(self) -> None:
        self.position = self.start


def output_layers(graph: onnx.GraphProto) -> list[str]:
    """The nodes that make the graph's outputs: from each output back through pass-through ops
    (Gather, Resize ...) to the first Conv or Gemm, included. A few kFLOPs, kept float32 (point 4)."""
    producer = {out: node for node in graph.node for out in node.output}
    keep = []
    for output in graph.output:
        node = producer.get(output.name)
        while node is not None:
            keep.append(node.name)
            if node.op_type not in _PASS_THROUGH_OPS:  # the layer (Conv, Gemm) that makes the output
                break
            node = producer.get(node.input[0])
    return keep


def spread(items: Sequence, count: int) -> list:
    """``count`` items spread evenly over ``items`` (every breed, when they are sorted by name)."""
    if count >= len(items):
        return list(items)
    return [items[int(i * len(items) / count)] for i in range(count)]


def quantize_int8(full: Path, path: Path, images: np.ndarray) -> None:
    """Static QDQ int8 of graph ``full`` at ``path``, activations calibrated on ``images`` and their mirrors."""
    reader = _PhotoReader(images)
    chunk = max(c for c in (1, 2, 4) if len(reader) % c == 0)  # batches per collection: at most 32 images
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(full), str(prepared), skip_symbolic_shape=False)
        quantize_static(
            str(prepared), str(path), reader, quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=output_layers(onnx.load(str(prepared)).graph),
            calibrate_method=CalibrationMethod.Percentile, extra_options={"CalibStridedMinMax": chunk},
        )  # fmt: skip


def write_graphs(model: PetNet, model_dir: Path, images: np.ndarray) -> list[Path]:
    """Write :data:`ONNX_FILES` for ``model`` (loaded in float32) into ``model_dir``, int8
    calibrated on ``images`` (preprocessed, with their mirror images); returns their paths."""
    paths = {name: model_dir / file for name, file in ONNX_FILES.items()}
    export_float32(model, paths["float32"])
    quantize_int8(paths["float32"], paths["int8"], images)
    for precision in ONNX_PRECISIONS:
        constant_resize_scales(paths[precision])
        cut_classification(paths[precision], paths[f"{precision}-classify"])
    return list(paths.values())


def export(model_dir: Path, data_root: Path = OXFORD_PET_ROOT, photos: int = CALIBRATION_PHOTOS) -> list[Path]:
    """:func:`write_graphs` for the model in ``model_dir``, int8 calibrated on ``photos`` training photos."""
    model = load_model(model_dir, precision="float32", runtime="torch")
    split = TrainConfig()  # the validation split training carves out of trainval: never calibrated on
    calibration = spread(split_records(data_root, "train", split.val_fraction, split.split_seed), photos)
    images = np.stack([model.predictor.preprocess(load_record_image(record)) for record in calibration])
    log.info("Calibrating int8 on %d training photos and their mirror images", len(calibration))
    return write_graphs(model, model_dir, images)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder (config.json + model.safetensors)")
    parser.add_argument("--data-root", type=Path, default=OXFORD_PET_ROOT, help="Oxford-IIIT Pet, for the calibration photos")
    parser.add_argument("--photos", type=int, default=CALIBRATION_PHOTOS, help="training photos to calibrate int8 on")
    args = parser.parse_args(argv)
    for path in export(args.model, args.data_root, args.photos):
        log.info("Wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)


if __name__ == "__main__":
    main()
