"""Licensed imagery: reads the IPTC and XMP rights fields an image carries.

Stock agencies and photographers embed who owns a picture and on what terms. This
analyser reads, with Pillow alone:

=================  ==================  ====================================================
field              IPTC IIM dataset    XMP property
=================  ==================  ====================================================
creator            2:80 By-line        ``dc:creator``
credit_line        2:110 Credit        ``photoshop:Credit``
copyright_notice   2:116 Copyright     ``dc:rights``
usage_terms        --                  ``xmpRights:UsageTerms``
web_statement      --                  ``xmpRights:WebStatement``
licensor           --                  ``plus:Licensor`` (``plus:LicensorName``, ``plus:LicensorURL``)
=================  ==================  ====================================================

XMP wins where both are present. IPTC is read from a JPEG's APP13 block; the IPTC
tag of a TIFF is not seen (the scan's decoded copy of the image drops it).

An image is flagged ``licensed`` when it names a licensor, usage terms or a web
statement, or carries a copyright notice or credit line that does not name the
organisation itself. Options in ``[analysis.rights]``:

``own_names``
    names of the organisation (case-insensitive substrings): a copyright notice or
    credit line containing one is the organisation's own, not a licence (default: none).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from PIL import Image

from dam_dedupe import hookimpl
from dam_dedupe.analysis import LICENSED, Analysis
from dam_dedupe.iptc import iptc_block, parse_iim
from dam_dedupe.records import AssetRecord

FIELDS = ("creator", "credit_line", "copyright_notice", "usage_terms", "web_statement", "licensor")

IPTC_DATASETS = {(2, 80): "creator", (2, 110): "credit_line", (2, 116): "copyright_notice"}

NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
}
XMP_PROPERTIES = {
    "creator": ("dc", "creator"),
    "credit_line": ("photoshop", "Credit"),
    "copyright_notice": ("dc", "rights"),
    "usage_terms": ("xmpRights", "UsageTerms"),
    "web_statement": ("xmpRights", "WebStatement"),
}
LICENCE_FIELDS = ("licensor", "usage_terms", "web_statement")
MAX_VALUE = 500


def _text(value: bytes | list[bytes] | str) -> str:
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(value.split())[:MAX_VALUE]


def read_iptc(image: Image.Image) -> dict[str, str]:
    """The rights fields of the image's IPTC IIM block (a JPEG's APP13 Photoshop resource), by field name."""
    block = iptc_block(image)
    if block is None:
        return {}
    datasets = parse_iim(block)
    return {name: _text(datasets[key]) for key, name in IPTC_DATASETS.items() if datasets.get(key)}


def _xmp_packet(image: Image.Image) -> bytes | None:
    packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if isinstance(packet, str):
        packet = packet.encode("utf-8")
    return packet or None


def _property(description: ET.Element, prefix: str, local: str) -> str:
    """A property's value, whether an attribute, a simple element or an rdf:Alt/Seq/Bag list."""
    attribute = description.get(f"{{{NS[prefix]}}}{local}")
    if attribute is not None:
        return _text(attribute)
    element = description.find(f"{prefix}:{local}", NS)
    if element is None:
        return ""
    items = [li.text or "" for li in element.iter(f"{{{NS['rdf']}}}li")]
    if items:
        return _text("; ".join(i for i in items if i.strip()))
    return _text(element.get(f"{{{NS['rdf']}}}resource") or element.text or "")


def read_xmp(image: Image.Image) -> dict[str, str]:
    """The rights fields of the image's XMP packet, by field name; empty when it has none or it is unreadable."""
    packet = _xmp_packet(image)
    if packet is None or re.search(rb"<!(DOCTYPE|ENTITY)", packet):
        return {}  # entity declarations have no place in XMP: refuse rather than expand them
    try:
        root = ET.fromstring(packet.strip(b"\x00 \r\n\t"))
    except ET.ParseError:
        return {}
    found: dict[str, str] = {}
    for description in root.iter(f"{{{NS['rdf']}}}Description"):
        for name, (prefix, local) in XMP_PROPERTIES.items():
            value = _property(description, prefix, local)
            if value and name not in found:
                found[name] = value
        for licensor in description.iterfind("plus:Licensor", NS):
            names = [e.text or "" for e in licensor.iter(f"{{{NS['plus']}}}LicensorName")]
            urls = [e.text or "" for e in licensor.iter(f"{{{NS['plus']}}}LicensorURL")]
            value = _text("; ".join(v for v in names + urls if v.strip()))
            if value and "licensor" not in found:
                found["licensor"] = value
    return found


def is_licensed(fields: Mapping[str, str], own_names: list[str]) -> bool:
    """Whether the rights fields show third-party imagery rather than the organisation's own."""
    if any(fields.get(name) for name in LICENCE_FIELDS):
        return True
    owned = [n.casefold() for n in own_names if n.strip()]
    for name in ("copyright_notice", "credit_line"):
        value = fields.get(name, "").casefold()
        if value and not any(own in value for own in owned):
            return True
    return False


@hookimpl
def dam_dedupe_analyse_asset(asset: AssetRecord, image: Image.Image, options: Mapping[str, Any]) -> Analysis | None:
    """Report the image's rights fields; flag it ``licensed`` when they show third-party rights."""
    fields = {**read_iptc(image), **read_xmp(image)}
    if not fields:
        return None
    own_names = [str(n) for n in options.get("rights", {}).get("own_names", [])]
    flags = frozenset([LICENSED]) if is_licensed(fields, own_names) else frozenset()
    return Analysis(flags, {name: fields[name] for name in FIELDS if name in fields})
