"""The worker's Celery app, with per-process set-up.

The parent process never imports torch, so it never initialises CUDA: each
pool child does that itself, after the fork.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from celery.signals import celeryd_after_setup, worker_process_init, worker_ready, worker_shutdown

from pandulce.config import get_settings
from pandulce.db import dispose_engines
from pandulce.queue import GPU_HEARTBEAT_PREFIX, GPU_HEARTBEAT_TTL_S, make_celery

log = logging.getLogger(__name__)

app = make_celery()
_heartbeat_stop = threading.Event()


def torch_threads_per_child() -> int:
    """Return the CPUs this worker may use divided by its concurrency, at least 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    concurrency = int(os.environ.get("PANDULCE_WORKER_CONCURRENCY") or cpus)
    return max(1, cpus // max(1, concurrency))


@celeryd_after_setup.connect
def _remember_concurrency(sender=None, instance=None, **_kwargs) -> None:
    # Pool children inherit the environment, so they can size their torch thread pools.
    if instance is not None and getattr(instance, "concurrency", None):
        os.environ["PANDULCE_WORKER_CONCURRENCY"] = str(instance.concurrency)


@worker_process_init.connect
def _init_child(**_kwargs) -> None:
    # Database connections must not be shared across a fork.
    dispose_engines()
    from training.runtime import configure_threads

    threads = configure_threads(torch_threads_per_child())
    try:
        import torch._inductor.config as inductor_config

        # Pool children are daemonic: compile in-process instead of in a pool of compile workers.
        inductor_config.compile_threads = 1
    except ImportError:  # pragma: no cover - torch without inductor
        pass
    log.info("Worker process %d ready with %d torch threads", os.getpid(), threads)


@worker_ready.connect
def _start_gpu_heartbeat(sender=None, **_kwargs) -> None:
    if os.environ.get("PANDULCE_GPU_WORKER") != "1":
        return
    settings = get_settings()
    key = f"{settings.queue_prefix}{GPU_HEARTBEAT_PREFIX}{socket.gethostname()}:{os.getpid()}"

    def beat() -> None:
        while not _heartbeat_stop.is_set():
            try:
                with app.connection_for_write() as connection:
                    connection.default_channel.client.set(key, "1", ex=GPU_HEARTBEAT_TTL_S)
            except Exception as exc:  # noqa: BLE001 - keep beating through broker restarts
                log.warning("GPU heartbeat to Redis failed: %s", exc)
            _heartbeat_stop.wait(GPU_HEARTBEAT_TTL_S / 3)

    threading.Thread(target=beat, name="gpu-heartbeat", daemon=True).start()
    log.info("GPU worker heartbeat started as %s", key)


@worker_shutdown.connect
def _stop_gpu_heartbeat(**_kwargs) -> None:
    _heartbeat_stop.set()
