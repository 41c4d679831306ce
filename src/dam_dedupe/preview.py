"""Colour previews for reviewers: small JPEG pictures kept in the catalog and shown in the report.

The matcher's thumbnails are normalised greyscale, made to compare, not to look at; a
reviewer judging a colour edit or a crop needs the picture itself. Each fingerprinted image
gets one preview, :data:`PREVIEW_SIDE` pixels on its long side, a few KB, made from the
reduced decode the fingerprint already has (no second read or decode). That decode is opaque
(transparent pictures are flattened as a viewer shows them), so JPEG serves: libjpeg encodes a
preview in a tenth of a millisecond where libwebp took 0.8 ms, for 3.5 KB against 2.6 KB
(measured on the benchmark corpus; docs/benchmarks.md). Catalogs made before keep WebP previews,
which the report still shows (:func:`preview_type`).
"""

from __future__ import annotations

import io

from PIL import Image

PREVIEW_SIDE = 160
"""The long side of a preview, in pixels."""

QUALITY = 60
"""JPEG quality: at 160 pixels a reviewer sees no blocking, and a preview stays near 3.5 KB."""


def make_preview(image: Image.Image) -> bytes | None:
    """The image as a small JPEG, or ``None`` when it cannot be encoded."""
    picture = image.copy()
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BILINEAR)
    if picture.mode not in ("RGB", "L"):
        picture = picture.convert("RGB")
    out = io.BytesIO()
    try:
        picture.save(out, "JPEG", quality=QUALITY)
    except (OSError, ValueError):
        return None
    return out.getvalue()


def preview_type(preview: bytes) -> str:
    """The media type of a stored preview: JPEG, or WebP (what catalogs made before 2026-12 hold)."""
    return "image/webp" if preview[:4] == b"RIFF" and preview[8:12] == b"WEBP" else "image/jpeg"
