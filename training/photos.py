"""Open any photo a phone or camera produces as an 8-bit sRGB RGB image.

Training, prediction, the worker and the thumbnails all read photos through
`open_photo`, so a file that one of them accepts the others accept too.
"""

from __future__ import annotations

import io
import logging
import os
import struct
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

try:
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - pillow-heif is a hard dependency
    HEIF_AVAILABLE = False

# 80 megapixels admits every phone camera's default mode (48 and 50 MP sensors)
# while refusing decompression bombs before a single pixel is decoded.
DEFAULT_MAX_PIXELS = int(os.environ.get("PANDULCE_MAX_PIXELS", 80_000_000))

# open_photo checks its own cap right after reading the header and before any
# pixel is decoded, with a message that gives the canvas size. Pillow's global
# check would raise earlier with a less useful message, so it is turned off;
# every photo this project reads goes through open_photo.
Image.MAX_IMAGE_PIXELS = None

# JPEGs at least twice this size on both sides are decoded at 1/2, 1/4 or 1/8
# scale straight from the DCT coefficients, never below this size. Both
# transforms shrink photos to 224 or 256 pixels anyway, and a 12 MP phone photo
# then decodes several times faster.
DRAFT_SIZE = (256, 256)

# Transparent pixels are composited onto this colour: a white counter top is the
# most common background of a bakery cut-out photo.
BACKGROUND_RGB = (255, 255, 255)

PHOTO_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff",
     ".gif", ".heic", ".heif", ".hif", ".avif"}
)
JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", ".localized"})
JUNK_FOLDERS = frozenset({"__macosx", ".git", ".svn", "@eadir", ".thumbnails", ".trashes",
                          ".spotlight-v100", ".fseventsd"})

# Brands in an ISO-BMFF `ftyp` box that mark a HEIF still image (HEIC from iPhones included).
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}

# Reasons given for files that are skipped rather than classified.
SYSTEM_FILE = "System file, not a photo."
NOT_A_PHOTO = "Not a photo: neither its content nor its name is an image format."

Source = Union[str, os.PathLike, bytes, BinaryIO]


class PhotoError(Exception):
    """A file that cannot be opened as a photo.

    `code` is a short machine-readable reason, stored with failed photos and
    translated on screens. The message states what is wrong with the file.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


def sniff_format(header: bytes) -> str | None:
    """Return the Pillow format name the leading bytes of a file announce, or None."""
    if header.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if header.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "WEBP"
    if header[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if header[:2] == b"BM" and len(header) >= 14:
        return "BMP"
    if header[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if header[4:8] == b"ftyp":
        box_size = struct.unpack(">I", header[:4])[0]
        brands = {header[8:12]}
        brands.update(header[i:i + 4] for i in range(16, min(box_size, len(header)) - 3, 4))
        if brands & _AVIF_BRANDS:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
    return None


def is_junk_path(path: str | os.PathLike) -> bool:
    """Tell whether a path is operating-system metadata rather than a user's file.

    Covers macOS resource forks (`__MACOSX/`, `._name`), Finder and Explorer
    caches (`.DS_Store`, `Thumbs.db`) and any other hidden file or folder.
    """
    parts = PurePosixPath(str(path).replace("\\", "/")).parts
    for folder in parts[:-1]:
        if folder.lower() in JUNK_FOLDERS or (folder.startswith(".") and folder not in (".", "..")):
            return True
    name = parts[-1] if parts else ""
    lowered = name.lower()
    return lowered in JUNK_NAMES or lowered in JUNK_FOLDERS or name.startswith(".") or name.startswith("~$")


def is_photo_candidate(name: str, header: bytes) -> bool:
    """Tell whether a file should be treated as a photo: by content first, then by name.

    A file whose bytes are an image format is a photo whatever its name. A file
    with a photo extension but other bytes is still a candidate, so that it is
    reported as a failed photo rather than silently skipped.
    """
    if sniff_format(header) is not None:
        return True
    return PurePosixPath(name.replace("\\", "/")).suffix.lower() in PHOTO_EXTENSIONS


def open_photo(source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None,
               draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode a photo into an 8-bit sRGB RGB image, upright and without transparency.

    The format is detected from the bytes, never from the file name. With
    `draft_size`, a large JPEG may be decoded at a reduced scale that is still
    at least that size. The upright size of the full photo is kept in
    `image.info["original_size"]`. Raises PhotoError for an empty, unknown,
    truncated, corrupt or oversized file.
    """
    label = name or _describe(source)
    raw = _read_bytes(source, label)

    if not raw:
        raise PhotoError("empty", f"{label} is empty (0 bytes).")
    image_format = sniff_format(raw[:64])
    if image_format is None:
        raise PhotoError(
            "not_an_image",
            f"{label} is not an image: its content is not JPEG, PNG, WebP, BMP, TIFF, GIF, HEIC or AVIF.",
        )
    if image_format == "HEIF" and not HEIF_AVAILABLE:
        raise PhotoError("unsupported_format", f"{label} is HEIC/HEIF and pillow-heif is not installed.")

    try:
        image = Image.open(io.BytesIO(raw), formats=[image_format])
        width, height = image.size
        if width <= 0 or height <= 0:
            raise PhotoError("corrupt", f"{label} declares an empty canvas of {width} x {height} pixels.")
        if width * height > max_pixels:
            raise PhotoError(
                "too_large",
                f"{label} is {width} x {height} pixels ({width * height / 1e6:.0f} MP); "
                f"the limit is {max_pixels / 1e6:.0f} MP.",
            )
        image.seek(0)
        if draft_size is not None and image_format == "JPEG":
            image.draft(None, draft_size)
        image.load()
        loaded_size = image.size
        image = ImageOps.exif_transpose(image)
        swapped = image.size != loaded_size
        original_size = (height, width) if swapped else (width, height)
        image = to_srgb_rgb(image)
        image.info["original_size"] = original_size
        return image
    except PhotoError:
        raise
    except UnidentifiedImageError as exc:
        raise PhotoError("corrupt", f"{label} looks like {image_format} but its header is invalid.") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, RuntimeError) as exc:
        # Pillow reports truncation and broken streams as OSError or SyntaxError;
        # pillow-heif reports libheif decode failures as RuntimeError or ValueError.
        reason = str(exc) or type(exc).__name__
        code = "truncated" if "truncated" in reason.lower() else "corrupt"
        raise PhotoError(code, f"{label} is a damaged {image_format} file: {reason}.") from exc


def to_srgb_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB in sRGB, flattening transparency onto BACKGROUND_RGB."""
    icc = image.info.get("icc_profile")

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _deep_grey_to_l(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("L", "RGB") and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("1", "L", "RGBX", "YCbCr", "HSV", "LAB"):
        image = image.convert("RGB")
    if image.mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")

    if icc:
        image = _icc_to_srgb(image, icc)
    if image.mode == "CMYK":
        image = image.convert("RGB")

    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, BACKGROUND_RGB + (255,))
        image = Image.alpha_composite(background, image).convert("RGB")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


_SRGB = ImageCms.createProfile("sRGB")


def _icc_to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    try:
        source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(source_profile).strip().lower()
        if "srgb" in description and image.mode in ("RGB", "RGBA"):
            return image
        output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(image, source_profile, _SRGB, outputMode=output_mode)
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        log.warning("Ignoring an unreadable ICC colour profile (%s); treating the photo as sRGB", exc)
        return image


def _deep_grey_to_l(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image)
    if image.mode == "F":
        finite = pixels[np.isfinite(pixels)]
        peak = float(finite.max()) if finite.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
        scaled = np.nan_to_num(pixels, nan=0.0) * scale
    else:
        peak = int(pixels.max()) if pixels.size else 0
        scaled = pixels / 257.0 if peak > 255 else pixels.astype(np.float64)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _read_bytes(source: Source, label: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if hasattr(source, "read"):
        return source.read()
    try:
        return Path(source).read_bytes()
    except IsADirectoryError as exc:
        raise PhotoError("not_a_file", f"{label} is a folder, not a photo.") from exc
    except FileNotFoundError as exc:
        raise PhotoError("missing", f"{label} does not exist.") from exc
    except PermissionError as exc:
        raise PhotoError("unreadable", f"{label} cannot be read: permission denied.") from exc


def _describe(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", None) or "The photo"
