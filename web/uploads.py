"""The upload page: photos, a folder or a zip, sent in batches by the page's script or in one plain form."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import FileStorage

from pandulce.uploads import UploadError
from web.database import get_db
from web.messages import WebError
from web.submit import submit_upload
from web.upload_sessions import UploadSession, UploadSessionError, remove_stale_sessions

bp = Blueprint("uploads", __name__)


def limits_summary() -> dict:
    """Return the upload limits as shown on the page and sent to its script."""
    limits = current_app.config["UPLOAD_LIMITS"]
    return {
        "max_photo_bytes": limits.max_photo_bytes,
        "max_photos": limits.max_photos,
        "max_zip_expanded_bytes": limits.max_zip_expanded_bytes,
        "batch_files": current_app.config["UPLOAD_BATCH_FILES"],
    }


@bp.route("/upload", methods=("GET",))
def upload_page():
    """Show the upload page with its limits."""
    return render_template("uploads/upload.html", limits=limits_summary())


@bp.route("/upload", methods=("POST",))
def upload_form():
    """Create a job from the plain form (no JavaScript) and show its page."""
    files = request.files.getlist("photos") + request.files.getlist("folder")
    name = request.form.get("name", "")

    upload = start_session()
    try:
        store_batch(upload, 0, files, names=None)
        job_id = submit_upload(get_db(), upload, name, g.user, settings(), limits())
    except BaseException:
        upload.discard()
        raise
    return redirect(url_for("jobs.job_page", job_id=job_id), code=303)


@bp.route("/uploads", methods=("POST",))
def create_session():
    """Start an upload session for the page's script."""
    upload = start_session()
    return jsonify(upload_id=upload.upload_id, limits=limits_summary(),
                   files_url=url_for("uploads.add_files", upload_id=upload.upload_id),
                   finish_url=url_for("uploads.finish", upload_id=upload.upload_id),
                   cancel_url=url_for("uploads.cancel", upload_id=upload.upload_id)), 201


@bp.route("/uploads/<upload_id>/files", methods=("POST",))
def add_files(upload_id):
    """Receive one batch of files of an upload session."""
    upload = open_session(upload_id)
    batch = request.form.get("batch", "")
    files = request.files.getlist("photos")
    names = request.form.get("names")

    if not batch.isdigit():
        raise WebError.from_code("bad_batch")

    received = store_batch(upload, int(batch), files, names)
    return jsonify(batch=int(batch), received=len(received))


@bp.route("/uploads/<upload_id>/finish", methods=("POST",))
def finish(upload_id):
    """Create the job from every batch received and return the job page's address."""
    upload = open_session(upload_id)
    name = request.form.get("name", "")

    job_id = submit_upload(get_db(), upload, name, g.user, settings(), limits())
    return jsonify(job_id=job_id, job_url=url_for("jobs.job_page", job_id=job_id)), 201


@bp.route("/uploads/<upload_id>/cancel", methods=("POST",))
def cancel(upload_id):
    """Drop an upload session and its files."""
    open_session(upload_id).discard()
    return jsonify(upload_id=upload_id, cancelled=True)


def settings():
    return current_app.config["SETTINGS"]


def limits():
    return current_app.config["UPLOAD_LIMITS"]


def start_session() -> UploadSession:
    """Start an upload session for the signed-in user, clearing out abandoned ones first."""
    uploads_dir = settings().uploads_dir
    remove_stale_sessions(uploads_dir, current_app.config["UPLOAD_SESSION_MAX_AGE_H"] * 3600)
    return UploadSession.create(uploads_dir, g.user.id)


def open_session(upload_id: str) -> UploadSession:
    try:
        return UploadSession.open(settings().uploads_dir, upload_id, g.user.id)
    except UploadSessionError as exc:
        raise WebError.from_code(exc.code, str(exc)) from exc


def store_batch(upload: UploadSession, index: int, files: list[FileStorage], names: str | None) -> list:
    """Store uploaded files under their names as sent (the `names` JSON list when the script sends one)."""
    files = [file for file in files if file.filename or file.content_length]
    display_names = [file.filename or "" for file in files]
    if names is not None:
        try:
            display_names = json.loads(names)
        except ValueError:
            display_names = None
        if (not isinstance(display_names, list) or len(display_names) != len(files)
                or not all(isinstance(name, str) for name in display_names)):
            raise WebError.from_code("bad_batch")
    if not files:
        raise WebError.from_code("empty")

    try:
        return upload.add_batch(index, [(name or "photo", file.stream) for name, file in zip(display_names, files)],
                                limits())
    except (UploadError, UploadSessionError) as exc:
        raise WebError.from_code(exc.code, str(exc)) from exc
