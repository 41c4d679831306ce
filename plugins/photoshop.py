"""Photoshop documents (PSD, and PSB, the large-document format) through ``psd-tools`` (the ``psd`` extra).

The stored composite (what Photoshop shows with every visible layer) is fingerprinted; the
layer count is recorded. Without the extra, Pillow still reads most PSD files' composite, but
not PSB files nor some writers' layer tables.
"""

from __future__ import annotations

import struct
from typing import IO, ClassVar

from dam_dedupe import hookimpl
from dam_dedupe.decoders import Decoder, Picture
from dam_dedupe.errors import AssetError, MissingExtra
from dam_dedupe.imaging import MAX_PIXELS


class Photoshop(Decoder):
    """PSD and PSB: the stored composite image, rendered from the layers only when none is stored."""

    name = "photoshop"
    description = "Photoshop PSD/PSB: the stored composite, layer count recorded"
    extensions: ClassVar[frozenset[str]] = frozenset({".psd", ".psb"})
    extra = "psd"
    pillow_reads = True  # most PSD files' composite, without the extra

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`MissingExtra` when psd-tools is not installed."""
        try:
            import psd_tools  # noqa: F401
        except ImportError as exc:
            raise MissingExtra("psd", "psd-tools") from exc

    @classmethod
    def accepts(cls, head: bytes, name: str) -> bool:
        """The ``8BPS`` signature with version 1 (PSD) or 2 (PSB)."""
        return head[:4] == b"8BPS" and head[4:6] in (b"\x00\x01", b"\x00\x02")

    def open(self, fp: IO[bytes], size: int, min_side: int) -> Picture:
        """The composite, and how many layers the document has."""
        from psd_tools import PSDImage

        fp.seek(0)
        try:
            psd = PSDImage.open(fp)
            if psd.width * psd.height > MAX_PIXELS:  # checked before any pixel is decoded
                raise AssetError(f"refused as a decompression bomb: {psd.width}x{psd.height} pixels")
            composite = psd.topil()
            if composite is None:  # no composite stored ("maximise compatibility" off): render it
                composite = psd.composite()
            layers = sum(1 for _layer in psd.descendants())
        except (OSError, ValueError, EOFError, KeyError, IndexError, AssertionError, struct.error) as exc:
            raise AssetError(f"corrupt or truncated PSD: {type(exc).__name__}: {exc}") from exc
        kind = "PSB" if psd.version == 2 else "PSD"
        return Picture(composite, psd.width, psd.height, kind, frames=max(1, layers))


@hookimpl
def dam_dedupe_decoders() -> list[type[Decoder]]:
    """The Photoshop decoder (it names the ``psd`` extra when psd-tools is missing)."""
    return [Photoshop]
