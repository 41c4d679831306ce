"""Fingerprinting an uploaded body exactly as a scan fingerprints a stored asset, behind the service's limits.

The picture's size is read from the file's header (Pillow opens the header only) and checked before
any decoder allocates pixels, whatever the format, so a decompression bomb costs nothing; then the
body goes through :func:`~dam_dedupe.fingerprint.fingerprint_stream`, the scan's own path, so that a
check and a scan see the same fingerprint.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from dam_dedupe.errors import AssetError
from dam_dedupe.fingerprint import fingerprint_stream
from dam_dedupe.records import Fingerprint


class UnusableUpload(ValueError):
    """The body is not an image the service will decode (the reason is safe to show the caller)."""


def picture_size(body: bytes) -> tuple[int, int, str]:
    """(width, height, format) from the header alone; raises :class:`UnusableUpload` when it is no image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(body)) as image:
                return image.size[0], image.size[1], image.format or "unknown"
    except Image.DecompressionBombError as exc:
        raise UnusableUpload(f"refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnusableUpload(f"not an image (content starts {body[:8]!r})") from exc
    except Exception as exc:  # a decoder's own failure on a malformed header
        raise UnusableUpload(f"not a readable image header: {type(exc).__name__}") from exc


def fingerprint_upload(body: bytes, max_pixels: int) -> Fingerprint:
    """The fingerprint of an uploaded image, as a scan would make it.

    Raises :class:`UnusableUpload` for an empty body, a body no decoder knows, a picture of more than
    ``max_pixels`` pixels (from its header), and a corrupt or truncated image.
    """
    if not body:
        raise UnusableUpload("empty body: send the image's bytes")
    width, height, fmt = picture_size(body)
    if width * height > max_pixels:
        raise UnusableUpload(
            f"refused as a decompression bomb: {fmt} of {width}x{height} pixels is more than {max_pixels}"
        )
    try:
        return fingerprint_stream(io.BytesIO(body))
    except AssetError as exc:
        raise UnusableUpload(str(exc)) from exc
    except Exception as exc:  # whatever else a decoder raises for hostile bytes is the body's fault
        raise UnusableUpload(f"cannot decode the {fmt} image: {type(exc).__name__}") from exc
