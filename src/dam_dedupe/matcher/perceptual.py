"""Perceptual descriptions of an image: hashes by family and a tiny thumbnail."""

from __future__ import annotations

import imagehash
from PIL import Image

THUMBNAIL_SIDE = 32


def describe(image: Image.Image) -> tuple[dict[str, str], bytes]:
    """Return the image's perceptual hashes (family name to hex) and a normalised thumbnail.

    The thumbnail is ``THUMBNAIL_SIDE`` square, 8-bit greyscale, raw bytes row by row.
    """
    grey = image.convert("L")
    hashes = {"phash": str(imagehash.phash(grey)), "dhash": str(imagehash.dhash(grey))}
    thumbnail = grey.resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX).tobytes()
    return hashes, thumbnail
