"""Classify one chunk of a batch job and write its results idempotently.

A chunk may be delivered more than once: after a worker process dies (the
message is requeued) or after a transient database error (the task retries).
Each delivery is counted in SQL; past the limit the chunk's photos are marked
failed instead of crashing another worker. Results are written once per
(photo, model version): a second run finds them and leaves them as they are.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pandulce.config import Settings, get_settings
from pandulce.db import (
    BatchChunk,
    ChunkStatus,
    JobStatus,
    ModelVersion,
    Photo,
    PhotoStatus,
    Prediction,
    PredictionScore,
    session_scope,
    utcnow,
)
from pandulce.jobs import refresh_counts
from pandulce.storage import resolve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkWork:
    version_id: int
    artifact_path: str
    photos: list[tuple[int, str, str]]  # (photo id, stored path, uploaded name) still to classify
    over_limit: bool
    deliveries: int


def process_chunk(job_id: str, chunk_index: int, worker_name: str, settings: Settings | None = None) -> str:
    """Classify a chunk's pending photos; return what happened (done, skipped, failed or missing)."""
    settings = settings or get_settings()
    with session_scope() as session:
        work = _start(session, job_id, chunk_index, worker_name, settings)
    if isinstance(work, str):
        return work

    if work.over_limit:
        reason = (f"A worker process stopped {work.deliveries - 1} times while classifying this photo's chunk; "
                  f"it was not tried again.")
        log.error("Chunk %d of job %s was delivered %d times; marking its photos failed",
                  chunk_index, job_id, work.deliveries)
        return _fail_chunk(job_id, chunk_index, "worker_lost", reason)

    from training.artifact import ArtifactError
    from worker.models import model_for_version

    try:
        loaded = model_for_version(work.version_id, work.artifact_path, settings)
    except (ArtifactError, OSError, ValueError, RuntimeError) as exc:
        log.error("Model version %d could not be loaded for job %s", work.version_id, job_id, exc_info=True)
        return _fail_chunk(job_id, chunk_index, "model_unavailable", f"The model could not be loaded: {exc}")

    predictions = _classify(loaded, work.photos, settings)
    with session_scope() as session:
        _write(session, job_id, chunk_index, work.version_id, loaded.classes, predictions)
    with session_scope() as session:
        job = refresh_counts(session, job_id)
        log.info("Chunk %d of job %s done: %d/%d photos finished", chunk_index, job_id,
                 job.done_count + job.failed_count, job.total - job.skipped_count)
    return "done"


def _start(session: Session, job_id: str, chunk_index: int, worker_name: str, settings: Settings):
    chunk = session.scalar(select(BatchChunk).where(BatchChunk.job_id == job_id, BatchChunk.index == chunk_index)
                           .with_for_update())
    if chunk is None:
        log.warning("Chunk %d of job %s does not exist; dropping the message", chunk_index, job_id)
        return "missing"
    job = chunk.job
    if job.status == JobStatus.CANCELLED or chunk.status in (ChunkStatus.DONE, ChunkStatus.CANCELLED,
                                                             ChunkStatus.FAILED):
        log.info("Chunk %d of job %s is %s; nothing to do", chunk_index, job_id, chunk.status.value)
        return "skipped"

    now = utcnow()
    chunk.deliveries += 1
    chunk.status = ChunkStatus.RUNNING
    chunk.worker = worker_name[:200]
    chunk.worker_pid = os.getpid()
    chunk.started_at = now
    if job.status == JobStatus.QUEUED:
        job.status = JobStatus.RUNNING
        job.started_at = now

    version = session.get(ModelVersion, job.model_version_id)
    photos = session.execute(select(Photo.id, Photo.stored_path, Photo.original_name).where(
        Photo.job_id == job_id, Photo.chunk_index == chunk_index, Photo.status == PhotoStatus.PENDING)
        .order_by(Photo.position)).all()
    return ChunkWork(version.id, version.artifact_path,
                     [(row.id, row.stored_path, row.original_name) for row in photos],
                     over_limit=chunk.deliveries > settings.max_deliveries, deliveries=chunk.deliveries)


def _classify(loaded, photos: list[tuple[int, str, str]], settings: Settings) -> dict[int, object]:
    from training.predict import classify_paths

    paths = [resolve(settings.data_dir, stored_path) for _, stored_path, _ in photos]
    # Error messages name the photo as it was uploaded, never by its storage path.
    names = {str(path): name for path, (_, _, name) in zip(paths, photos)}
    results = classify_paths(loaded, paths, batch_size=loaded.runtime.batch_size, names=names)
    return {photo_id: prediction for (photo_id, _, _), prediction in zip(photos, results)}


def _write(session: Session, job_id: str, chunk_index: int, version_id: int, classes: list[str],
           predictions: dict) -> None:
    existing = set(session.scalars(select(Prediction.photo_id).where(
        Prediction.photo_id.in_(list(predictions)), Prediction.model_version_id == version_id)))
    photos = {photo.id: photo for photo in session.scalars(select(Photo).where(Photo.id.in_(list(predictions))))}

    for photo_id, result in predictions.items():
        photo = photos[photo_id]
        if photo.status not in (PhotoStatus.PENDING, PhotoStatus.DONE):
            continue  # cancelled while this chunk ran
        if result.status != "ok":
            photo.status, photo.error_code, photo.error = PhotoStatus.FAILED, result.error_code, result.error
            continue
        photo.status, photo.error_code, photo.error = PhotoStatus.DONE, None, None
        photo.width, photo.height = result.width, result.height
        if photo_id in existing:
            continue
        prediction = Prediction(photo_id=photo_id, model_version_id=version_id, top_class=result.top_class,
                                top_probability=result.top_probability)
        prediction.scores = [PredictionScore(class_name=name, class_index=index, probability=probability)
                             for index, (name, probability) in enumerate(zip(classes, result.probabilities))]
        session.add(prediction)

    chunk = session.scalar(select(BatchChunk).where(BatchChunk.job_id == job_id, BatchChunk.index == chunk_index))
    chunk.status = ChunkStatus.DONE
    chunk.finished_at = utcnow()
    try:
        session.flush()
    except IntegrityError:
        # Another delivery of this chunk wrote the same predictions first; theirs stand.
        session.rollback()
        log.warning("Chunk %d of job %s was written by another delivery; keeping those rows", chunk_index, job_id)


def _fail_chunk(job_id: str, chunk_index: int, code: str, reason: str) -> str:
    with session_scope() as session:
        photos = session.scalars(select(Photo).where(Photo.job_id == job_id, Photo.chunk_index == chunk_index,
                                                     Photo.status == PhotoStatus.PENDING))
        for photo in photos:
            photo.status, photo.error_code, photo.error = PhotoStatus.FAILED, code, reason
        chunk = session.scalar(select(BatchChunk).where(BatchChunk.job_id == job_id, BatchChunk.index == chunk_index))
        chunk.status = ChunkStatus.FAILED
        chunk.finished_at = utcnow()
    with session_scope() as session:
        refresh_counts(session, job_id)
    return "failed"
