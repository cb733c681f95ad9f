"""Content-addressed photo storage under the data directory.

A photo is stored once, at photos/<aa>/<bb>/<sha256>.<ext>, however often and
under whatever names it is uploaded. Uploaded names never become paths.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from training.photos import sniff_format

BLOCK = 1 << 20
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif",
              "HEIF": ".heic", "AVIF": ".avif"}


class PhotoTooLarge(ValueError):
    """An uploaded file is larger than the configured limit."""

    def __init__(self, limit: int):
        super().__init__(f"The file is larger than the limit of {limit / 1e6:.0f} MB.")
        self.limit = limit


@dataclass(frozen=True)
class StoredPhoto:
    relative_path: str
    sha256: str
    byte_size: int
    image_format: str | None


def store_stream(data_dir: Path, stream: BinaryIO, max_bytes: int | None = None, prefix: bytes = b"") -> StoredPhoto:
    """Copy `prefix` and then a stream into the store while hashing them; return where the file lies.

    The bytes go to a temporary file first and are renamed into place, so a
    failed or oversized upload never leaves a partial photo behind.
    """
    photos_dir = data_dir / "photos"
    incoming = photos_dir / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    header = b""

    handle, temporary = tempfile.mkstemp(dir=incoming, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            blocks = iter(lambda: stream.read(BLOCK), b"")
            for block in _chain(prefix, blocks):
                size += len(block)
                if max_bytes is not None and size > max_bytes:
                    raise PhotoTooLarge(max_bytes)
                if len(header) < 64:
                    header += block[: 64 - len(header)]
                digest.update(block)
                out.write(block)
        sha256 = digest.hexdigest()
        image_format = sniff_format(header)
        relative = f"photos/{sha256[:2]}/{sha256[2:4]}/{sha256}{EXTENSIONS.get(image_format, '.bin')}"
        target = data_dir / relative
        if target.exists():
            os.unlink(temporary)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, target)
        return StoredPhoto(relative, sha256, size, image_format)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _chain(prefix: bytes, blocks):
    if prefix:
        yield prefix
    yield from blocks


def store_file(data_dir: Path, path: Path, max_bytes: int | None = None) -> StoredPhoto:
    with path.open("rb") as stream:
        return store_stream(data_dir, stream, max_bytes)


def resolve(data_dir: Path, relative_path: str) -> Path:
    """Return the absolute path of a stored file, refusing anything outside the data directory."""
    path = (data_dir / relative_path).resolve()
    if not path.is_relative_to(data_dir.resolve()):
        raise ValueError(f"Stored path {relative_path!r} points outside the data directory.")
    return path
