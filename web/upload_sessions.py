"""Upload sessions: a photo set arrives in several requests and becomes one batch job at the end.

A browser cannot send 2,000 photos in one multipart request (Werkzeug rejects
more than 1,000 form parts, and one failed request would lose everything), so
the upload page sends batches of files to a session and then finishes it.
Each file is streamed to disk under a numbered name. The name it was uploaded
with is kept in the batch's manifest for display and never becomes a path.

    uploads/<upload id>/owner.json
    uploads/<upload id>/batch-000003/manifest.json
    uploads/<upload id>/batch-000003/0000.bin ...
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from pandulce.storage import PhotoTooLarge
from pandulce.uploads import UploadEntry, UploadError, UploadLimits, zip_entries
from training.photos import is_junk_path, sniff_format

log = logging.getLogger(__name__)

UPLOAD_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
MAX_BATCH_INDEX = 99_999
HEADER_BYTES = 64
BLOCK_BYTES = 1 << 20
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


class UploadSessionError(ValueError):
    """An upload session that does not exist or a batch that cannot be accepted; `code` names the reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ReceivedFile:
    """One file of an upload session as it was stored."""

    name: str
    file: str
    byte_size: int
    image_format: str | None
    is_zip: bool
    too_large: bool


class UploadSession:
    """The files received so far for one upload of one user."""

    def __init__(self, directory: Path, upload_id: str, user_id: int):
        self.directory = directory
        self.upload_id = upload_id
        self.user_id = user_id

    @classmethod
    def create(cls, uploads_dir: Path, user_id: int) -> "UploadSession":
        """Start an empty upload session for a user."""
        upload_id = uuid.uuid4().hex
        directory = uploads_dir / upload_id
        directory.mkdir(parents=True)
        (directory / "owner.json").write_text(json.dumps({"user_id": user_id, "created": time.time()}))
        return cls(directory, upload_id, user_id)

    @classmethod
    def open(cls, uploads_dir: Path, upload_id: str, user_id: int) -> "UploadSession":
        """Return a user's upload session; another user's session is reported as missing."""
        missing = UploadSessionError("upload_not_found", f"Upload {upload_id[:40]} does not exist or has expired.")
        if not UPLOAD_ID_PATTERN.match(upload_id):
            raise missing
        directory = uploads_dir / upload_id
        try:
            owner = json.loads((directory / "owner.json").read_text())
        except (OSError, ValueError):
            raise missing from None
        if owner.get("user_id") != user_id:
            raise missing
        return cls(directory, upload_id, user_id)

    def add_batch(self, index: int, files: Iterable[tuple[str, BinaryIO]], limits: UploadLimits) -> list[ReceivedFile]:
        """Store one batch of files; sending the same batch index again replaces it.

        Files are written to a temporary folder that is renamed into place
        only when every file is on disk, so a broken request leaves no partial
        batch. A file over the size limit keeps only its first bytes and is
        reported as too large when the job is created.
        """
        if not 0 <= index <= MAX_BATCH_INDEX:
            raise UploadSessionError("bad_batch", f"Batch number {index} is invalid; use 0 to {MAX_BATCH_INDEX}.")
        target = self.directory / f"batch-{index:06d}"
        staging = Path(tempfile.mkdtemp(dir=self.directory, prefix=".batch-"))
        try:
            received = []
            for position, (name, stream) in enumerate(files):
                received.append(_receive(name, stream, staging, f"{position:04d}.bin", limits))
            (staging / "manifest.json").write_text(json.dumps([asdict(item) for item in received],
                                                              ensure_ascii=False))
            self._check_photo_count(received, exclude=target, limits=limits)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return [_relocated(item, target.name) for item in received]

    def _check_photo_count(self, new_files: list[ReceivedFile], exclude: Path, limits: UploadLimits) -> None:
        earlier = [item for item in self.received() if not item.file.startswith(exclude.name + "/")]
        photos = sum(1 for item in [*earlier, *new_files] if not item.is_zip and not is_junk_path(item.name))
        if photos > limits.max_photos:
            raise UploadError("too_many_photos", f"The upload has more than {limits.max_photos} photos; "
                              f"split it into several jobs.")

    def received(self) -> list[ReceivedFile]:
        """Return every file received so far, in batch order and then in the order sent."""
        files = []
        for batch in sorted(self.directory.glob("batch-*")):
            manifest = json.loads((batch / "manifest.json").read_text())
            files.extend(_relocated(ReceivedFile(**record), batch.name) for record in manifest)
        return files

    def entries(self, limits: UploadLimits) -> Iterator[UploadEntry]:
        """Yield the upload's files for `create_job`; a zip yields its members in its place."""
        for item in self.received():
            path = self.directory / item.file
            if item.is_zip:
                yield from zip_entries(path, limits)
            elif item.too_large:
                header = path.read_bytes()
                yield UploadEntry(item.name, lambda header=header: OversizedFile(header, limits.max_photo_bytes))
            else:
                yield UploadEntry(item.name, lambda path=path: path.open("rb"))

    def discard(self) -> None:
        """Delete the session and its files."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _receive(name: str, stream: BinaryIO, folder: Path, file_name: str, limits: UploadLimits) -> ReceivedFile:
    header = stream.read(HEADER_BYTES)
    is_zip = header[:4] in ZIP_SIGNATURES
    # A zip is limited by what it expands to, which zip_entries checks when the job is created.
    max_bytes = None if is_zip else limits.max_photo_bytes
    size = len(header)
    too_large = False
    with (folder / file_name).open("wb") as out:
        out.write(header)
        for block in iter(lambda: stream.read(BLOCK_BYTES), b""):
            size += len(block)
            if max_bytes is not None and size > max_bytes:
                too_large = True
                break
            out.write(block)
        if too_large:
            out.truncate(len(header))
    return ReceivedFile(name=name[:1024], file=file_name, byte_size=size, image_format=sniff_format(header),
                        is_zip=is_zip, too_large=too_large)


def _relocated(item: ReceivedFile, batch_name: str) -> ReceivedFile:
    file_name = item.file.rsplit("/", 1)[-1]
    return ReceivedFile(item.name, f"{batch_name}/{file_name}", item.byte_size, item.image_format, item.is_zip,
                        item.too_large)


class OversizedFile:
    """Stands in for a file over the size limit: reads return its first bytes, then raise PhotoTooLarge."""

    def __init__(self, header: bytes, limit: int):
        self.header = header
        self.limit = limit

    def read(self, size: int = -1) -> bytes:
        if self.header:
            block, self.header = self.header, b""
            return block
        raise PhotoTooLarge(self.limit)

    def close(self) -> None:
        self.header = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def remove_stale_sessions(uploads_dir: Path, max_age_s: float) -> int:
    """Delete upload sessions started more than `max_age_s` seconds ago; return how many."""
    removed = 0
    cutoff = time.time() - max_age_s
    if not uploads_dir.is_dir():
        return 0
    for directory in uploads_dir.iterdir():
        owner = directory / "owner.json"
        if not UPLOAD_ID_PATTERN.match(directory.name):
            continue
        try:
            started = owner.stat().st_mtime
        except OSError:
            continue
        if started < cutoff:
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
    if removed:
        log.info("Removed %d upload sessions older than %.0f hours", removed, max_age_s / 3600)
    return removed
