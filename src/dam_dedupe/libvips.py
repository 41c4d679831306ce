"""Reduced decoding of PNG and WebP with libvips, when pyvips can be loaded.

Pillow decodes a PNG or WebP picture in full before it can be reduced. libvips streams a PNG
through libspng and averages it down as the rows arrive, and asks libwebp for a reduced
picture directly; on the benchmark corpus that is 1.5x (PNG) and 1.5x (WebP) faster than
Pillow (``docs/benchmarks.md``). JPEG stays with Pillow's DCT-scaled ``draft``, which libvips
does not beat, and every other format with Pillow.

The result is what :func:`dam_dedupe.imaging.decode` would make after a Pillow decode: the
picture averaged down by a whole factor, in mode ``L``, ``LA``, ``RGB`` or ``RGBA``; 16-bit
samples are averaged first and then scaled to 8 bits and rounded, as the Pillow path does
(a 16-bit copy of an 8-bit picture decodes to that picture either way). Anything else (float
samples, an unusual band count, a truncated or corrupt file, libvips missing) gives ``None``,
and Pillow decodes the file, so errors are worded one way whichever decoder was tried first.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from types import ModuleType
from typing import IO

from PIL import Image

log = logging.getLogger(__name__)

FORMATS = frozenset({"PNG", "WEBP"})
"""Pillow format names that libvips decodes here."""

MAX_BYTES = 64 * 1024 * 1024
"""Larger files are left to Pillow, which reads them from the spool instead of from memory."""

_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


@lru_cache(maxsize=1)
def _pyvips() -> ModuleType | None:
    """The pyvips module, or ``None`` when it or the libvips library cannot be loaded."""
    try:
        import pyvips
    except (ImportError, OSError) as exc:
        log.debug("libvips not available (%s): PNG and WebP are decoded by Pillow", exc)
        return None
    return pyvips


def reduce_with_vips(fp: IO[bytes], size: int, fmt: str, factor: int) -> Image.Image | None:
    """The picture in ``fp`` (``size`` bytes, Pillow format ``fmt``) averaged down by ``factor``, or ``None``.

    ``None`` means "decode it with Pillow": the format is not one libvips decodes here, the
    file is larger than :data:`MAX_BYTES`, or libvips could not decode it as 8-bit or 16-bit samples.
    """
    pyvips = _pyvips()
    if pyvips is None or fmt not in FORMATS or factor < 2 or size > MAX_BYTES:
        return None
    fp.seek(0)
    data = fp.read()
    try:
        if fmt == "WEBP":
            image = pyvips.Image.new_from_buffer(data, "", scale=1.0 / factor, fail_on="truncated")
        else:
            image = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on="truncated")
            image = image.shrink(factor, factor)
        if image.format == "ushort":
            image = (image * (255.0 / 65535.0)).rint().cast("uchar")
        if image.format != "uchar" or image.bands not in _MODES:
            return None
        pixels = image.write_to_memory()
    except pyvips.Error:
        return None
    mode = _MODES[image.bands]
    return Image.frombuffer(mode, (image.width, image.height), pixels, "raw", mode, 0, 1)
