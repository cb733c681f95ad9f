"""Languages: Spanish (es-MX, the default) and English, chosen from the browser or the switcher.

Messages live in web/translations/<language>/LC_MESSAGES/messages.po. They are
compiled to .mo files when the app starts (only when a .po is newer than its
.mo), so a fresh clone needs no build step. Class display names and
descriptions come from training.classes, which has them in both languages.
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, request, session
from flask_babel import format_timedelta, get_locale, lazy_gettext as _l, lazy_pgettext, ngettext
from flask_login import current_user

from training.classes import description, display_name

log = logging.getLogger(__name__)

# Language code shown to people and stored with users -> Babel locale.
LANGUAGES = {"es": "es_MX", "en": "en"}
LANGUAGE_NAMES = {"es": "Español", "en": "English"}
DEFAULT_LANGUAGE = "es"
DEFAULT_LOCALE = LANGUAGES[DEFAULT_LANGUAGE]


def compile_translations(source_dir: Path, target_dir: Path) -> Path:
    """Compile every messages.po under `source_dir` into `target_dir` where the .mo is missing or older."""
    for po_path in sorted(source_dir.glob("*/LC_MESSAGES/messages.po")):
        mo_path = target_dir / po_path.relative_to(source_dir).with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as stream:
            catalog = read_po(stream, locale=po_path.parent.parent.name)
        descriptor, temporary = tempfile.mkstemp(dir=mo_path.parent, suffix=".tmp")
        with os.fdopen(descriptor, "wb") as stream:
            write_mo(stream, catalog)
        os.replace(temporary, mo_path)
        log.info("Compiled %s", mo_path)
    return target_dir


def select_language() -> str:
    """Return the language of this request: the switcher's choice, the user's, the browser's, or Spanish.

    For the API an Accept-Language header that names Spanish or English comes
    first, because a script states the language it wants with each request.
    """
    if request.path.startswith("/api/") and request.headers.get("Accept-Language"):
        requested = request.accept_languages.best_match(list(LANGUAGES))
        if requested is not None:
            return requested
    chosen = session.get("language")
    if chosen in LANGUAGES:
        return chosen
    user = g.get("user")
    if user is None and current_user and current_user.is_authenticated:
        user = current_user
    if user is not None and getattr(user, "language", None) in LANGUAGES:
        return user.language
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE


def select_locale() -> str:
    return LANGUAGES[select_language()]


def current_language() -> str:
    """Return 'es' or 'en' for the current request."""
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES else DEFAULT_LANGUAGE


def class_label(class_name: str | None) -> str:
    """Return a class's display name in the current language."""
    if not class_name:
        return ""
    return display_name(class_name, current_language())


def class_description(class_name: str | None) -> str:
    if not class_name:
        return ""
    return description(class_name, current_language())


JOB_STATUS_LABELS = {
    "queued": lazy_pgettext("job status", "Queued"),
    "running": lazy_pgettext("job status", "Running"),
    "done": lazy_pgettext("job status", "Done"),
    "failed": lazy_pgettext("job status", "Failed"),
    "cancelled": lazy_pgettext("job status", "Cancelled"),
}

PHOTO_STATUS_LABELS = {
    "pending": lazy_pgettext("photo status", "Waiting"),
    "done": lazy_pgettext("photo status", "Classified"),
    "failed": lazy_pgettext("photo status", "Failed"),
    "skipped": lazy_pgettext("photo status", "Skipped"),
    "cancelled": lazy_pgettext("photo status", "Cancelled"),
}

# Reasons stored with failed and skipped photos, by code. The workers store an
# English sentence too; it is shown when a code has no translation here.
PHOTO_ERRORS = {
    "system_file": _l("System file, not a photo."),
    "not_a_photo": _l("Not a photo: neither its content nor its name is an image format."),
    "file_too_large": _l("The file is larger than the size limit for one photo."),
    "empty": _l("The file is empty."),
    "not_an_image": _l("The file is not an image: its content is not JPEG, PNG, WebP, BMP, TIFF, GIF, HEIC or "
                       "AVIF."),
    "unsupported_format": _l("The image format is not supported."),
    "corrupt": _l("The image is damaged and cannot be read."),
    "truncated": _l("The image is incomplete: the file ends too early."),
    "too_large": _l("The image has too many pixels to be read safely."),
    "worker_lost": _l("A worker process stopped several times while classifying this photo."),
    "model_unavailable": _l("The model could not be loaded."),
    "no_model": _l("No model version is active, so the photo cannot be classified."),
}


def job_status_label(status: str) -> str:
    return str(JOB_STATUS_LABELS.get(status, status))


def photo_status_label(status: str) -> str:
    return str(PHOTO_STATUS_LABELS.get(status, status))


def photo_error_text(code: str | None, stored: str | None) -> str:
    """Return a failed or skipped photo's reason in the current language."""
    if code in PHOTO_ERRORS:
        return str(PHOTO_ERRORS[code])
    return stored or ""


def photo_error_texts() -> dict[str, str]:
    """Return every translated photo failure reason in the current language, by error code."""
    return {code: str(text) for code, text in PHOTO_ERRORS.items()}


def plural_forms(singular: str, plural: str) -> dict[str, str]:
    """Return a message's singular and plural form in the current language, for a page script to choose from.

    The script picks "one" for a count of 1 and "other" for any other count.
    That is the English rule, and the Spanish one except for whole millions.
    """
    return {"one": ngettext(singular, plural, 1), "other": ngettext(singular, plural, 2)}


def age(moment: datetime | None) -> str:
    """Return how long ago a moment was, in words of the current language ("hace 5 minutos")."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return format_timedelta(moment - datetime.now(timezone.utc), add_direction=True, threshold=1.1)


def init_app(app: Flask) -> None:
    from web.extensions import babel

    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.globals.update(
        class_label=class_label,
        class_description=class_description,
        job_status_label=job_status_label,
        photo_status_label=photo_status_label,
        photo_error_text=photo_error_text,
        current_language=current_language,
        age=age,
        plural_forms=plural_forms,
        language_names=LANGUAGE_NAMES,
    )
