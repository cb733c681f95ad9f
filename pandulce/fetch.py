"""Download the public pan dulce photo set (GitHub repository david1792x/pan-dulce)."""

from __future__ import annotations

import csv
import io
import logging
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.github.com/repos/david1792x/pan-dulce/zipball"
PHOTO_FOLDER = ("dataset", "dataset")
LABEL_FILE = ("dataset", "pan_dulce.csv")
TIMEOUT_S = 30


class FetchError(RuntimeError):
    """The dataset could not be downloaded or unpacked."""


@dataclass
class FetchSummary:
    photos: int
    classes: int


def fetch_dataset(dest: str | Path, url: str = DEFAULT_URL) -> FetchSummary:
    """Download the repository archive and unpack its photos and labels into `dest`.

    Only regular files under `dataset/dataset/<class>/` and `dataset/pan_dulce.csv`
    are taken; member names are re-built from their parts, so nothing lands
    outside `dest`.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FetchError(f"{dest} is not empty; choose a new folder for the dataset.")

    with tempfile.TemporaryDirectory(prefix="pandulce-fetch-") as scratch:
        archive_path = Path(scratch) / "archive.zip"
        _download(url, archive_path)
        staging = Path(scratch) / "dataset"
        photos, classes = _unpack(archive_path, staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.rmdir()
        shutil.move(str(staging), dest)
    log.info("Fetched %d photos of %d classes into %s", photos, classes, dest)
    return FetchSummary(photos, classes)


def _download(url: str, target: Path) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "pandulce-dataset-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                done += len(block)
                if total:
                    log.info("Downloaded %.1f of %.1f MB", done / 1e6, total / 1e6)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"Downloading {url} failed with HTTP {exc.code} {exc.reason}.") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(
            f"Could not download the dataset from {url}: {reason}. This machine may have no internet access; "
            f"download the repository elsewhere and train on its dataset/dataset folder instead."
        ) from exc


def _unpack(archive_path: Path, staging: Path) -> tuple[int, int]:
    try:
        archive = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"The downloaded file is not a zip archive: {exc}") from exc

    staging.mkdir()
    photos = 0
    classes: set[str] = set()
    label_rows: list[dict] = []
    with archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            parts = PurePosixPath(member.filename).parts[1:]  # drop the archive's top folder
            if parts == LABEL_FILE:
                text = archive.read(member).decode("utf-8-sig")
                label_rows = list(csv.DictReader(io.StringIO(text)))
                continue
            if len(parts) != 4 or parts[:2] != PHOTO_FOLDER:
                continue
            class_name, file_name = parts[2], parts[3]
            if any(part in ("", ".", "..") or "\\" in part for part in (class_name, file_name)):
                continue
            if class_name.startswith(".") or file_name.startswith("."):
                continue
            target = staging / class_name / file_name
            target.parent.mkdir(exist_ok=True)
            with archive.open(member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
            photos += 1
            classes.add(class_name)

    if not photos:
        raise FetchError("The archive has no photos under dataset/dataset/<class>/; the repository layout changed.")
    _write_labels(staging, label_rows)
    return photos, len(classes)


def _write_labels(staging: Path, rows: list[dict]) -> None:
    # Keep the published row order: the reference split depends on it.
    kept = [row for row in rows if row.get("filename") and (staging / row["filename"]).is_file()]
    if not kept:
        return
    with (staging / "labels.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["filename", "label"])
        for row in kept:
            writer.writerow([row["filename"], row.get("label", "")])
