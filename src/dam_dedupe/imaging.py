"""Recognising and decoding images: by content, never by name alone.

The decode is the reduced one matching needs: JPEG DCT-scaled decoding (Pillow's
``draft``), EXIF orientation applied, decompression bombs refused, and only the first
frame of an animation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from dam_dedupe.errors import AssetError

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

DECODE_SIZE = 256
"""The smallest side a reduced decode aims for; matching needs no more."""


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
        image: the first frame, oriented, reduced where the format allows.
        width, height: the full-resolution size after EXIF orientation.
        format: the decoder's format name.
    """

    image: Image.Image
    width: int
    height: int
    format: str


def decode(fp: IO[bytes], size: int) -> Decoded:
    """Open, reduce and orient an image from a seekable binary file of ``size`` bytes.

    The first frame is decoded at a reduced size no smaller than :data:`DECODE_SIZE` on its
    short side where the format allows, with EXIF orientation applied.
    Raises :class:`NotAnImage` or :class:`~dam_dedupe.errors.AssetError` with a reason a user can act on.
    """
    if size == 0:
        raise AssetError("empty file (0 bytes)")
    try:
        img = Image.open(fp)
    except UnidentifiedImageError as exc:
        fp.seek(0)
        raise NotAnImage(f"not an image (content starts {fp.read(8)!r})") from exc
    except Image.DecompressionBombError as exc:
        raise AssetError(f"refused as a decompression bomb: {exc}") from exc
    try:
        width, height = img.size
        if img.getexif().get(ORIENTATION_TAG, 1) in (5, 6, 7, 8):
            width, height = height, width
        fmt = img.format or "unknown"
        img.draft("RGB", (DECODE_SIZE, DECODE_SIZE))
        img.load()
        return Decoded(ImageOps.exif_transpose(img), width, height, fmt)
    except Image.DecompressionBombError as exc:
        raise AssetError(f"refused as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise AssetError(f"corrupt or truncated {img.format or 'image'}: {exc}") from exc
