import pytest
from PIL import Image

from tests import photo_factory as make
from training.photos import (
    BACKGROUND_RGB,
    PhotoError,
    is_junk_path,
    is_photo_candidate,
    open_photo,
    sniff_format,
)


def close_to(pixel, expected, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected))


def test_real_jpeg_opens_as_rgb(real_photo):
    image = open_photo(real_photo)

    assert image.mode == "RGB"
    assert min(image.size) >= 100


@pytest.mark.parametrize(
    "content, code",
    [
        (b"", "empty"),
        (b"this is a shopping list, not a photo\n", "not_an_image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "not_an_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt"),
        (make.huge_canvas_png(), "too_large"),
    ],
    ids=["empty", "text", "pdf", "png-garbage", "30000x30000-png"],
)
def test_bad_bytes_raise_photo_error(content, code):
    with pytest.raises(PhotoError) as error:
        open_photo(content, name="upload.jpg")

    assert error.value.code == code
    assert "upload.jpg" in str(error.value)


def test_truncated_jpeg_is_reported_as_truncated(real_photo):
    with pytest.raises(PhotoError, match="truncated") as error:
        open_photo(make.truncated_jpeg(real_photo), name="cut.jpg")

    assert error.value.code == "truncated"


def test_huge_canvas_is_refused_before_decoding():
    with pytest.raises(PhotoError, match=r"30000 x 30000 pixels \(900 MP\); the limit is 80 MP"):
        open_photo(make.huge_canvas_png(), name="bomb.png")


def test_pixel_cap_is_configurable():
    with pytest.raises(PhotoError, match="limit is 0 MP"):
        open_photo(make.jpeg_bytes(size=(200, 100)), max_pixels=10_000)


def test_rgba_png_is_flattened_on_the_background():
    image = open_photo(make.rgba_png())

    assert image.mode == "RGB"
    assert image.getpixel((5, 10)) == BACKGROUND_RGB
    assert image.getpixel((35, 10)) == make.BLUE


def test_palette_png_transparency_is_flattened():
    image = open_photo(make.palette_png_with_transparency())

    assert image.mode == "RGB"
    assert image.getpixel((10, 2)) == BACKGROUND_RGB
    assert image.getpixel((10, 17)) == make.RED


def test_greyscale_jpeg_becomes_three_equal_channels():
    image = open_photo(make.greyscale_jpeg())
    red, green, blue = image.getpixel((16, 16))

    assert image.mode == "RGB"
    assert red == green == blue
    assert abs(red - 128) <= 2


def test_exif_orientation_is_applied():
    image = open_photo(make.exif_rotated_jpeg())

    assert image.size == (20, 40)
    assert close_to(image.getpixel((10, 5)), make.RED)
    assert close_to(image.getpixel((10, 35)), make.BLUE)


def test_heic_photo_opens():
    image = open_photo(make.heic_photo(), name="iphone.heic")

    assert image.mode == "RGB"
    assert image.size == (64, 48)
    assert close_to(image.getpixel((32, 24)), make.RED)


def test_sixteen_bit_grey_png_is_scaled_not_clipped():
    red, green, blue = open_photo(make.sixteen_bit_grey_png()).getpixel((0, 0))

    assert red == green == blue
    assert abs(red - round(40_000 / 257)) <= 1


def test_cmyk_jpeg_becomes_rgb():
    image = open_photo(make.cmyk_jpeg())

    assert image.mode == "RGB"
    assert close_to(image.getpixel((8, 8)), (255, 0, 0), tolerance=60)


def test_gif_uses_its_first_frame():
    image = open_photo(make.animated_gif())

    assert image.getpixel((8, 8)) == make.RED


@pytest.mark.parametrize("image_format", ["PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_common_formats_open(image_format):
    image = open_photo(make.image_bytes(image_format, colour=make.BLUE))

    assert image.mode == "RGB"
    assert close_to(image.getpixel((12, 12)), make.BLUE, tolerance=10)


def test_format_comes_from_bytes_not_extension(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(make.image_bytes("PNG"))

    assert sniff_format(path.read_bytes()[:64]) == "PNG"
    assert open_photo(path).size == (24, 24)


def test_missing_file_is_a_photo_error(tmp_path):
    with pytest.raises(PhotoError, match="does not exist") as error:
        open_photo(tmp_path / "gone.jpg")

    assert error.value.code == "missing"


@pytest.mark.parametrize(
    "path",
    ["__MACOSX/._a.jpg", "__MACOSX/photos/a.jpg", "._a.jpg", ".DS_Store", "sub/.DS_Store", "Thumbs.db",
     "desktop.ini", ".hidden/a.jpg"],
)
def test_system_files_are_junk(path):
    assert is_junk_path(path)


@pytest.mark.parametrize("path", ["a.jpg", "conchitas/IMG_0001.HEIC", "fotos de pan/señora 1.jpg", "パン.png"])
def test_user_photos_are_not_junk(path):
    assert not is_junk_path(path)


def test_photo_candidates_by_content_and_name():
    assert is_photo_candidate("no-extension", make.jpeg_bytes()[:64])
    assert is_photo_candidate("broken.jpg", b"not an image")
    assert not is_photo_candidate("notes.txt", b"shopping list")
    assert not is_photo_candidate("labels.csv", b"filename,label")


def test_open_photo_reads_file_objects(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(make.jpeg_bytes(size=(30, 20)))

    with path.open("rb") as handle:
        assert open_photo(handle).size == (30, 20)


def test_open_photo_returns_an_independent_image():
    image = open_photo(make.jpeg_bytes())

    assert isinstance(image, Image.Image)
    image.putpixel((0, 0), (1, 2, 3))
    assert image.getpixel((0, 0)) == (1, 2, 3)


def test_draft_decoding_keeps_requested_size():
    image = open_photo(make.jpeg_bytes(size=(2000, 1200)), draft_size=(256, 256))

    assert image.size == (500, 300)
    assert image.info["original_size"] == (2000, 1200)


def test_original_size_is_upright_for_rotated_photos():
    image = open_photo(make.exif_rotated_jpeg())

    assert image.info["original_size"] == (20, 40)
