"""Thumbnails and browser-ready copies of stored photos, made once per photo content and cached on disk.

Files are named by the photo's sha256, so the same photo uploaded in many
jobs is resized once, and a cached file never goes stale.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from pandulce.config import Settings
from pandulce.storage import resolve
from training.photos import PhotoError, open_photo, sniff_format

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = (320, 320)
DISPLAY_SIZE = (2048, 2048)
JPEG_QUALITY = 85
# Formats every current browser shows in an <img>; others (HEIC, TIFF) are converted to JPEG.
BROWSER_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
# Stored photos that failed to open, so that each is logged as a warning once per process and not on every
# page view. The photo's row already contains the reason. Capped so a long-running server does not grow it forever.
_unreadable_logged: set[str] = set()
UNREADABLE_LOG_CAP = 10_000


def thumbnail_file(settings: Settings, stored_path: str, sha256: str) -> Path | None:
    """Return the cached JPEG thumbnail of a stored photo, making it first if needed; None if it cannot be read."""
    return _cached_jpeg(settings, stored_path, settings.thumbnails_dir / sha256[:2] / f"{sha256}.jpg", THUMBNAIL_SIZE)


def display_file(settings: Settings, stored_path: str, sha256: str) -> tuple[Path, str] | None:
    """Return (file, MIME type) to show a stored photo full size in a browser; None if it cannot be read."""
    original = resolve(settings.data_dir, stored_path)
    with original.open("rb") as stream:
        image_format = sniff_format(stream.read(64))
    if image_format in BROWSER_FORMATS:
        return original, BROWSER_FORMATS[image_format]
    converted = _cached_jpeg(settings, stored_path,
                             settings.thumbnails_dir / sha256[:2] / f"{sha256}-{DISPLAY_SIZE[0]}.jpg", DISPLAY_SIZE)
    return (converted, "image/jpeg") if converted is not None else None


def _cached_jpeg(settings: Settings, stored_path: str, target: Path, size: tuple[int, int]) -> Path | None:
    if target.exists():
        return target
    try:
        image = open_photo(resolve(settings.data_dir, stored_path), draft_size=size)
    except PhotoError as exc:
        if stored_path in _unreadable_logged:
            log.debug("No preview for %s: %s", stored_path, exc)
        else:
            log.warning("No preview for %s: %s", stored_path, exc)
            if len(_unreadable_logged) < UNREADABLE_LOG_CAP:
                _unreadable_logged.add(stored_path)
        return None
    image.thumbnail(size)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            image.save(stream, "JPEG", quality=JPEG_QUALITY, optimize=True)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
