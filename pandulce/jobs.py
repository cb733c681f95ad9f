"""Batch jobs: create them from uploads, split them into chunks, track, cancel, retry and export them.

Nothing here imports torch: the web app, the CLI and the workers share it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Iterator

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from pandulce.config import Settings, get_settings
from pandulce.db import (
    BatchChunk,
    BatchJob,
    ChunkStatus,
    JobStatus,
    ModelVersion,
    Photo,
    PhotoStatus,
    Prediction,
    PredictionScore,
    utcnow,
)
from pandulce.registry import active_version
from pandulce.storage import PhotoTooLarge, store_stream
from pandulce.uploads import UploadEntry, UploadError, UploadLimits
from training.photos import NOT_A_PHOTO, SYSTEM_FILE, is_junk_path, is_photo_candidate

log = logging.getLogger(__name__)

FINISHED = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)
# Failures caused by the file itself, which a retry would only repeat.
PERMANENT_FAILURES = ("empty", "not_an_image", "unsupported_format", "corrupt", "truncated", "too_large",
                      "file_too_large", "missing", "not_a_file", "unreadable")


class JobError(ValueError):
    """A request about a job that cannot be carried out; `code` names the reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class JobCounts:
    total: int
    done: int
    failed: int
    skipped: int
    pending: int
    cancelled: int


def create_job(session: Session, entries: Iterable[UploadEntry], *, name: str, submitted_by: str,
               user_id: int | None = None, model_version_id: int | None = None,
               settings: Settings | None = None, limits: UploadLimits | None = None) -> BatchJob:
    """Store every photo of an upload and add the job, its photos and its chunks (not yet queued).

    System files and files that are not photos become `skipped` photos with
    their reason. Raises UploadError when a limit is broken, and the caller's
    rollback then leaves no job behind. Photo files already stored stay, since
    files are shared by content and a later upload may reuse them.
    """
    settings = settings or get_settings()
    limits = limits or UploadLimits()
    version = _model_version(session, model_version_id)
    job = BatchJob(name=name[:255], submitted_by=submitted_by[:200], user_id=user_id, model_version_id=version.id)
    session.add(job)
    session.flush()

    position = 0
    candidates = 0
    for entry in entries:
        photo = Photo(job_id=job.id, position=position, original_name=entry.name[:1024])
        position += 1
        if is_junk_path(entry.name):
            _skip(photo, "system_file", SYSTEM_FILE)
        else:
            candidates += 1
            if candidates > limits.max_photos:
                raise UploadError("too_many_photos", f"The upload has more than {limits.max_photos} photos; "
                                  f"split it into several jobs.")
            _store(photo, entry, settings, limits)
        session.add(photo)
        if position % 500 == 0:
            session.flush()
    session.flush()

    if position == 0:
        raise UploadError("empty", "The upload contains no files.")
    _add_chunks(session, job, settings.chunk_size)
    refresh_counts(session, job.id)
    log.info("Created job %s: %d files, %d chunks, model version %d", job.id, position, len(job.chunks), version.id)
    return job


def _model_version(session: Session, model_version_id: int | None) -> ModelVersion:
    if model_version_id is not None:
        version = session.get(ModelVersion, model_version_id)
        if version is None:
            raise JobError("unknown_model", f"Model version {model_version_id} does not exist.")
        return version
    version = active_version(session)
    if version is None:
        raise JobError("no_model", "No model version is active yet; train one with `pandulce train DATASET "
                       "--out DIR --register` or activate one with `pandulce models activate`.")
    return version


def _skip(photo: Photo, code: str, reason: str) -> None:
    photo.status = PhotoStatus.SKIPPED
    photo.error_code = code
    photo.error = reason


def _store(photo: Photo, entry: UploadEntry, settings: Settings, limits: UploadLimits) -> None:
    try:
        with entry.open() as stream:
            header = stream.read(64)
            if not is_photo_candidate(entry.name, header):
                _skip(photo, "not_a_photo", NOT_A_PHOTO)
                return
            stored = store_stream(settings.data_dir, stream, limits.max_photo_bytes, prefix=header)
    except PhotoTooLarge as exc:
        photo.status, photo.error_code, photo.error = PhotoStatus.FAILED, "file_too_large", str(exc)
        return
    photo.stored_path = stored.relative_path
    photo.sha256 = stored.sha256
    photo.byte_size = stored.byte_size


def _add_chunks(session: Session, job: BatchJob, chunk_size: int, first_index: int = 0) -> list[int]:
    pending = session.scalars(
        select(Photo).where(Photo.job_id == job.id, Photo.status == PhotoStatus.PENDING).order_by(Photo.position)
    ).all()
    indices = []
    for offset in range(0, len(pending), chunk_size):
        index = first_index + offset // chunk_size
        members = pending[offset:offset + chunk_size]
        for photo in members:
            photo.chunk_index = index
        session.add(BatchChunk(job_id=job.id, index=index, photo_count=len(members)))
        indices.append(index)
    session.flush()
    return indices


def queued_chunk_indices(session: Session, job_id: str) -> list[int]:
    return list(session.scalars(select(BatchChunk.index).where(
        BatchChunk.job_id == job_id, BatchChunk.status == ChunkStatus.QUEUED).order_by(BatchChunk.index)))


def count_photos(session: Session, job_id: str) -> JobCounts:
    rows = dict(session.execute(
        select(Photo.status, func.count()).where(Photo.job_id == job_id).group_by(Photo.status)).all())
    get = lambda status: int(rows.get(status, 0))  # noqa: E731
    return JobCounts(total=sum(int(count) for count in rows.values()), done=get(PhotoStatus.DONE),
                     failed=get(PhotoStatus.FAILED), skipped=get(PhotoStatus.SKIPPED),
                     pending=get(PhotoStatus.PENDING), cancelled=get(PhotoStatus.CANCELLED))


def refresh_counts(session: Session, job_id: str) -> BatchJob:
    """Recount a job's photos from their rows and finish the job when none is pending.

    Counting from the rows, not incrementing, keeps the counts right when
    chunks finish concurrently or run twice.
    """
    counts = count_photos(session, job_id)
    job = session.get(BatchJob, job_id, populate_existing=True)
    job.total, job.done_count = counts.total, counts.done
    job.failed_count, job.skipped_count = counts.failed, counts.skipped
    if counts.pending == 0 and job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        job.status = JobStatus.FAILED if counts.done == 0 and counts.failed > 0 else JobStatus.DONE
        job.finished_at = utcnow()
        if job.status == JobStatus.FAILED:
            job.error = "No photo of this job could be classified."
    session.flush()
    return job


def cancel_job(session: Session, job: BatchJob) -> BatchJob:
    """Stop a queued or running job: its pending photos and queued chunks are cancelled."""
    if job.status in FINISHED:
        raise JobError("not_cancellable", f"Job {job.id} is already {job.status.value}.")
    session.execute(update(Photo).where(Photo.job_id == job.id, Photo.status == PhotoStatus.PENDING)
                    .values(status=PhotoStatus.CANCELLED, updated_at=utcnow()))
    session.execute(update(BatchChunk).where(BatchChunk.job_id == job.id, BatchChunk.status == ChunkStatus.QUEUED)
                    .values(status=ChunkStatus.CANCELLED))
    job.status = JobStatus.CANCELLED
    job.finished_at = utcnow()
    session.flush()
    return refresh_counts(session, job.id)


def _retryable(job_id: str):
    return (Photo.job_id == job_id, Photo.status == PhotoStatus.FAILED, Photo.stored_path.is_not(None),
            func.coalesce(Photo.error_code, "").not_in(PERMANENT_FAILURES))


def retryable_count(session: Session, job_id: str) -> int:
    """Count a job's failed photos that a retry could classify: those that failed for a passing reason."""
    return session.scalar(select(func.count()).select_from(Photo).where(*_retryable(job_id))) or 0


def retry_failed(session: Session, job: BatchJob, settings: Settings | None = None) -> list[int]:
    """Put a job's retryable failed photos back in the queue as new chunks; return their indices.

    Photos that failed because of their own content (damaged, not an image,
    too large) are left as they are: they would fail the same way again.
    """
    settings = settings or get_settings()
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise JobError("still_running", f"Job {job.id} is still {job.status.value}; retry when it has finished.")
    failed = session.execute(update(Photo).where(*_retryable(job.id))
                             .values(status=PhotoStatus.PENDING, error=None, error_code=None, chunk_index=None,
                                     updated_at=utcnow()).execution_options(synchronize_session=False))
    if not failed.rowcount:
        raise JobError("nothing_to_retry", f"Job {job.id} has no failed photos that a retry could classify.")
    first_index = (session.scalar(select(func.max(BatchChunk.index)).where(BatchChunk.job_id == job.id)) or 0) + 1
    indices = _add_chunks(session, job, settings.chunk_size, first_index)
    # The rate and the time left are measured from the retry on.
    job.status, job.started_at, job.finished_at, job.error = JobStatus.RUNNING, None, None, None
    refresh_counts(session, job.id)
    return indices


def job_rows(session: Session, job: BatchJob, page_size: int = 500) -> Iterator[dict]:
    """Yield one export row per photo of the job, in upload order, with every class's probability."""
    classes = list(job.model_version.classes)
    last_position = -1
    while True:
        photos = session.scalars(select(Photo).where(Photo.job_id == job.id, Photo.position > last_position)
                                 .order_by(Photo.position).limit(page_size)).all()
        if not photos:
            return
        predictions = prediction_map(session, [photo.id for photo in photos], job.model_version_id)
        for photo in photos:
            yield export_row(photo, predictions.get(photo.id), classes)
        last_position = photos[-1].position


def prediction_map(session: Session, photo_ids: list[int], model_version_id: int) -> dict[int, dict]:
    """Return {photo id: {top_class, top_probability, probabilities}} for one model version."""
    rows = session.execute(
        select(Prediction.id, Prediction.photo_id, Prediction.top_class, Prediction.top_probability)
        .where(Prediction.photo_id.in_(photo_ids), Prediction.model_version_id == model_version_id)
    ).all()
    by_prediction = {row.id: {"photo_id": row.photo_id, "top_class": row.top_class,
                              "top_probability": row.top_probability, "probabilities": {}} for row in rows}
    if by_prediction:
        for score in session.execute(select(PredictionScore).where(
                PredictionScore.prediction_id.in_(list(by_prediction))).order_by(PredictionScore.class_index)).scalars():
            by_prediction[score.prediction_id]["probabilities"][score.class_name] = score.probability
    return {entry["photo_id"]: entry for entry in by_prediction.values()}


def export_row(photo: Photo, prediction: dict | None, classes: list[str]) -> dict:
    return {
        "path": photo.original_name,
        "status": photo.status.value,
        "error": photo.error or "",
        "error_code": photo.error_code or "",
        "top_class": prediction["top_class"] if prediction else None,
        "top_probability": prediction["top_probability"] if prediction else None,
        "probabilities": {name: prediction["probabilities"].get(name) for name in classes} if prediction else None,
        "sha256": photo.sha256 or "",
        "width": photo.width,
        "height": photo.height,
    }


def photos_per_second(job: BatchJob, now: datetime | None = None) -> float | None:
    """Return the job's classification rate since its first chunk started, or None before that."""
    if job.started_at is None:
        return None
    end = job.finished_at or now or datetime.now(timezone.utc)
    started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=timezone.utc)
    end = end if end.tzinfo else end.replace(tzinfo=timezone.utc)
    seconds = (end - started).total_seconds()
    processed = job.done_count + job.failed_count
    return processed / seconds if seconds > 0 and processed else None
