"""A fast, read-only copy of a frozen backbone for feature extraction and prediction.

BatchNorm layers are folded into the preceding convolutions, which is exact up
to float rounding because the backbone is always in eval mode. With
compilation on, TorchInductor then freezes the weights into the graph and
pre-packs them for oneDNN. On the 2-core AVX-512 BF16 machine of bench/README.md
that more than doubled backbone throughput. The price is 10 to 30 seconds of
compilation per process and model.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


class InferenceBackbone:
    def __init__(self, backbone: nn.Module, compile_backbone: bool, batch_size: int):
        self.module = _fold_batchnorm(backbone)
        self.batch_size = batch_size
        self.compiled = None
        if compile_backbone:
            import torch._inductor.config as inductor_config

            # Freezing is set process-wide: passed as options={"freezing": True}
            # to torch.compile (torch 2.14) it gave a quarter less throughput.
            # It only affects graphs compiled for inference, and this project
            # compiles nothing else.
            inductor_config.freezing = True
            # A fixed batch shape (the last batch is padded) means one compilation per process.
            self.compiled = torch.compile(self.module, dynamic=False)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.compiled is None:
            return self.module(images)
        outputs = [self._compiled_batch(images[start:start + self.batch_size])
                   for start in range(0, images.shape[0], self.batch_size)]
        return torch.cat(outputs)

    def _compiled_batch(self, images: torch.Tensor) -> torch.Tensor:
        count = images.shape[0]
        if count < self.batch_size:
            padding = images.new_zeros((self.batch_size - count, *images.shape[1:]))
            images = torch.cat([images, padding]).contiguous(memory_format=_memory_format(images))
        try:
            return self.compiled(images)[:count]
        except Exception:  # noqa: BLE001 - any compiler failure: keep working without compilation
            log.warning("Compiling the backbone failed; continuing without compilation", exc_info=True)
            self.compiled = None
            return self.module(images)[:count]


def _memory_format(images: torch.Tensor) -> torch.memory_format:
    if images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


# EfficientNet's convolutions pad themselves ("same" padding) inside custom
# modules, which torch.fx traces through, so its pairs are named here instead.
EFFICIENTNET_PAIRS = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))
EFFICIENTNET_BLOCK_PAIRS = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))


def _fold_batchnorm(backbone: nn.Module) -> nn.Module:
    if type(backbone).__name__ == "EfficientNet":
        folded = _fold_efficientnet(copy.deepcopy(backbone))
    else:
        from torch.fx.experimental.optimization import fuse

        try:
            folded = fuse(backbone)  # fuse() works on a deep copy
        except Exception as exc:  # noqa: BLE001 - tracing can fail on unusual modules; folding is optional
            log.debug("Could not fold BatchNorm into convolutions (%s); using a plain copy", exc)
            folded = copy.deepcopy(backbone)
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    return folded.eval()


def _fold_efficientnet(model: nn.Module) -> nn.Module:
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fold(owner: nn.Module, conv_name: str, norm_name: str) -> None:
        convolution, norm = getattr(owner, conv_name, None), getattr(owner, norm_name, None)
        if isinstance(convolution, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            # fuse_conv_bn_eval copies the convolution, so its padding subclass is kept.
            setattr(owner, conv_name, fuse_conv_bn_eval(convolution.eval(), norm.eval()))
            setattr(owner, norm_name, nn.Identity())

    for conv_name, norm_name in EFFICIENTNET_PAIRS:
        fold(model, conv_name, norm_name)
    for block in model._blocks:
        for conv_name, norm_name in EFFICIENTNET_BLOCK_PAIRS:
            fold(block, conv_name, norm_name)
    return model
