"""Turn a finished upload session into a queued batch job, or into one clear error with nothing left behind."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

import redis
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.orm import Session

from pandulce.config import Settings
from pandulce.db import BatchJob, PhotoStatus
from pandulce.jobs import JobError, cancel_job, count_photos, create_job, queued_chunk_indices
from pandulce.queue import enqueue_chunks
from pandulce.uploads import UploadError, UploadLimits
from web.accounts import SignedInUser
from web.messages import WebError
from web.upload_sessions import ReceivedFile, UploadSession

log = logging.getLogger(__name__)

QUEUE_ERRORS = (BrokerError, redis.RedisError, OSError)


def check_queue(settings: Settings) -> None:
    """Raise WebError queue_unavailable unless Redis responds to a ping, before anything is written."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        log.error("Redis at %s did not answer: %s", settings.redis_url.split("@")[-1], exc)
        raise WebError.from_code("queue_unavailable") from exc
    finally:
        client.close()


def submit_upload(session: Session, upload: UploadSession, name: str, user: SignedInUser, settings: Settings,
                  limits: UploadLimits) -> str:
    """Create a job from every file of the upload, queue its chunks, delete the upload; return the job id.

    Raises WebError when the upload breaks a limit or contains nothing to
    classify. The job's rows are then rolled back and the upload is kept, so
    that the page's script can finish it again after a queue failure.
    """
    check_queue(settings)
    received = upload.received()
    if not received:
        raise WebError.from_code("empty")
    if not any(item.image_format or item.is_zip for item in received):
        raise WebError.from_code("not_an_image")

    try:
        job = create_job(session, upload.entries(limits), name=name.strip() or default_job_name(received),
                         submitted_by=f"web:{user.username}", user_id=user.id, settings=settings, limits=limits)
        _check_classifiable(session, job)
        job_id, chunks = job.id, queued_chunk_indices(session, job.id)
        session.commit()
    except (UploadError, JobError) as exc:
        session.rollback()
        raise WebError.from_code(exc.code, str(exc)) from exc
    except WebError:
        session.rollback()
        raise

    enqueue_or_cancel(session, job_id, chunks, settings)
    upload.discard()
    return job_id


def _check_classifiable(session: Session, job: BatchJob) -> None:
    counts = count_photos(session, job.id)
    if counts.pending:
        return
    failed_codes = {photo.error_code for photo in job.photos if photo.status == PhotoStatus.FAILED}
    raise WebError.from_code("file_too_large" if failed_codes == {"file_too_large"} else "no_photos")


def enqueue_or_cancel(session: Session, job_id: str, chunks: list[int], settings: Settings) -> None:
    """Send a committed job's chunks to the queue; if Redis fails, cancel the job and raise queue_unavailable."""
    if not chunks:
        return
    try:
        enqueue_chunks(job_id, chunks, settings)
    except QUEUE_ERRORS as exc:
        log.error("Could not queue job %s; cancelling it", job_id, exc_info=True)
        job = session.get(BatchJob, job_id)
        cancel_job(session, job)
        job.error = f"The queue could not be reached: {exc}"
        session.commit()
        raise WebError.from_code("queue_unavailable") from exc


def default_job_name(received: list[ReceivedFile]) -> str:
    """Name a job after the uploaded folder or zip, or after its first file."""
    first = PurePosixPath(received[0].name.replace("\\", "/"))
    if len(first.parts) > 1:
        return first.parts[0]
    if received[0].is_zip:
        return first.stem or first.name
    extra = len(received) - 1
    return f"{first.name} (+{extra})" if extra else first.name
