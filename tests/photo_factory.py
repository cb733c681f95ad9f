"""Build the awkward files that phones, cameras and file systems produce, for tests."""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from pathlib import Path

from PIL import Image

RED = (220, 30, 30)
BLUE = (30, 30, 220)


def jpeg_bytes(size=(64, 48), colour=RED, **save_options) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=90, **save_options)
    return buffer.getvalue()


def truncated_jpeg(real_photo: Path) -> bytes:
    """Return the first 60% of a real JPEG: the header parses, the scan data ends early."""
    raw = real_photo.read_bytes()
    return raw[: int(len(raw) * 0.6)]


def rgba_png() -> bytes:
    """Return a PNG whose left half is transparent and right half opaque blue."""
    image = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    image.paste(Image.new("RGBA", (20, 20), BLUE + (255,)), (20, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def palette_png_with_transparency() -> bytes:
    """Return a palette PNG whose index 0 is transparent (top half) and index 1 red (bottom half)."""
    image = Image.new("P", (20, 20), 0)
    image.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)
    image.paste(1, (0, 10, 20, 20))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    return buffer.getvalue()


def greyscale_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (32, 32), 128).save(buffer, "JPEG")
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """Return a 40x20 JPEG, left half red and right half blue, tagged orientation 6 (rotate 90 clockwise)."""
    image = Image.new("RGB", (40, 20), RED)
    image.paste(Image.new("RGB", (20, 20), BLUE), (20, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def heic_photo() -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), RED).save(buffer, "HEIF", quality=90)
    return buffer.getvalue()


def huge_canvas_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """Return a tiny PNG file whose header declares a width x height RGB canvas."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    scanline = zlib.compress(b"\x00" + b"\x00" * 30)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", scanline) + chunk(b"IEND", b"")


def sixteen_bit_grey_png() -> bytes:
    image = Image.new("I;16", (16, 16), 40_000)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(buffer, "JPEG")
    return buffer.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("P", (16, 16), index) for index in range(3)]
    for frame in frames:
        frame.putpalette([*RED, *BLUE, 0, 255, 0] + [0, 0, 0] * 253)
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def image_bytes(image_format: str, size=(24, 24), colour=BLUE) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, image_format)
    return buffer.getvalue()


# Every bad or unusual file of the checklist, with the status a classifier must give it.
def build_bad_folder(folder: Path, real_photo: Path) -> dict[str, str]:
    """Write the checklist of awkward files into `folder`; return {relative path: expected status}."""
    files = {
        "truncated.jpg": (truncated_jpeg(real_photo), "failed"),
        "notes.jpg": (b"this is a shopping list, not a photo\n", "failed"),
        "cutout.png": (rgba_png(), "ok"),
        "palette.png": (palette_png_with_transparency(), "ok"),
        "grey.jpg": (greyscale_jpeg(), "ok"),
        "rotated.jpg": (exif_rotated_jpeg(), "ok"),
        "iphone.heic": (heic_photo(), "ok"),
        "bomb.png": (huge_canvas_png(), "failed"),
        "__MACOSX/._a.jpg": (b"\x00\x05\x16\x07 AppleDouble", "skipped"),
        ".DS_Store": (b"\x00\x00\x00\x01Bud1", "skipped"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, (content, _) in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    shutil.copy(real_photo, folder / "real.jpg")
    expected = {name: status for name, (_, status) in files.items()}
    expected["real.jpg"] = "ok"
    return expected
