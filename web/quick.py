"""The quick test: one photo (or a camera shot) in, the result on the same page, without a job.

The photo is stored by content and a worker classifies it ahead of queued
chunks. The result waits in Redis for ten minutes, and the page polls for it.
Request ids start with the user's id, so one user cannot read another's answer.
"""

from __future__ import annotations

import uuid

from flask import (Blueprint, abort, current_app, g, jsonify, redirect, render_template, request, send_file, session,
                   url_for)
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage

from pandulce.queue import enqueue_quick, fetch_quick_result
from pandulce.storage import PhotoTooLarge, resolve, store_stream
from training.photos import sniff_format
from web.auth import wants_json
from web.i18n import class_description, class_label, photo_error_text
from web.messages import WebError
from web.submit import QUEUE_ERRORS, check_queue

bp = Blueprint("quick", __name__, url_prefix="/quick")

# Quick tests whose photo the session keeps, to show it again on the no-script result page.
REMEMBERED_REQUESTS = 10


@bp.route("/", methods=("GET",))
def quick_page():
    """Show the quick-test form."""
    limits = current_app.config["UPLOAD_LIMITS"]
    return render_template("quick/quick.html", max_photo_bytes=limits.max_photo_bytes)


@bp.route("/", methods=("POST",))
def submit():
    """Store one photo and ask a worker to classify it."""
    photo = next((file for file in request.files.getlist("photo") if file.filename), None)

    request_id, stored_path = start_quick_test(photo, g.user.id)

    remembered = dict(session.get("quick_photos", {}))
    remembered[request_id] = stored_path
    session["quick_photos"] = dict(list(remembered.items())[-REMEMBERED_REQUESTS:])
    if wants_json():
        return jsonify(request_id=request_id, result_url=url_for("quick.result", request_id=request_id)), 202
    return redirect(url_for("quick.result_page", request_id=request_id), code=303)


def start_quick_test(photo: FileStorage | None, user_id: int) -> tuple[str, str]:
    """Check and store the photo, then queue it; return (request id, stored path) or raise WebError."""
    settings = current_app.config["SETTINGS"]
    limits = current_app.config["UPLOAD_LIMITS"]
    if photo is None or not (photo.filename or photo.content_length):
        raise WebError("no_file", 400, _("Choose a photo or take one with the camera."))
    header = photo.stream.read(64)
    if sniff_format(header) is None:
        # The sentence for one photo, not the upload's "None of the uploaded files…".
        raise WebError("not_an_image", 400, photo_error_text("not_an_image", None))
    check_queue(settings)

    try:
        stored = store_stream(settings.data_dir, photo.stream, limits.max_photo_bytes, prefix=header)
    except PhotoTooLarge as exc:
        raise WebError.from_code("file_too_large") from exc
    request_id = f"{user_id}-{uuid.uuid4().hex}"
    try:
        enqueue_quick(request_id, stored.relative_path, settings)
    except QUEUE_ERRORS as exc:
        raise WebError.from_code("queue_unavailable") from exc
    return request_id, stored.relative_path


@bp.route("/<request_id>/result")
def result(request_id):
    """Return the result as JSON, with status pending until a worker has classified the photo."""
    return jsonify(quick_answer(request_id, g.user.id))


@bp.route("/<request_id>")
def result_page(request_id):
    """Show the result on a page that reloads itself until it arrives (for browsers without scripts)."""
    answer = quick_answer(request_id, g.user.id)
    return render_template("quick/result.html", answer=answer, request_id=request_id,
                           has_photo=request_id in session.get("quick_photos", {}))


@bp.route("/<request_id>/photo")
def photo(request_id):
    """Send the photo of one of this session's quick tests."""
    stored_path = session.get("quick_photos", {}).get(request_id)
    if stored_path is None or not request_id.startswith(f"{g.user.id}-"):
        abort(404, _("This quick test's photo is no longer available."))
    return send_file(resolve(current_app.config["SETTINGS"].data_dir, stored_path))


def quick_answer(request_id: str, user_id: int) -> dict:
    """Return the worker's result in the current language, or {"status": "pending"}."""
    if not request_id.startswith(f"{user_id}-") or len(request_id) > 80:
        abort(404, _("Quick test %(request_id)s doesn't exist.", request_id=request_id[:80]))
    try:
        answer = fetch_quick_result(request_id, current_app.config["SETTINGS"])
    except QUEUE_ERRORS as exc:
        raise WebError.from_code("queue_unavailable") from exc
    if answer is None:
        return {"request_id": request_id, "status": "pending"}

    probabilities = answer.get("probabilities") or {}
    ranked = sorted(probabilities.items(), key=lambda pair: pair[1], reverse=True)
    return {
        "request_id": request_id,
        "status": answer["status"],
        "error_code": answer.get("error_code"),
        "error": photo_error_text(answer.get("error_code"), answer.get("error")) if answer["status"] != "ok" else None,
        "top_class": answer.get("top_class"),
        "top_label": class_label(answer.get("top_class")),
        "top_probability": answer.get("top_probability"),
        "description": class_description(answer.get("top_class")),
        "probabilities": [{"class": name, "label": class_label(name), "probability": probability}
                          for name, probability in ranked],
        "width": answer.get("width"),
        "height": answer.get("height"),
        "model_version_id": answer.get("model_version_id"),
    }
