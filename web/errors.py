"""Error pages for people and `{"error": code, "message": sentence}` bodies for the API and the pages' scripts."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from web.auth import wants_json
from web.database import rollback_db
from web.messages import WebError

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    500: "internal_error",
    503: "unavailable",
}


def default_message(status: int) -> str:
    messages = {
        400: _("The request is invalid."),
        401: _("Sign in first."),
        403: _("You do not have access to this page."),
        404: _("The page does not exist."),
        405: _("This address does not accept that method."),
        413: _("The upload is too large."),
        500: _("Something went wrong on the server; the error has been logged."),
        503: _("The service is unavailable; try again in a minute."),
    }
    return messages.get(status, _("The request failed."))


def json_wanted() -> bool:
    return request.path.startswith("/api/") or wants_json()


def error_response(status: int, code: str, message: str):
    """Respond with a JSON error or an error page, whichever the client expects."""
    if json_wanted():
        return jsonify(error=code, message=message), status
    return render_template("error.html", status=status, message=message), status


def handle_http_error(error: HTTPException):
    status = error.code or 500
    # abort(404, "Job ... doesn't exist.") carries its own sentence; Werkzeug's
    # default descriptions are English and long, so those are replaced.
    own_message = error.description if error.description != type(error).description else None
    return error_response(status, CODES.get(status, "error"), own_message or default_message(status))


def handle_csrf_error(error: CSRFError):
    return error_response(400, "csrf_failed", _("The form has expired or lacks its security token; reload the "
                                                "page and try again."))


def handle_too_large(error: RequestEntityTooLarge):
    return error_response(413, "request_too_large", _(
        "The request is too large or has too many files for one form. Upload the photos from the upload page "
        "with JavaScript turned on, or as a zip."))


def handle_web_error(error: WebError):
    rollback_db()
    return error_response(error.status, error.code, error.message)


def handle_server_error(error: InternalServerError):
    rollback_db()
    original = getattr(error, "original_exception", None)
    log.error("Unhandled error on %s %s", request.method, request.path, exc_info=original)
    return error_response(500, "internal_error", default_message(500))


def init_app(app: Flask) -> None:
    app.register_error_handler(WebError, handle_web_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(RequestEntityTooLarge, handle_too_large)
    app.register_error_handler(InternalServerError, handle_server_error)
    app.register_error_handler(HTTPException, handle_http_error)
