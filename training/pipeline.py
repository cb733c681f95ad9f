"""Decode photos on a thread pool, then run the backbone on batches of them.

Pillow releases the GIL while it decodes and resizes, so threads decode in
parallel without the cost of DataLoader worker processes (which are also not
allowed inside daemonic Celery pool children).

On a CPU, decoding and the backbone take turns: a batch is decoded with every
core, then the backbone runs with every core. Letting them overlap made both
slower, because a preempted OpenMP thread stalls the whole backbone at its next
barrier (measured: 87 against 150 photos per second with a compiled
efficientnet-lite0 on 2 cores). On a GPU the next batch is decoded while the
current one runs, since the backbone then needs no CPU cores.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch

from training.backbones import PanDulceNet
from training.photos import PhotoError
from training.runtime import Runtime
from training.transforms import normalize_batch

Item = TypeVar("Item")
Loaded = TypeVar("Loaded")


def default_decode_threads() -> int:
    """Return PANDULCE_DECODE_THREADS, or the number of CPUs this process may use."""
    configured = os.environ.get("PANDULCE_DECODE_THREADS")
    if configured:
        return max(1, int(configured))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_in_batches(items: Iterable[Item], load: Callable[[Item], Loaded], batch_size: int, *,
                    overlap: bool = False, threads: int | None = None
                    ) -> Iterator[list[tuple[Item, Loaded | PhotoError]]]:
    """Yield lists of `(item, load(item))` of up to `batch_size` items, in input order.

    A PhotoError raised by `load` takes the place of its result, so one bad
    photo never stops the others; any other exception propagates. With
    `overlap`, the next batch is loaded while the caller works on this one.
    """
    threads = threads or default_decode_threads()
    iterator = iter(items)

    def next_chunk() -> list[Item]:
        chunk = []
        for item in iterator:
            chunk.append(item)
            if len(chunk) == batch_size:
                break
        return chunk

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode") as pool:
        def submit(chunk: list[Item]) -> list[tuple[Item, Future]]:
            return [(item, pool.submit(load, item)) for item in chunk]

        pending = submit(next_chunk())
        while pending:
            upcoming = submit(next_chunk()) if overlap else None
            yield [_settle(item, future) for item, future in pending]
            pending = upcoming if overlap else submit(next_chunk())


def _settle(item, future: Future):
    try:
        return item, future.result()
    except PhotoError as exc:
        return item, exc


def prepare_model(model: PanDulceNet, runtime: Runtime) -> PanDulceNet:
    """Move the model to the runtime's device and memory layout, in eval mode, with its inference backbone built."""
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.optimize_for_inference(runtime.compile, runtime.batch_size)
    return model.eval()


@torch.inference_mode()
def _device_features(model: PanDulceNet, runtime: Runtime, pixels: torch.Tensor) -> torch.Tensor:
    # uint8 pixels travel to the device and are normalised there: a quarter of
    # the bytes of float32 over PCIe, and the same arithmetic on either device.
    # Everything happens under inference mode, so that every tensor reaching a
    # compiled backbone is an inference tensor; a mix would trigger recompilation.
    pixels = pixels.to(runtime.device, non_blocking=True)
    images = normalize_batch(pixels, model.spec.mean, model.spec.std)
    if runtime.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    else:
        images = images.contiguous()
    with runtime.autocast():
        features = model.features(images)
    return features.float()


def stack_pixels(arrays: list[np.ndarray]) -> torch.Tensor:
    """Stack (H, W, 3) uint8 arrays into one (N, H, W, 3) tensor."""
    return torch.from_numpy(np.stack(arrays))


def run_backbone(model: PanDulceNet, runtime: Runtime, pixels: torch.Tensor) -> torch.Tensor:
    """Return float32 CPU features for an (N, H, W, 3) uint8 batch, run `runtime.batch_size` images at a time."""
    step = runtime.batch_size
    return torch.cat([_device_features(model, runtime, pixels[start:start + step]).cpu()
                      for start in range(0, pixels.shape[0], step)])


def run_model(model: PanDulceNet, runtime: Runtime, pixels: torch.Tensor) -> torch.Tensor:
    """Return float32 CPU class probabilities for an (N, H, W, 3) uint8 batch.

    The backbone runs under the runtime's autocast; the small head runs in float32.
    """
    features = _device_features(model, runtime, pixels)
    with torch.inference_mode():
        log_probabilities = model.head(features)
    return log_probabilities.float().exp().cpu()
