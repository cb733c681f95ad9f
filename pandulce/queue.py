"""The Celery application and the messages that put work on the queues.

Only task names travel in messages, so the web app and the CLI can enqueue
without importing the worker's task code (or torch). Tasks receive ids, never
rows or photos: SQL is the record, and Redis keeps no results.
"""

from __future__ import annotations

import json
import logging

from celery import Celery
from kombu import Queue

from pandulce.config import Settings, get_settings

log = logging.getLogger(__name__)

CLASSIFY_CHUNK = "pandulce.classify_chunk"
CLASSIFY_QUICK = "pandulce.classify_quick"
TRAIN_MODEL = "pandulce.train_model"
QUICK_RESULT_PREFIX = "pandulce:quick:"
QUICK_RESULT_TTL_S = 600
GPU_HEARTBEAT_PREFIX = "pandulce:gpu-worker:"
GPU_HEARTBEAT_TTL_S = 60
# Chunk k of a job goes out with priority min(k, 9), 0 being served first, so a
# small job submitted behind a large one starts at once instead of waiting.
LOWEST_PRIORITY = 9


def make_celery(settings: Settings | None = None) -> Celery:
    """Build the Celery app: late acks, requeue on a lost worker, prefetch 1, no result backend."""
    settings = settings or get_settings()
    app = Celery("pandulce", broker=settings.redis_url, include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "priority_steps": list(range(LOWEST_PRIORITY + 1)),
            "queue_order_strategy": "priority",
        },
        task_queues=[Queue(settings.queue(name)) for name in ("inference", "training", "gpu")],
        task_default_queue=settings.queue("inference"),
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


_apps: dict[tuple, Celery] = {}


def celery_app(settings: Settings | None = None) -> Celery:
    """Return this process's Celery app for the configured broker and queue names."""
    settings = settings or get_settings()
    key = (settings.redis_url, settings.queue_prefix, settings.visibility_timeout_s)
    if key not in _apps:
        _apps[key] = make_celery(settings)
    return _apps[key]


def gpu_workers_present(app: Celery, settings: Settings) -> bool:
    """Tell whether a GPU worker has sent a heartbeat within the last minute."""
    try:
        with app.connection_for_write() as connection:
            client = connection.default_channel.client
            pattern = f"{settings.queue_prefix}{GPU_HEARTBEAT_PREFIX}*"
            return next(iter(client.scan_iter(match=pattern, count=100)), None) is not None
    except Exception as exc:  # noqa: BLE001 - routing falls back to the CPU queue on any broker trouble
        log.warning("Could not look for GPU workers (%s); routing to the CPU queue", exc)
        return False


def enqueue_chunks(job_id: str, chunk_indices: list[int], settings: Settings | None = None) -> str:
    """Send one message per chunk; return the queue they went to."""
    settings = settings or get_settings()
    app = celery_app(settings)
    queue = settings.queue("gpu") if gpu_workers_present(app, settings) else settings.queue("inference")
    for position, index in enumerate(sorted(chunk_indices)):
        app.send_task(CLASSIFY_CHUNK, args=[job_id, index], queue=queue,
                      priority=min(position, LOWEST_PRIORITY))
    log.info("Queued %d chunks of job %s on %s", len(chunk_indices), job_id, queue)
    return queue


def enqueue_training(run_id: int, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    app = celery_app(settings)
    app.send_task(TRAIN_MODEL, args=[run_id], queue=settings.queue("training"))
    log.info("Queued training run %d", run_id)


def enqueue_quick(request_id: str, relative_path: str, settings: Settings | None = None) -> None:
    """Ask a worker to classify one stored photo outside any job, ahead of queued chunks."""
    settings = settings or get_settings()
    app = celery_app(settings)
    queue = settings.queue("gpu") if gpu_workers_present(app, settings) else settings.queue("inference")
    app.send_task(CLASSIFY_QUICK, args=[request_id, relative_path], queue=queue, priority=0)


def quick_result_key(request_id: str, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return f"{settings.queue_prefix}{QUICK_RESULT_PREFIX}{request_id}"


def store_quick_result(request_id: str, result: dict, settings: Settings | None = None) -> None:
    """Keep a quick-test result in Redis for ten minutes, because it belongs to no job and SQL does not keep it."""
    settings = settings or get_settings()
    with celery_app(settings).connection_for_write() as connection:
        connection.default_channel.client.set(quick_result_key(request_id, settings), json.dumps(result),
                                              ex=QUICK_RESULT_TTL_S)


def fetch_quick_result(request_id: str, settings: Settings | None = None) -> dict | None:
    """Return a quick-test result, or None while the worker is still classifying the photo."""
    settings = settings or get_settings()
    with celery_app(settings).connection_for_write() as connection:
        raw = connection.default_channel.client.get(quick_result_key(request_id, settings))
    return json.loads(raw) if raw else None
