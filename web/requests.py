"""The request class: uploaded file parts spool to the data directory, never to memory."""

from __future__ import annotations

import tempfile
from typing import IO

from flask import Request, current_app

# File parts up to this size stay in memory while the form is parsed. Larger
# ones roll over to a temporary file, so memory per request stays bounded.
SPOOL_MAX_BYTES = 512 * 1024


class UploadRequest(Request):
    """A request whose uploaded files spool to `<data dir>/uploads/incoming`.

    Werkzeug's default spools to the system temporary folder, which is often
    a RAM-backed tmpfs; the data directory is where uploads end up anyway.
    """

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        incoming = current_app.config["SETTINGS"].uploads_dir / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        return tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES, mode="rb+", dir=incoming)
