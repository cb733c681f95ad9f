"""Errors that views raise for bad uploads and job requests, with translated sentences per code.

The shared modules (`pandulce.uploads`, `pandulce.jobs`) raise errors with a
stable `code` and an English message. People read the sentence for that code
here, in their language, with the configured limits filled in.
"""

from __future__ import annotations

from flask import current_app
from flask_babel import format_number, gettext as _, ngettext

from pandulce.uploads import UploadLimits


class WebError(Exception):
    """A request that cannot be carried out: the response gets `status` and a translated message."""

    def __init__(self, code: str, status: int, message: str):
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message

    @classmethod
    def from_code(cls, code: str, fallback: str = "") -> "WebError":
        """Build the error for a code of pandulce.uploads, pandulce.jobs or this app."""
        status, message = describe(code, fallback)
        return cls(code, status, message)


def describe(code: str, fallback: str = "") -> tuple[int, str]:
    """Return (HTTP status, sentence in the current language) for an error code."""
    limits: UploadLimits = current_app.config["UPLOAD_LIMITS"]
    photo_mb = f"{limits.max_photo_bytes / 1e6:g}"
    zip_gb = f"{limits.max_zip_expanded_bytes / 1e9:g}"
    messages = {
        "empty": (400, _("The upload contains no files; choose photos, a folder or a zip.")),
        "not_an_image": (400, _("None of the uploaded files is a photo: their content is not JPEG, PNG, WebP, "
                                "BMP, TIFF, GIF, HEIC or AVIF.")),
        "no_photos": (400, _("No file of the upload can be classified: every file is a system file, not a photo, "
                             "or too large.")),
        "file_too_large": (413, _("The file is larger than the limit of %(size)s MB for one photo.", size=photo_mb)),
        "too_many_photos": (413, ngettext("The upload has more than %(count)s photo; split it into several jobs.",
                                          "The upload has more than %(count)s photos; split it into several jobs.",
                                          limits.max_photos, count=format_number(limits.max_photos))),
        "zip_too_large": (413, _("The zip expands to more than %(size)s GB; split it into smaller zips.",
                                 size=zip_gb)),
        "zip_bomb": (400, _("A file in the zip expands more than %(ratio)s times; the zip looks malicious and was "
                            "rejected.", ratio=limits.max_zip_ratio)),
        "zip_encrypted": (400, _("The zip is protected with a password; zip the photos without a password.")),
        "bad_zip": (400, _("The zip archive cannot be read; it may be damaged or incomplete.")),
        "no_model": (503, _("No model version is active yet, so photos cannot be classified. Ask an "
                            "administrator to train or activate one.")),
        "unknown_model": (400, _("The requested model version does not exist.")),
        "queue_unavailable": (503, _("The queue cannot be reached, so nothing was started. Try again in a minute.")),
        "upload_not_found": (404, _("This upload does not exist or has expired; start the upload again.")),
        "bad_batch": (400, _("The batch of files is invalid: its number or its list of names is wrong.")),
        "not_cancellable": (409, _("The job has already finished, so it cannot be cancelled.")),
        "still_running": (409, _("The job is still running; retry its failed photos when it has finished.")),
        "nothing_to_retry": (409, _("The job has no failed photos that a retry could classify. Damaged files and "
                                    "files that are not images would fail the same way again.")),
    }
    if code in messages:
        return messages[code]
    return 400, fallback or _("The request is invalid.")
