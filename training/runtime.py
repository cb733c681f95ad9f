"""Device and precision choices: CUDA with mixed precision when present, bfloat16 on CPUs that support it."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


# Photos (times views) from which compiling the backbone pays for its 10 to 30
# seconds of compilation, measured with efficientnet-lite0 and resnet50 on a
# 2-core AVX-512 BF16 CPU where compilation roughly doubled throughput.
COMPILE_MIN_IMAGES = 2000


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # fp32, bf16 or fp16
    channels_last: bool
    compile: bool = False

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self):
        """Return the autocast context for backbone inference, or a no-op for fp32."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def batch_size(self) -> int:
        """Return the backbone batch size: small batches stay in the CPU's caches, large ones fill a GPU."""
        return 128 if self.device.type == "cuda" else 16

    def describe(self) -> str:
        layout = ", channels-last" if self.channels_last else ""
        compiled = ", compiled" if self.compile else ""
        return f"{self.device.type} {self.precision}{layout}{compiled}"


def cpu_supports_bf16() -> bool:
    """Tell whether oneDNN has native bfloat16 kernels on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def compile_wanted(choice: str | bool | None, images: int) -> bool:
    """Decide whether to compile the backbone: 'on', 'off', or 'auto' (for at least COMPILE_MIN_IMAGES images).

    PANDULCE_COMPILE=0 or 1 overrides 'auto'.
    """
    if isinstance(choice, bool):
        return choice
    if choice in ("on", "off"):
        return choice == "on"
    if choice not in (None, "auto"):
        raise ValueError(f"Unknown compile choice {choice!r}; choose one of auto, on, off.")
    override = os.environ.get("PANDULCE_COMPILE")
    if override in ("0", "1"):
        return override == "1"
    return images >= COMPILE_MIN_IMAGES


def select_runtime(device: str = "auto", precision: str = "auto", compile: bool = False) -> Runtime:
    """Pick the device and precision, validating both against what this machine has."""
    if device not in DEVICES:
        raise ValueError(f"Unknown device {device!r}; choose one of {', '.join(DEVICES)}.")
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("Device 'cuda' was requested but no CUDA GPU is available.")

    if device == "cuda":
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return Runtime(torch.device("cuda"), precision, channels_last=True, compile=compile)

    if precision == "fp16":
        raise ValueError("Precision fp16 is only supported on CUDA; use bf16 or fp32 on the CPU.")
    bf16 = cpu_supports_bf16()
    if precision == "auto":
        precision = "bf16" if bf16 else "fp32"
    elif precision == "bf16" and not bf16:
        log.warning("This CPU has no native bfloat16 support; bf16 will be slower than fp32")
    return Runtime(torch.device("cpu"), precision, channels_last=precision == "bf16", compile=compile)


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads from PANDULCE_TORCH_THREADS, the argument, or the CPUs this process may use."""
    requested = os.environ.get("PANDULCE_TORCH_THREADS")
    if requested:
        threads = int(requested)
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, threads)
    torch.set_num_threads(threads)
    return threads
