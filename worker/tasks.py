"""Celery tasks: each takes ids, hands over to the logic in worker/, and returns nothing (SQL is the record)."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from pandulce.queue import CLASSIFY_CHUNK, CLASSIFY_QUICK, TRAIN_MODEL
from worker.celery_app import app

# Only connection and lock errors are retried: they pass, and a retry of a
# chunk is harmless because writing its results is idempotent.
TRANSIENT = (OperationalError, ConnectionError)


@app.task(name=CLASSIFY_CHUNK, bind=True, autoretry_for=TRANSIENT, retry_backoff=2, retry_backoff_max=60,
          retry_jitter=True, max_retries=5)
def classify_chunk(self, job_id: str, chunk_index: int) -> None:
    """Classify the pending photos of one chunk of a batch job."""
    from worker.chunks import process_chunk

    process_chunk(job_id, chunk_index, worker_name=self.request.hostname or "worker")


@app.task(name=CLASSIFY_QUICK, bind=True)
def classify_quick(self, request_id: str, relative_path: str) -> None:
    """Classify one stored photo with the active model and leave the result in Redis for the web page."""
    from worker.quick import classify_quick_photo

    classify_quick_photo(request_id, relative_path)


@app.task(name=TRAIN_MODEL, bind=True)
def train_model(self, run_id: int) -> None:
    """Run one queued training run and register the model version it produces."""
    from worker.training_runs import run_training

    run_training(run_id)
