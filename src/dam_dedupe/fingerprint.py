"""Fingerprinting one asset: read its bytes once, hash them, decode them reduced.

This runs in worker processes. It reads through a bounded spool (in memory up to
:data:`SPOOL_MEMORY`, on disk beyond), so a huge object never sits whole in memory.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from typing import IO

from PIL import Image

from dam_dedupe.imaging import decode
from dam_dedupe.iptc import iptc_block
from dam_dedupe.matcher.perceptual import describe
from dam_dedupe.preview import make_preview
from dam_dedupe.records import Fingerprint

FINGERPRINT_VERSION = 5
"""Raised whenever what a fingerprint holds changes (hash families, thumbnail, decode), so that
scans fingerprint older assets again. 1: 32x32 thumbnails; 2: 64x64 thumbnails, aligned
reduction; 3: normalised thumbnails with a ``tone``, hashes from a floating-point reduction; 4: 16-bit
pictures reduced like 8-bit ones and rounded to 8 bits (a 16-bit copy decodes to its original);
5: an ``inner`` hash (the ``dct`` hash of the middle 91%), which finds crops of 4-5% a side."""

SPOOL_MEMORY = 32 * 1024 * 1024
CHUNK = 1024 * 1024


class _HashingReader:
    """Wraps a stream, hashing what passes through."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data


def fingerprint_stream(
    stream: IO[bytes], inspect: Callable[[Image.Image, str], None] | None = None, name: str = ""
) -> Fingerprint:
    """Fingerprint an image from a readable stream.

    ``inspect``, if given, is called with the decode the fingerprint is made from (oriented,
    reduced, its embedded metadata in ``info``) and the content's SHA-256: analysers see the
    image without a second read or a second decode, and byte-identical copies can share
    their result. ``name`` (the file name) lets a plugin's decoder recognise formats that share
    a container, such as camera RAW files that are TIFFs inside.

    Returns the :class:`~dam_dedupe.records.Fingerprint`; raises
    :class:`~dam_dedupe.imaging.NotAnImage` or :class:`~dam_dedupe.errors.AssetError`
    for content that cannot be used, with the reason.
    """
    reader = _HashingReader(stream)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
        shutil.copyfileobj(reader, spool, CHUNK)
        spool.seek(0)
        decoded = decode(spool, reader.size, name=name)
        perceptual, thumbnail = describe(decoded.image)
        metadata_fields = count_metadata_fields(decoded.image)
        preview = make_preview(decoded.image)
        if inspect is not None:
            inspect(decoded.image, reader.sha256.hexdigest())
    return Fingerprint(
        sha256=reader.sha256.hexdigest(),
        size=reader.size,
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        perceptual=perceptual,
        thumbnail=thumbnail,
        metadata_fields=metadata_fields,
        version=FINGERPRINT_VERSION,
        preview=preview,
        frames=decoded.frames,
    )


def count_metadata_fields(image: Image.Image) -> int:
    """EXIF tags, plus one for an IPTC block and one for an XMP packet."""
    fields = len(image.getexif())
    if iptc_block(image) is not None:
        fields += 1
    if image.info.get("xmp") or image.info.get("XML:com.adobe.xmp"):
        fields += 1
    return fields
