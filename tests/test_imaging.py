"""Decoding: odd modes, orientation, bombs and broken files, as the scan meets them."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dam_dedupe.errors import AssetError
from dam_dedupe.imaging import DECODE_SIZE, NotAnImage, decode


def picture(width: int = 320, height: int = 200) -> Image.Image:
    """A deterministic picture with structure: a gradient and a bright block off-centre."""
    y, x = np.mgrid[0:height, 0:width]
    grey = (x * 255 // width).astype(np.uint8)
    grey[height // 5 : height // 2, width // 8 : width // 3] = 255
    return Image.merge("RGB", [Image.fromarray(grey), Image.fromarray(255 - grey), Image.fromarray(grey // 2)])


def encoded(img: Image.Image, fmt: str, **params: object) -> io.BytesIO:
    """``img`` saved in ``fmt`` into a rewound buffer."""
    out = io.BytesIO()
    img.save(out, fmt, **params)
    out.seek(0)
    return out


def run(buffer: io.BytesIO):  # noqa: ANN201 - a Decoded
    """Decode a buffer as the scan does."""
    return decode(buffer, len(buffer.getvalue()))


def test_jpeg_is_decoded_reduced_but_reports_full_size() -> None:
    decoded = run(encoded(picture(2400, 1600), "JPEG", quality=90))
    assert (decoded.width, decoded.height) == (2400, 1600)
    assert DECODE_SIZE <= min(decoded.image.size) < 1600 // 2
    assert decoded.format == "JPEG" and decoded.image.mode == "RGB"


def test_exif_orientation_turns_the_picture_and_swaps_the_size() -> None:
    upright = picture(300, 200)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned clockwise; display turns it back
    stored = upright.transpose(Image.Transpose.ROTATE_270)
    decoded = run(encoded(stored, "PNG", exif=exif.tobytes()))
    assert (decoded.width, decoded.height) == (300, 200)
    assert decoded.image.size == (300, 200)
    diff = np.abs(np.asarray(decoded.image, dtype=int) - np.asarray(upright, dtype=int)).mean()
    assert diff < 1


@pytest.mark.parametrize("mode", ["CMYK", "P", "1", "LA", "I;16", "I", "F"])
def test_odd_modes_become_l_or_rgb_keeping_the_picture(mode: str) -> None:
    source = picture().convert("L")
    if mode == "I;16":
        img = Image.fromarray(np.asarray(source, dtype=np.uint16) * 257)
    elif mode in ("I", "F"):
        img = source.convert(mode)
    elif mode == "P":
        img = picture().convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        img = picture().convert(mode)
    fmt = {"CMYK": "JPEG", "F": "TIFF", "I": "TIFF"}.get(mode, "PNG")
    decoded = run(encoded(img, fmt))
    assert decoded.image.mode in ("L", "RGB")
    # Compared at 32 x 20, where the dithering of mode "1" averages out.
    grey = np.asarray(decoded.image.convert("L").resize((32, 20), Image.Resampling.BOX), dtype=float)
    expected = np.asarray(picture().convert("L").resize((32, 20), Image.Resampling.BOX), dtype=float)
    assert np.corrcoef(grey.ravel(), expected.ravel())[0, 1] > 0.9


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    values = np.linspace(0, 65535, 256 * 128).reshape(128, 256).astype(np.uint16)
    decoded = run(encoded(Image.fromarray(values), "PNG"))
    grey = np.asarray(decoded.image)
    assert grey.max() >= 250 and grey.min() <= 5 and 100 < grey.mean() < 156


def test_transparent_pictures_are_flattened_over_white() -> None:
    rgba = picture().convert("RGBA")
    alpha = Image.new("L", rgba.size, 0)
    alpha.paste(255, (0, 0, 160, 200))
    rgba.putalpha(alpha)
    grey = np.asarray(run(encoded(rgba, "PNG")).image.convert("L"))
    assert grey[:, 200:].min() == 255  # the transparent half shows the white background


def test_a_picture_kept_in_the_alpha_channel_is_seen() -> None:
    shape = np.asarray(picture().convert("L"))
    for colour in ((0, 0, 0), (255, 255, 255)):
        rgba = Image.new("RGBA", (320, 200), colour + (0,))
        rgba.putalpha(Image.fromarray(shape))
        grey = np.asarray(run(encoded(rgba, "PNG")).image.convert("L"), dtype=float)
        assert abs(np.corrcoef(grey.ravel(), shape.ravel().astype(float))[0, 1]) > 0.9


def test_animated_gif_gives_its_first_frame() -> None:
    first = Image.new("L", (64, 64), 0)
    second = Image.new("L", (64, 64), 255)
    out = io.BytesIO()
    first.save(out, "GIF", save_all=True, append_images=[second], duration=100)
    out.seek(0)
    assert np.asarray(run(out).image.convert("L")).max() < 10


def test_decompression_bomb_is_refused_without_decoding() -> None:
    # A PNG that claims 100000 x 100000 pixels: refused from its header alone.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    )
    with pytest.raises(AssetError, match="decompression bomb"):
        decode(io.BytesIO(data), len(data))


def test_truncated_jpeg_is_an_asset_error() -> None:
    data = encoded(picture(800, 600), "JPEG").getvalue()
    with pytest.raises(AssetError, match="corrupt or truncated JPEG"):
        decode(io.BytesIO(data[: len(data) // 2]), len(data) // 2)


def test_not_an_image_and_empty_files() -> None:
    with pytest.raises(NotAnImage, match="not an image"):
        decode(io.BytesIO(b"%PDF-1.7 not a picture"), 22)
    with pytest.raises(AssetError, match="empty"):
        decode(io.BytesIO(b""), 0)


def test_heic_is_decoded_when_the_extra_is_installed() -> None:
    pytest.importorskip("pillow_heif", reason="the heic extra (pillow-heif) is not installed")
    decoded = run(encoded(picture(640, 400), "HEIF", quality=80))
    assert decoded.format == "HEIF" and (decoded.width, decoded.height) == (640, 400)
    grey = np.asarray(decoded.image.convert("L").resize((32, 20), Image.Resampling.BOX), dtype=float)
    expected = np.asarray(picture(640, 400).convert("L").resize((32, 20), Image.Resampling.BOX), dtype=float)
    assert np.corrcoef(grey.ravel(), expected.ravel())[0, 1] > 0.95
