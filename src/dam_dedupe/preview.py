"""Colour previews for reviewers: small WebP pictures kept in the catalog and shown in the report.

The matcher's thumbnails are normalised greyscale, made to compare, not to look at; a
reviewer judging a colour edit or a crop needs the picture itself. Each fingerprinted image
gets one preview, :data:`PREVIEW_SIDE` pixels on its long side, a few KB, made from the
reduced decode the fingerprint already has (no second read or decode).
"""

from __future__ import annotations

import io

from PIL import Image

PREVIEW_SIDE = 160
"""The long side of a preview, in pixels."""

QUALITY = 50
METHOD = 0
"""libwebp's fastest method: a quarter less CPU than method 2 at quality 60 (a fifth of a millisecond
an image) for previews as large (6% more bytes) and as faithful (0.4 dB less PSNR), measured on the
benchmark corpus; a reviewer sees no difference at 160 pixels."""


def make_preview(image: Image.Image) -> bytes | None:
    """The image as a small WebP (transparency kept), or ``None`` when it cannot be encoded."""
    picture = image.copy()
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BILINEAR)
    if picture.mode not in ("RGB", "RGBA", "L"):
        picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
    out = io.BytesIO()
    try:
        picture.save(out, "WEBP", quality=QUALITY, method=METHOD)
    except (OSError, ValueError):
        return None
    return out.getvalue()
