"""An image's IPTC IIM block, as Pillow exposes it on a decoded JPEG.

Pillow keeps a JPEG's APP13 Photoshop resources in ``image.info["photoshop"]`` (by
resource id), and that survives the scan's reduced, oriented decode, whereas
``IptcImagePlugin.getiptcinfo`` looks at the file object and finds nothing on the
decoded copy. The IPTC tag of a TIFF does not survive the decode and is not seen.
"""

from __future__ import annotations

from PIL import Image

IPTC_RESOURCE = 0x0404
"""The Photoshop image resource that holds the IPTC IIM block."""


def iptc_block(image: Image.Image) -> bytes | None:
    """The raw IPTC IIM block of a decoded JPEG (its APP13 Photoshop resource 0x0404), or ``None``."""
    resources = image.info.get("photoshop")
    block = resources.get(IPTC_RESOURCE) if isinstance(resources, dict) else None
    return block if isinstance(block, bytes) and block else None


def parse_iim(block: bytes) -> dict[tuple[int, int], list[bytes]]:
    """The datasets of an IPTC IIM block, by (record, dataset); a damaged tail is ignored."""
    found: dict[tuple[int, int], list[bytes]] = {}
    at = 0
    while at + 5 <= len(block) and block[at] == 0x1C:
        record, dataset, length = block[at + 1], block[at + 2], int.from_bytes(block[at + 3 : at + 5], "big")
        at += 5
        if length & 0x8000:  # extended length: the next (length & 0x7FFF) bytes hold the real length
            size = length & 0x7FFF
            length = int.from_bytes(block[at : at + size], "big")
            at += size
        found.setdefault((record, dataset), []).append(block[at : at + length])
        at += length
    return found
