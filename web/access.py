"""Look up jobs and photos for the signed-in user: another user's job is reported as missing."""

from __future__ import annotations

from flask import abort, g
from flask_babel import gettext as _
from sqlalchemy import Select, select

from pandulce.db import BatchJob, Photo
from web.database import get_db


def visible_jobs(query: Select) -> Select:
    """Limit a query on BatchJob to the jobs the signed-in user may see: their own, or all for an admin."""
    if g.user.is_admin:
        return query
    return query.where(BatchJob.user_id == g.user.id)


def load_job(job_id: str) -> BatchJob:
    """Return a job of the signed-in user, or abort with 404.

    Another user's job gets 404 rather than 403, so job ids cannot be probed.
    """
    job = get_db().scalar(visible_jobs(select(BatchJob).where(BatchJob.id == job_id[:36])))
    if job is None:
        abort(404, _("Job %(job_id)s doesn't exist.", job_id=job_id[:36]))
    return job


def load_photo(job: BatchJob, photo_id: int) -> Photo:
    """Return one photo of a job, or abort with 404."""
    photo = get_db().scalar(select(Photo).where(Photo.id == photo_id, Photo.job_id == job.id))
    if photo is None:
        abort(404, _("Photo %(photo_id)s doesn't exist in this job.", photo_id=photo_id))
    return photo
