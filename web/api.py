"""The JSON API under /api/v1: everything the pages do, for scripts, with per-user Bearer tokens.

Errors are {"error": code, "message": sentence}. The API takes probabilities
as fractions from 0 to 1; the pages take them in percent.
"""

from __future__ import annotations

import math

from flask import Blueprint, current_app, g, jsonify, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from pandulce.db import BatchJob, TrainingRun, User
from pandulce.jobs import prediction_map
from training.classes import REFERENCE_CLASSES
from web.access import load_job, load_photo, visible_jobs
from web.accounts import SignedInUser, user_for_token
from web.browse import parse_filter, photo_summary, query_results
from web.database import get_db
from web.errors import error_response
from web.i18n import class_description, class_label, photo_error_text
from web.jobs import job_status, retry_job, stop_job
from web.messages import WebError
from web.model_versions import (activate_as_admin, list_versions, load_version, send_plot, version_detail,
                                version_summary)
from web.openapi import openapi_document
from web.quick import quick_answer, start_quick_test
from web.results import export_response, send_image, send_thumbnail
from web.submit import submit_upload
from web.training_runs import load_run, run_json, start_training
from web.uploads import open_session, start_session, store_batch

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_JOBS_PER_PAGE = 100
MAX_RUNS_PER_PAGE = 100


@bp.before_request
def authenticate_token():
    """Sign the request in with its Bearer token; session cookies do not count here."""
    scheme, _space, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return unauthorized("unauthorized", _("Send an API token in the header: Authorization: Bearer TOKEN."))
    user = user_for_token(get_db(), token.strip())
    if user is None:
        return unauthorized("invalid_token", _("The API token is invalid or has been revoked."))
    g.user = SignedInUser.from_row(user)
    return None


def unauthorized(code: str, message: str):
    response, status = error_response(401, code, message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="pandulce"'
    return response, status


@bp.route("/openapi.json")
def openapi():
    """Return the OpenAPI 3 document of this API."""
    return jsonify(openapi_document())


@bp.route("/me")
def me():
    """Return the signed-in user."""
    user = get_db().get(User, g.user.id)
    return jsonify(id=user.id, username=user.username, is_admin=user.is_admin, language=user.language)


@bp.route("/classes")
def classes():
    """Return the active model's classes with display names and descriptions in the request's language."""
    from pandulce.registry import active_version

    version = active_version(get_db())
    names = list(version.classes) if version is not None else list(REFERENCE_CLASSES)
    return jsonify(model_version_id=version.id if version is not None else None,
                   classes=[{"class": name, "label": class_label(name), "description": class_description(name)}
                            for name in names])


@bp.route("/models")
def list_models():
    """List the model versions, newest first, with their test accuracy and weighted F1."""
    versions = [version_summary(version) for version in list_versions()]
    active = next((version["id"] for version in versions if version["is_active"]), None)
    return jsonify(active_model_version_id=active, models=versions)


@bp.route("/models/<int:version_id>")
def get_model(version_id):
    """Return a model version with its test metrics, training settings, weights source and plot addresses."""
    return jsonify(version_detail(load_version(version_id), "api.model_plot"))


@bp.route("/models/<int:version_id>/plots/<name>.png")
def model_plot(version_id, name):
    """Send one of a model version's training plots as PNG."""
    return send_plot(load_version(version_id), name)


@bp.route("/models/<int:version_id>/activate", methods=("POST",))
def activate_model(version_id):
    """Make a model version the one new jobs use. Only administrators may do this."""
    version = activate_as_admin(version_id)
    return jsonify(version_summary(version))


@bp.route("/models/train", methods=("POST",))
def train_model():
    """Queue a training run on the zip of class folders in the `dataset` field. Only administrators may do this."""
    run, dataset = start_training(request.files.get("dataset"), request.form)

    response = jsonify(dict(run_json(run), photo_count=dataset.photo_count, class_counts=dataset.class_counts,
                            skipped=dataset.skipped))
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_training_run", run_id=run.id)
    return response


@bp.route("/training-runs")
def list_training_runs():
    """List the training runs, newest first."""
    page = _page_argument("page", 1, 1_000_000, 1)
    per_page = _page_argument("per_page", 1, MAX_RUNS_PER_PAGE, 25)

    total = get_db().scalar(select(func.count()).select_from(TrainingRun))
    runs = get_db().scalars(select(TrainingRun).order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())
                            .limit(per_page).offset((page - 1) * per_page)).all()
    return jsonify(page=page, per_page=per_page, total=total, pages=max(1, math.ceil(total / per_page)),
                   training_runs=[run_json(run) for run in runs])


@bp.route("/training-runs/<int:run_id>")
def get_training_run(run_id):
    """Return a training run with its progress and every finished epoch's record."""
    return jsonify(run_json(load_run(run_id), with_history=True))


@bp.route("/jobs", methods=("GET",))
def list_jobs():
    """List the user's jobs, newest first."""
    page = _page_argument("page", 1, 1_000_000, 1)
    per_page = _page_argument("per_page", 1, MAX_JOBS_PER_PAGE, 25)

    query = visible_jobs(select(BatchJob))
    total = get_db().scalar(select(func.count()).select_from(query.subquery()))
    jobs = get_db().scalars(query.order_by(BatchJob.created_at.desc()).limit(per_page)
                            .offset((page - 1) * per_page)).all()
    return jsonify(page=page, per_page=per_page, total=total, pages=max(1, math.ceil(total / per_page)),
                   jobs=[job_status(job) for job in jobs])


def _page_argument(key: str, low: int, high: int, default: int) -> int:
    raw = request.args.get(key, "")
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise WebError("bad_request", 400, _("%(key)s must be a whole number from %(low)s to %(high)s, not "
                                             "%(value)s.", key=key, low=low, high=high, value=raw[:32]))
    return int(raw)


@bp.route("/jobs", methods=("POST",))
def create_job():
    """Create a job from the photos (or zips) in the `photos` file fields and queue it."""
    files = request.files.getlist("photos")
    name = request.form.get("name", "")

    upload = start_session()
    try:
        store_batch(upload, 0, files, request.form.get("names"))
        job_id = submit_upload(get_db(), upload, name, g.user, _settings(), _limits())
    except BaseException:
        upload.discard()
        raise
    return _created_job(job_id)


def _created_job(job_id: str):
    job = get_db().get(BatchJob, job_id)
    response = jsonify(job_status(job))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_job", job_id=job_id)
    return response


@bp.route("/uploads", methods=("POST",))
def create_upload():
    """Start an upload session, for photo sets too large for one request."""
    upload = start_session()
    return jsonify(upload_id=upload.upload_id, batch_files=current_app.config["UPLOAD_BATCH_FILES"],
                   files_url=url_for("api.add_upload_files", upload_id=upload.upload_id),
                   finish_url=url_for("api.finish_upload", upload_id=upload.upload_id)), 201


@bp.route("/uploads/<upload_id>/files", methods=("POST",))
def add_upload_files(upload_id):
    """Add one numbered batch of files to an upload session; resending a batch number replaces it."""
    upload = open_session(upload_id)
    batch = request.form.get("batch", "")

    if not batch.isdigit():
        raise WebError.from_code("bad_batch")

    received = store_batch(upload, int(batch), request.files.getlist("photos"), request.form.get("names"))
    return jsonify(upload_id=upload_id, batch=int(batch), received=len(received))


@bp.route("/uploads/<upload_id>/finish", methods=("POST",))
def finish_upload(upload_id):
    """Create the job from every batch of the upload session and queue it."""
    upload = open_session(upload_id)
    name = request.form.get("name", "") or (request.get_json(silent=True) or {}).get("name", "")

    job_id = submit_upload(get_db(), upload, str(name), g.user, _settings(), _limits())
    return _created_job(job_id)


@bp.route("/uploads/<upload_id>", methods=("DELETE",))
def delete_upload(upload_id):
    """Drop an upload session and its files."""
    open_session(upload_id).discard()
    return "", 204


@bp.route("/jobs/<job_id>", methods=("GET",))
def get_job(job_id):
    """Return a job's status: counts, photos per second and estimated time left."""
    return jsonify(job_status(load_job(job_id)))


@bp.route("/jobs/<job_id>/cancel", methods=("POST",))
def cancel(job_id):
    """Cancel a queued or running job."""
    job = load_job(job_id)

    stop_job(job)
    return jsonify(job_status(job))


@bp.route("/jobs/<job_id>/retry", methods=("POST",))
def retry(job_id):
    """Queue a finished job's failed photos again, except those whose file would fail the same way."""
    job = load_job(job_id)

    chunks = retry_job(job)
    return jsonify(dict(job_status(job), retried_chunks=len(chunks)))


@bp.route("/jobs/<job_id>/results")
def results(job_id):
    """Return one page of the job's photos, filtered and sorted like the results page."""
    job = load_job(job_id)
    result_filter = parse_filter(request.args, list(job.model_version.classes), scale=1.0,
                                 default_per_page=100, max_per_page=current_app.config["RESULTS_MAX_PER_PAGE"])

    page = query_results(get_db(), job, result_filter)
    return jsonify(job_id=job.id, page=page.page, per_page=page.per_page, total=page.total, pages=page.pages,
                   photos=[_photo_json(job, photo) for photo in page.photos])


@bp.route("/jobs/<job_id>/photos/<int:photo_id>")
def photo(job_id, photo_id):
    """Return one photo with every class's probability and the predicted type's description."""
    job = load_job(job_id)
    photo_row = load_photo(job, photo_id)

    prediction = prediction_map(get_db(), [photo_row.id], job.model_version_id).get(photo_row.id)
    summary = photo_summary(photo_row, prediction["top_class"] if prediction else None,
                            prediction["top_probability"] if prediction else None, prediction)
    return jsonify(dict(_photo_json(job, summary), description=class_description(summary["top_class"])))


def _photo_json(job: BatchJob, summary: dict) -> dict:
    photo_id = summary["id"]
    return dict(
        summary,
        top_label=class_label(summary["top_class"]),
        error=photo_error_text(summary["error_code"], summary["error"]) or None,
        thumbnail_url=url_for("api.thumbnail", job_id=job.id, photo_id=photo_id),
        image_url=url_for("api.image", job_id=job.id, photo_id=photo_id),
    )


@bp.route("/jobs/<job_id>/photos/<int:photo_id>/thumbnail")
def thumbnail(job_id, photo_id):
    """Send a photo's thumbnail (JPEG, at most 320 pixels a side)."""
    return send_thumbnail(load_photo(load_job(job_id), photo_id))


@bp.route("/jobs/<job_id>/photos/<int:photo_id>/image")
def image(job_id, photo_id):
    """Send a photo full size."""
    return send_image(load_photo(load_job(job_id), photo_id))


@bp.route("/jobs/<job_id>/export.<file_format>")
def export(job_id, file_format):
    """Stream the job's results as CSV or JSONL."""
    return export_response(load_job(job_id), file_format)


@bp.route("/quick", methods=("POST",))
def quick():
    """Queue one photo for a quick test, outside any job."""
    photo_file = next((file for file in request.files.getlist("photo") if file.filename), None)
    request_id, _stored_path = start_quick_test(photo_file, g.user.id)
    return jsonify(request_id=request_id, result_url=url_for("api.quick_result", request_id=request_id)), 202


@bp.route("/quick/<request_id>")
def quick_result(request_id):
    """Return a quick test's result, with status pending until a worker has classified the photo."""
    return jsonify(quick_answer(request_id, g.user.id))


def _settings():
    return current_app.config["SETTINGS"]


def _limits():
    return current_app.config["UPLOAD_LIMITS"]
