"""Fold batch normalisation into the preceding convolution for faster CPU inference.

In eval mode a BatchNorm is a fixed per-channel affine map, so it can be multiplied into the
convolution before it (``torch.nn.utils.fusion.fuse_conv_bn_weights``). On CPU that removes about a
fifth of PetNet's forward time and changes outputs only by float rounding.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def fold_batchnorm(module: nn.Module) -> int:
    """Fold, in place, every BatchNorm2d that directly follows a Conv2d among its siblings; return how many.

    "Directly follows" is registration order, which is the execution order in the timm
    EfficientNet-Lite blocks and PetNet's decoder (a test checks the fused network against the
    original). A BatchNorm with a built-in activation (timm's ``BatchNormAct2d``) keeps its
    activation. The module must be in eval mode: folding freezes the running statistics.
    """
    if module.training:
        raise RuntimeError("fold_batchnorm needs a module in eval mode (call .eval() first).")
    folded = 0
    previous = None
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d) and isinstance(previous, nn.Conv2d):
            _fold_into(previous, child)
            setattr(module, name, _activation_after(child))
            folded += 1
        else:
            folded += fold_batchnorm(child)
        previous = child
    return folded


def _fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Give ``conv`` the weights of ``conv`` then ``norm``, in place (``fuse_conv_bn_eval`` would
    first deep-copy every convolution, which a model load would wait for)."""
    with torch.no_grad():
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.eps, norm.weight, norm.bias
        )


def _activation_after(norm: nn.BatchNorm2d) -> nn.Module:
    """What remains of ``norm`` once its affine map lives in the convolution: timm's drop + act, or nothing."""
    parts = [part for part in (getattr(norm, "drop", None), getattr(norm, "act", None)) if part is not None]
    parts = [part for part in parts if not isinstance(part, nn.Identity)]
    return nn.Sequential(*parts) if parts else nn.Identity()
