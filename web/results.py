"""A job's results: the grid and the table, one photo's page, thumbnails, images and the exports."""

from __future__ import annotations

from typing import Iterator

from flask import Blueprint, Response, abort, current_app, render_template, request, send_file, url_for
from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from pandulce.db import BatchJob, Photo, get_sessionmaker
from pandulce.exports import render
from pandulce.jobs import job_rows, prediction_map
from web.access import load_job, load_photo
from web.browse import parse_filter, query_results
from web.database import get_db
from web.i18n import photo_error_texts
from web.messages import WebError
from web.thumbnails import display_file, thumbnail_file

bp = Blueprint("results", __name__, url_prefix="/jobs/<job_id>")

# Full Content-Type values: passed as content_type, so Werkzeug adds no second charset.
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
# CSV columns after the base ones of pandulce.exports, before the probabilities.
EXPORT_EXTRA_COLUMNS = ("error_code", "sha256", "width", "height")
EXPORT_PAGE_SIZE = 500
# Thumbnails and images are named by content, so browsers may keep them for good.
IMMUTABLE = "private, max-age=31536000, immutable"
VIEWS = ("grid", "table")


@bp.route("/results")
def results(job_id):
    """Show a page of the job's photos as a grid or a table, filtered and sorted."""
    job = load_job(job_id)
    classes = list(job.model_version.classes)
    view = request.args.get("view") if request.args.get("view") in VIEWS else "grid"

    limits = {"scale": 100, "default_per_page": current_app.config["RESULTS_PER_PAGE"],
              "max_per_page": current_app.config["RESULTS_MAX_PER_PAGE"]}
    filter_error = None
    try:
        result_filter = parse_filter(request.args, classes, **limits)
    except WebError as error:
        # Keep the filter form on screen: show every photo, with the reason the filter was not applied.
        filter_error = error.message
        result_filter = parse_filter(MultiDict(), classes, **limits)
    page = query_results(get_db(), job, result_filter)
    html = render_template("results/results.html", job=job, classes=classes, page=page, view=view,
                           result_filter=result_filter, page_url=page_url, filter_error=filter_error)
    return html, 400 if filter_error else 200


@bp.app_template_filter("breakable_path")
def breakable_path(name: str) -> Markup:
    """Escape a photo's path and let browsers wrap it after each slash rather than inside a file name."""
    return Markup("/<wbr>").join(escape(part) for part in name.split("/"))


def page_url(page: int) -> str:
    """Return the address of another page of the same results."""
    arguments = request.args.to_dict()
    arguments["page"] = str(page)
    return url_for(request.endpoint, **request.view_args, **arguments)


@bp.route("/photos/<int:photo_id>")
def photo_page(job_id, photo_id):
    """Show one photo full size with every class's probability and the predicted type's description."""
    job = load_job(job_id)
    photo = load_photo(job, photo_id)

    prediction = prediction_map(get_db(), [photo.id], job.model_version_id).get(photo.id)
    neighbours = photo_neighbours(job, photo)
    back = request.args.get("back", "")
    back_url = url_for("results.results", job_id=job.id) + ("?" + back if back else "")
    return render_template("results/photo.html", job=job, photo=photo, prediction=prediction,
                           ranked=ranked_probabilities(prediction), neighbours=neighbours, back=back,
                           back_url=back_url)


def ranked_probabilities(prediction: dict | None) -> list[tuple[str, float]]:
    if not prediction:
        return []
    return sorted(prediction["probabilities"].items(), key=lambda pair: pair[1], reverse=True)


def photo_neighbours(job: BatchJob, photo: Photo) -> dict:
    """Return the ids of the photos before and after this one in upload order."""
    previous = get_db().scalar(select(Photo.id).where(Photo.job_id == job.id, Photo.position < photo.position)
                               .order_by(Photo.position.desc()).limit(1))
    following = get_db().scalar(select(Photo.id).where(Photo.job_id == job.id, Photo.position > photo.position)
                                .order_by(Photo.position).limit(1))
    return {"previous": previous, "next": following}


@bp.route("/photos/<int:photo_id>/thumbnail")
def thumbnail(job_id, photo_id):
    """Send the photo's cached thumbnail."""
    photo = load_photo(load_job(job_id), photo_id)
    return send_thumbnail(photo)


@bp.route("/photos/<int:photo_id>/image")
def image(job_id, photo_id):
    """Send the photo full size, converted to JPEG when browsers cannot show its format."""
    photo = load_photo(load_job(job_id), photo_id)
    return send_image(photo)


def send_thumbnail(photo: Photo) -> Response:
    settings = current_app.config["SETTINGS"]
    path = thumbnail_file(settings, photo.stored_path, photo.sha256) if photo.stored_path else None
    if path is None:
        return placeholder()
    response = send_file(path, mimetype="image/jpeg", etag=photo.sha256, conditional=True)
    response.headers["Cache-Control"] = IMMUTABLE
    return response


def send_image(photo: Photo) -> Response:
    settings = current_app.config["SETTINGS"]
    shown = display_file(settings, photo.stored_path, photo.sha256) if photo.stored_path else None
    if shown is None:
        abort(404, _("Photo %(photo_id)s has no image that can be shown.", photo_id=photo.id))
    path, mimetype = shown
    response = send_file(path, mimetype=mimetype, etag=photo.sha256, conditional=True)
    response.headers["Cache-Control"] = IMMUTABLE
    return response


def placeholder() -> Response:
    """Send the picture shown for a file that has no thumbnail (not a photo, or unreadable)."""
    response = send_file(current_app.static_folder + "/no-photo.svg", mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.route("/export.<file_format>")
def export(job_id, file_format):
    """Stream the job's results as CSV or JSONL: one row per photo with every class's probability."""
    job = load_job(job_id)
    return export_response(job, file_format)


def export_response(job: BatchJob, file_format: str) -> Response:
    """Stream a job's export, with failure reasons in the request's language."""
    if file_format not in EXPORT_TYPES:
        abort(404, _("Exports are CSV or JSONL, not %(format)s.", format=file_format[:16]))
    # Translated now: the body is streamed after the request context has ended.
    error_texts = photo_error_texts()
    body = export_body(current_app.config["DATABASE_URL"], job.id, file_format, error_texts)
    response = Response(body, content_type=EXPORT_TYPES[file_format])
    response.headers["Content-Disposition"] = f'attachment; filename="job-{job.id[:8]}.{file_format}"'
    return response


def export_body(database_url: str, job_id: str, file_format: str, error_texts: dict[str, str]) -> Iterator[str]:
    """Yield the export piece by piece from a session of its own.

    The response is streamed after the request's teardown has closed the
    request's session, so the rows are read through a session that this
    generator opens and closes itself.
    """
    session = get_sessionmaker(database_url)()
    try:
        job = session.get(BatchJob, job_id)
        yield from render(export_rows(session, job, error_texts), list(job.model_version.classes), file_format,
                          extra=EXPORT_EXTRA_COLUMNS)
    finally:
        session.close()


def export_rows(session: Session, job: BatchJob, error_texts: dict[str, str]) -> Iterator[dict]:
    """Yield the job's export rows with each failure reason in the page language.

    A reason whose code has no translation keeps the worker's English sentence.
    """
    for row in job_rows(session, job, page_size=EXPORT_PAGE_SIZE):
        if row["error_code"]:
            row["error"] = error_texts.get(row["error_code"], row["error"])
        yield row
