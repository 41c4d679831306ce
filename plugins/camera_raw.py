"""Camera RAW files (CR2, CR3, NEF, ARW, DNG, RAF, ORF, …) through LibRaw (``rawpy``, the ``raw`` extra).

Most cameras store a full-size JPEG rendering beside the sensor data; when it is large enough to
fingerprint, it is used, which is fast (a DCT-scaled JPEG decode) and close to what the
photographer's JPEG export shows. Otherwise the sensor data is demosaiced at half size. A RAW
file and its JPEG export are related as ``derivative`` by :mod:`dam_dedupe.plugins.derivatives`,
so a RAW master is never proposed for quarantine.
"""

from __future__ import annotations

import io
from typing import IO, BinaryIO, ClassVar, cast

from PIL import Image

from dam_dedupe import hookimpl
from dam_dedupe.decoders import Decoder, Picture
from dam_dedupe.errors import AssetError, MissingExtra
from dam_dedupe.imaging import MAX_PIXELS

RAW_EXTENSIONS = frozenset(
    {".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf", ".orf", ".rw2", ".pef", ".srw"}
)
"""Endings of the RAW formats LibRaw reads; TIFF-based ones are told from a plain TIFF by this ending."""

TIFF_HEADS = (b"II*\x00", b"MM\x00*")

_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}
"""LibRaw's ``flip`` as the EXIF orientation that undoes it."""


class CameraRaw(Decoder):
    """Camera RAW: the embedded full-size JPEG preview when there is one, else a half-size RAW decode."""

    name = "camera-raw"
    description = "camera RAW (CR2, CR3, NEF, ARW, DNG, RAF, ORF, RW2, PEF): embedded JPEG preview, else RAW decode"
    extensions: ClassVar[frozenset[str]] = RAW_EXTENSIONS
    extra = "raw"

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`MissingExtra` when rawpy is not installed."""
        try:
            import rawpy  # noqa: F401
        except ImportError as exc:
            raise MissingExtra("raw", "rawpy") from exc

    @classmethod
    def accepts(cls, head: bytes, name: str) -> bool:
        """RAW formats with a signature of their own, and TIFF-based ones named as RAW files."""
        if head[4:12] == b"ftypcrx " or head.startswith(b"FUJIFILMCCD-RAW") or head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
            return True
        if head[:4] in TIFF_HEADS and head[8:10] == b"CR":  # Canon CR2
            return True
        ending = name[name.rfind(".") :].lower() if "." in name else ""
        return head[:4] in TIFF_HEADS + (b"IIU\x00",) and ending in RAW_EXTENSIONS

    def open(self, fp: IO[bytes], size: int, min_side: int) -> Picture:
        """The preview JPEG when its short side is at least twice ``min_side``, else the demosaiced sensor data."""
        import rawpy

        fp.seek(0)
        try:
            with rawpy.imread(cast(BinaryIO, fp)) as raw:
                sizes = raw.sizes
                orientation = _FLIP_TO_ORIENTATION.get(sizes.flip, 1)
                preview = _preview(raw, 2 * min_side)
                if preview is not None:
                    return Picture(preview, sizes.width, sizes.height, "RAW", orientation=orientation)
                if sizes.raw_width * sizes.raw_height > MAX_PIXELS:  # before the sensor data is demosaiced
                    raise AssetError(f"refused as a decompression bomb: {sizes.raw_width}x{sizes.raw_height} pixels")
                pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
        except (rawpy.LibRawError, OSError, ValueError) as exc:
            raise AssetError(f"corrupt or unsupported camera RAW: {type(exc).__name__}: {exc}") from exc
        width, height = (sizes.height, sizes.width) if orientation in (6, 8) else (sizes.width, sizes.height)
        return Picture(Image.fromarray(pixels), width, height, "RAW")  # postprocess has applied the flip


def _preview(raw: object, min_short_side: int) -> Image.Image | None:
    """The embedded JPEG preview, opened (not decoded), when its short side is at least ``min_short_side``."""
    import rawpy

    try:
        thumb = raw.extract_thumb()  # type: ignore[attr-defined]
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format != rawpy.ThumbFormat.JPEG:
        return None
    try:
        image = Image.open(io.BytesIO(thumb.data))
    except OSError:
        return None
    return image if min(image.size) >= min_short_side else None


@hookimpl
def dam_dedupe_decoders() -> list[type[Decoder]]:
    """The camera RAW decoder (it names the ``raw`` extra when rawpy is missing)."""
    return [CameraRaw]
