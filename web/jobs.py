"""The list of jobs, a job's page with its live progress bar, and cancel and retry."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import format_decimal, format_timedelta, gettext as _, ngettext
from sqlalchemy import func, select

from pandulce.db import BatchJob, JobStatus
from pandulce.jobs import JobError, cancel_job, photos_per_second, retry_failed, retryable_count
from web.access import load_job, visible_jobs
from web.database import get_db
from web.i18n import age, job_status_label
from web.messages import WebError
from web.submit import check_queue, enqueue_or_cancel

bp = Blueprint("jobs", __name__, url_prefix="/jobs")

JOBS_PER_PAGE = 25


@bp.route("/")
def index():
    """List the signed-in user's jobs, newest first."""
    page = max(1, request.args.get("page", 1, type=int))

    query = visible_jobs(select(BatchJob))
    total = get_db().scalar(select(func.count()).select_from(query.subquery()))
    jobs = get_db().scalars(query.order_by(BatchJob.created_at.desc())
                            .limit(JOBS_PER_PAGE).offset((page - 1) * JOBS_PER_PAGE)).all()
    pages = max(1, math.ceil(total / JOBS_PER_PAGE))
    return render_template("jobs/index.html", jobs=jobs, page=page, pages=pages, total=total)


@bp.route("/<job_id>")
def job_page(job_id):
    """Show a job with its live progress bar and its actions."""
    job = load_job(job_id)
    retryable = retryable_count(get_db(), job.id) if job.finished else 0
    return render_template("jobs/job.html", job=job, status=job_status(job), retryable=retryable)


@bp.route("/<job_id>/status")
def status(job_id):
    """Return the job's counts, rate and estimated time left, for the progress bar."""
    return jsonify(job_status(load_job(job_id)))


@bp.route("/<job_id>/cancel", methods=("POST",))
def cancel(job_id):
    """Cancel a queued or running job."""
    job = load_job(job_id)

    stop_job(job)
    flash(_("The job was cancelled; photos already classified keep their results."), "info")
    return redirect(url_for("jobs.job_page", job_id=job.id), code=303)


@bp.route("/<job_id>/retry", methods=("POST",))
def retry(job_id):
    """Queue the job's failed photos again, except those whose file would fail the same way."""
    job = load_job(job_id)
    count = retryable_count(get_db(), job.id)

    retry_job(job)

    flash(ngettext("%(num)s failed photo is queued again.", "%(num)s failed photos are queued again.", count),
          "info")
    return redirect(url_for("jobs.job_page", job_id=job.id), code=303)


def stop_job(job: BatchJob) -> None:
    """Cancel a queued or running job, or raise WebError when it has already ended."""
    try:
        cancel_job(get_db(), job)
    except JobError as exc:
        raise WebError.from_code(exc.code, str(exc)) from exc
    get_db().commit()


def retry_job(job: BatchJob) -> list[int]:
    """Put a job's retryable failed photos back in the queue; raise WebError when there are none or it still runs."""
    settings = current_app.config["SETTINGS"]
    check_queue(settings)
    try:
        chunks = retry_failed(get_db(), job, settings)
    except JobError as exc:
        raise WebError.from_code(exc.code, str(exc)) from exc
    get_db().commit()
    enqueue_or_cancel(get_db(), job.id, chunks, settings)
    return chunks


def job_status(job: BatchJob) -> dict:
    """Return a job's progress as the pages and the API report it.

    Read from the counts on the job's row, which the workers keep current,
    so that many clients polling a large job cost one primary-key lookup each.
    """
    cancelled = 0
    pending = max(0, job.total - job.done_count - job.failed_count - job.skipped_count)
    if job.status == JobStatus.CANCELLED:
        cancelled, pending = pending, 0
    # NOTE: a cancelled job whose failed photos were retried counts its cancelled
    # photos as pending here until it finishes; the row has no cancelled count.
    processed = job.done_count + job.failed_count
    to_process = processed + pending
    percent = 100.0 if job.finished or to_process == 0 else round(100.0 * processed / to_process, 1)
    rate = photos_per_second(job)
    eta = None
    if not job.finished and rate:
        eta = math.ceil(pending / rate)
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status.value,
        "status_label": job_status_label(job.status.value),
        "finished": job.finished,
        "total": job.total,
        "done": job.done_count,
        "failed": job.failed_count,
        "skipped": job.skipped_count,
        "cancelled": cancelled,
        "pending": pending,
        "percent": percent,
        "photos_per_second": round(rate, 2) if rate else None,
        "eta_seconds": eta,
        "eta_text": format_timedelta(eta, granularity="second", threshold=1.1) if eta is not None else None,
        "rate_text": rate_text(rate),
        "error": job.error,
        "created_at": iso(job.created_at),
        "created_age": age(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "model_version_id": job.model_version_id,
    }


def rate_text(rate: float | None) -> str | None:
    """Return the classification rate in words of the current language ("2.5 photos per second")."""
    if not rate:
        return None
    rounded = round(rate, 2)
    # Plural rules take whole numbers, so a rate with decimals, which is plural
    # in Spanish and English, is passed as 2.
    count = int(rounded) if rounded.is_integer() else 2
    return ngettext("%(rate)s photo per second", "%(rate)s photos per second", count, rate=format_decimal(rounded))


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat()
