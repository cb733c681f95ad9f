"""Turn folders, zip archives and uploaded files into photo entries, within stated limits.

Zip members are read as streams and stored by content hash: a member's name is
kept for display only and is never used as a path, so `../`, absolute names and
symbolic links cannot place anything outside the data directory.
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from training.datasets import natural_key


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class UploadLimits:
    max_photo_bytes: int = _env_int("PANDULCE_MAX_PHOTO_MB", 40) * 1_000_000
    max_photos: int = _env_int("PANDULCE_MAX_PHOTOS", 10_000)
    max_zip_expanded_bytes: int = _env_int("PANDULCE_MAX_ZIP_EXPANDED_MB", 8_000) * 1_000_000
    # A member that inflates more than this many times is a zip bomb, not a photo:
    # JPEG and HEIC barely compress, so real photos stay close to 1.
    max_zip_ratio: int = 100


class UploadError(ValueError):
    """An upload that breaks a limit or cannot be read; `code` names the rule for translation."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class UploadEntry:
    """One file of an upload: its name as given, and a way to open its bytes."""

    name: str
    open: Callable[[], BinaryIO]


def folder_entries(folder: Path) -> Iterator[UploadEntry]:
    """Yield every regular file under `folder` in natural order, named relative to it."""
    files = []
    for directory, subdirectories, names in os.walk(folder):
        subdirectories.sort(key=natural_key)
        for name in names:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                files.append(path)
    files.sort(key=lambda path: natural_key(str(path.relative_to(folder))))
    for path in files:
        yield UploadEntry(str(path.relative_to(folder)), lambda path=path: path.open("rb"))


def is_zip(path: Path) -> bool:
    return path.is_file() and zipfile.is_zipfile(path)


class _LimitedReader:
    """Read a zip member while counting what it inflates to, stopping at the limits."""

    def __init__(self, stream: BinaryIO, member: zipfile.ZipInfo, limits: UploadLimits, budget: list[int]):
        self.stream, self.member, self.limits, self.budget = stream, member, limits, budget
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        block = self.stream.read(size)
        self.read_bytes += len(block)
        self.budget[0] += len(block)
        if self.budget[0] > self.limits.max_zip_expanded_bytes:
            raise UploadError("zip_too_large", f"The zip expands to more than "
                              f"{self.limits.max_zip_expanded_bytes / 1e9:.1f} GB; split it into smaller zips.")
        compressed = max(self.member.compress_size, 1)
        if self.read_bytes > 1_000_000 and self.read_bytes / compressed > self.limits.max_zip_ratio:
            raise UploadError("zip_bomb", f"{self.member.filename} inflates more than "
                              f"{self.limits.max_zip_ratio} times; the zip looks malicious.")
        return block

    def close(self) -> None:
        self.stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def zip_entries(path: Path, limits: UploadLimits | None = None) -> Iterator[UploadEntry]:
    """Yield the regular-file members of a zip archive; directories and symbolic links are left out.

    The archive stays open only while the generator runs, so read each entry
    before asking for the next one.
    """
    limits = limits or UploadLimits()
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadError("bad_zip", f"{path.name} is not a readable zip archive: {exc}") from exc

    budget = [0]
    with archive:
        members = [member for member in archive.infolist() if not member.is_dir()]
        declared = sum(member.file_size for member in members)
        if declared > limits.max_zip_expanded_bytes:
            raise UploadError("zip_too_large", f"{path.name} expands to {declared / 1e9:.1f} GB; the limit is "
                              f"{limits.max_zip_expanded_bytes / 1e9:.1f} GB.")
        for member in members:
            mode = member.external_attr >> 16
            if stat.S_ISLNK(mode):
                continue
            if member.flag_bits & 0x1:
                raise UploadError("zip_encrypted", f"{member.filename} in {path.name} is encrypted; "
                                  f"zip the photos without a password.")
            yield UploadEntry(member.filename,
                              lambda member=member: _LimitedReader(archive.open(member), member, limits, budget))
