"""Recognising and decoding images: by content, never by name alone.

The decode is the reduced one matching needs: JPEG DCT-scaled decoding (Pillow's
``draft``), PNG and WebP through libvips when it can be loaded (:mod:`dam_dedupe.libvips`),
EXIF orientation applied, decompression bombs refused, and only the first frame of an
animation.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from dam_dedupe.decoders import HEAD_BYTES, Picture, decoder_for
from dam_dedupe.errors import AssetError
from dam_dedupe.libvips import reduce_with_vips

# Files with these endings are not read at all: a document share holds many of them.
NOT_IMAGE_EXTENSIONS = frozenset(
    [
        ".txt",
        ".csv",
        ".json",
        ".xml",
        ".html",
        ".htm",
        ".md",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".ppt",
        ".pptx",
        ".pdf",
        ".zip",
        ".7z",
        ".rar",
        ".gz",
        ".tar",
        ".mp4",
        ".mov",
        ".avi",
        ".mkv",
        ".mp3",
        ".wav",
        ".exe",
        ".dll",
        ".db",
        ".sqlite",
        ".ini",
        ".log",
        ".url",
        ".lnk",
        ".py",
        ".js",
        ".css",
    ]
)

ORIENTATION_TAG = 0x0112

DECODE_SIZE = 128
"""The smallest side a reduced decode aims for: the matcher works on 64x64, and a decode of
at least twice that keeps its box filter honest."""

JPEG_SCALES = (8, 4, 2)
"""The reductions JPEG's DCT-scaled decoding offers (besides 1), largest first."""

MAX_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
"""Largest picture (width x height as stored) decoded at all; beyond it the file is refused
as a decompression bomb. JPEG is decoded reduced, so a large JPEG costs little memory."""

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""What undoes each EXIF orientation (as :func:`PIL.ImageOps.exif_transpose` does)."""

_FLAT = 2.0
"""Standard deviation (of 0..255 values) below which a channel counts as flat."""


def _register_optional_decoders() -> None:
    """Let Pillow open HEIC/HEIF when pillow-heif (the ``heic`` extra) is installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return
    register_heif_opener()


_register_optional_decoders()


class NotAnImage(AssetError):
    """The content is not an image format the decoders know."""


IMAGE_EXTENSIONS = frozenset(
    [".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp", ".heic", ".heif", ".avif"]
)


def has_image_extension(name: str) -> bool:
    """Whether a file name says it is an image."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def worth_reading(name: str) -> bool:
    """Whether a file name leaves open that the content is an image (unknown endings do)."""
    return os.path.splitext(name)[1].lower() not in NOT_IMAGE_EXTENSIONS


@dataclass(frozen=True, slots=True)
class Decoded:
    """A reduced decode of an image.

    Attributes:
        image: the first frame, oriented, reduced where the format allows, mode ``L`` or ``RGB``.
        width, height: the full-resolution size after EXIF orientation.
        format: the decoder's format name.
        frames: pages, frames or layers the file holds (the first is decoded).
    """

    image: Image.Image
    width: int
    height: int
    format: str
    frames: int = 1


def decode(fp: IO[bytes], size: int, min_side: int = DECODE_SIZE, name: str = "") -> Decoded:
    """Open, reduce and orient an image from a seekable binary file of ``size`` bytes.

    The first frame is decoded at a reduced size no smaller than ``min_side`` on its
    short side where the format allows (JPEG's DCT scaling; other formats are reduced right
    after decoding), with EXIF orientation applied and odd modes normalised to ``L`` or
    ``RGB`` (see :func:`normalise_mode`).
    A decoder a plugin contributes (:mod:`dam_dedupe.decoders`) that accepts the first bytes and
    ``name`` (the file name, a hint for formats that share a container) opens the file in place of Pillow.
    Raises :class:`NotAnImage` or :class:`~dam_dedupe.errors.AssetError` with a reason a user can act on,
    and :class:`~dam_dedupe.errors.MissingExtra` when the decoder for the format needs an extra.
    """
    if size == 0:
        raise AssetError("empty file (0 bytes)")
    head = fp.read(HEAD_BYTES)
    fp.seek(0)
    if (plugin := decoder_for(head, name)) is not None:
        plugin.check_available()  # raises MissingExtra naming the install command
        return _from_picture(plugin().open(fp, size, min_side), min_side)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp)
    except UnidentifiedImageError as exc:
        fp.seek(0)
        raise NotAnImage(f"not an image (content starts {fp.read(8)!r})") from exc
    except Image.DecompressionBombError as exc:
        raise AssetError(f"refused as a decompression bomb: {exc}") from exc
    fmt = img.format or "unknown"
    try:
        width, height = img.size
        if width * height > MAX_PIXELS and fmt != "JPEG":
            raise AssetError(f"refused as a decompression bomb: {width}x{height} pixels is more than {MAX_PIXELS}")
        orientation = _orientation(img)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        img.draft("RGB" if img.mode in ("RGB", "YCbCr") else img.mode, (min_side, min_side))
        reduced = reduce_with_vips(fp, size, fmt, _factor(img, min_side))
        if reduced is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.load()
            reduced = _reduce(img, min_side)
        else:
            reduced.info = img.info
        picture = normalise_mode(reduced)
        if orientation in _TRANSPOSE:
            picture = picture.transpose(_TRANSPOSE[orientation])
        return Decoded(picture, width, height, fmt, frame_count(img))
    except Image.DecompressionBombError as exc:
        raise AssetError(f"refused as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise AssetError(f"corrupt or truncated {fmt}: {exc}") from exc


def frame_count(img: Image.Image) -> int:
    """How many pages or frames an opened file holds (1 when the format has no such notion or cannot say)."""
    try:
        return max(1, int(getattr(img, "n_frames", 1)))
    except (OSError, SyntaxError, ValueError, EOFError, struct.error):
        return 1  # a layer table Pillow cannot read (some PSD writers): the composite still decodes


def _from_picture(found: Picture, min_side: int) -> Decoded:
    """Finish a plugin decoder's picture as :func:`decode` finishes Pillow's: bounded, reduced, normalised, oriented."""
    img, fmt = found.image, found.format
    width, height = found.width, found.height
    if width * height > MAX_PIXELS and img.format != "JPEG":
        raise AssetError(f"refused as a decompression bomb: {width}x{height} pixels is more than {MAX_PIXELS}")
    orientation = found.orientation if found.orientation != 1 else _orientation(img)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    try:
        img.draft("RGB" if img.mode in ("RGB", "YCbCr") else img.mode, (min_side, min_side))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
        picture = normalise_mode(_reduce(img, min_side))
    except Image.DecompressionBombError as exc:
        raise AssetError(f"refused as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise AssetError(f"corrupt or truncated {fmt}: {exc}") from exc
    if orientation in _TRANSPOSE:
        picture = picture.transpose(_TRANSPOSE[orientation])
    return Decoded(picture, width, height, fmt, found.frames)


def _reduce(img: Image.Image, min_side: int) -> Image.Image:
    """Shrink by the factor JPEG's DCT scaling would use for the same size: the largest of 8,
    4 and 2 that keeps both sides at least ``min_side`` (box averaging, as a DCT-scaled decode
    is). Copies in different formats then reach the matcher at the same resolution, and fine
    textures alias alike."""
    factor = _factor(img, min_side)
    if factor < 2 or img.format == "JPEG":
        return img
    if img.mode in ("P", "PA", "1"):
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    if img.mode in SIXTEEN_BIT_GREY:
        img = _widened(img)
    if img.mode not in ("L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F"):
        return img
    reduced = img.reduce(factor)
    reduced.info = img.info
    return reduced


SIXTEEN_BIT_GREY = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
"""Pillow's modes for 16-bit greyscale samples (a 16-bit PNG or TIFF)."""


def _widened(img: Image.Image) -> Image.Image:
    """A 16-bit greyscale picture as mode ``I`` (32-bit integers, the same values), which Pillow
    can reduce; :func:`normalise_mode` still scales it from 16 bits."""
    widened = img.convert("I")
    widened.info.update(img.info)
    widened.info["sixteen_bit"] = True
    return widened


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation of an opened image, without decoding its pixels.

    Pillow looks for a PNG's ``eXIf`` chunk after the image data by decoding the image; the
    PNG specification puts the chunk before the image data, where opening has already read it.
    """
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    return int(img.getexif().get(ORIENTATION_TAG, 1))


def _factor(img: Image.Image, min_side: int) -> int:
    """The largest of :data:`JPEG_SCALES` that keeps both sides at least ``min_side``, or 1."""
    ratio = min(img.size[0] // min_side, img.size[1] // min_side)
    return next((f for f in JPEG_SCALES if f <= ratio), 1)


def normalise_mode(img: Image.Image) -> Image.Image:
    """Return ``img`` as ``L`` or ``RGB``, whatever its mode.

    16-bit and 32-bit pictures are scaled to 8 bits (not clipped) and rounded, so that a 16-bit
    copy of an 8-bit picture (each level v stored as 257 x v) decodes to that picture; palettes are expanded;
    CMYK and other colour spaces are converted; transparent pictures are flattened over
    white, as a viewer shows them, except when that leaves nothing to see (a picture kept
    wholly in the alpha channel over flat colour), where they are flattened over black.
    """
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in ("I", "F") or img.mode in SIXTEEN_BIT_GREY:
        values = np.asarray(img, dtype=np.float64)
        sixteen = img.mode in SIXTEEN_BIT_GREY or bool(img.info.get("sixteen_bit"))
        top = 65535.0 if sixteen or values.max() > 255 else 255.0
        if img.mode == "F" and values.max() <= 1.0:
            top = 1.0
        return Image.fromarray(np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" not in img.info:
        return img.convert("RGB")
    if img.mode in ("P", "PA", "LA", "La", "RGBA", "RGBa"):
        return _flatten(img.convert("RGBA"))
    return img.convert("RGB")


def _flatten(rgba: Image.Image) -> Image.Image:
    """An RGBA picture flattened over white, or over black when white leaves it flat."""
    alpha = rgba.getchannel("A")
    on_white = Image.new("RGB", rgba.size, (255, 255, 255))
    on_white.paste(rgba, mask=alpha)
    if np.asarray(on_white.convert("L")).std() >= _FLAT or np.asarray(alpha).std() < _FLAT:
        return on_white
    on_black = Image.new("RGB", rgba.size, (0, 0, 0))
    on_black.paste(rgba, mask=alpha)
    return on_black
