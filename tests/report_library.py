"""A small library with known facts for the audit-report tests.

Two sources in two jurisdictions (``hk-marketing`` in HK, external-facing;
``sg-finance`` in SG, internal), photographs of a person from scikit-image, stock
imagery carrying IPTC and XMP rights fields written with Pillow, the organisation's
own logo, a file whose name carries markup, and two files that share a name and a
size but not their content.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data

from dam_dedupe.cli import main

MARKUP_NAME = "<img src=x onerror=alert(1)>.jpg"
HK_PRICE, SG_PRICE = 0.10, 0.02


def iim(dataset: int, value: str) -> bytes:
    """One IPTC IIM record 2 dataset."""
    raw = value.encode("utf-8")
    return bytes([0x1C, 2, dataset]) + len(raw).to_bytes(2, "big") + raw


def app13(iptc: bytes) -> bytes:
    """A JPEG APP13 segment (Photoshop resource 0x0404) holding an IPTC block, for Pillow's ``extra``."""
    resource = b"8BIM\x04\x04\x00\x00" + len(iptc).to_bytes(4, "big") + iptc + (b"\x00" if len(iptc) % 2 else b"")
    body = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + (len(body) + 2).to_bytes(2, "big") + body


XMP_RIGHTS = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"
  xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" xmpRights:WebStatement="https://stock.example/licence/8841">
 <xmpRights:UsageTerms><rdf:Alt>
  <rdf:li xml:lang="x-default">Web and print until 2027-12-31; no resale</rdf:li></rdf:Alt></xmpRights:UsageTerms>
 <plus:Licensor><rdf:Seq><rdf:li rdf:parseType="Resource"><plus:LicensorName>Harbour Stock Ltd</plus:LicensorName>
  <plus:LicensorURL>https://stock.example</plus:LicensorURL></rdf:li></rdf:Seq></plus:Licensor>
</rdf:Description></rdf:RDF></x:xmpmeta>"""

STOCK_RIGHTS = {
    "creator": "Jane Photographer",
    "credit_line": "Harbour Stock",
    "copyright_notice": "© 2026 Harbour Stock Ltd",
    "usage_terms": "Web and print until 2027-12-31; no resale",
    "web_statement": "https://stock.example/licence/8841",
    "licensor": "Harbour Stock Ltd; https://stock.example",
}


def jpeg(pixels: np.ndarray, iptc: bytes = b"", xmp: str = "") -> bytes:
    """Encode an image as JPEG with optional IPTC and XMP blocks."""
    out = io.BytesIO()
    extra = app13(iptc) if iptc else b""
    Image.fromarray(pixels).convert("RGB").save(out, "JPEG", quality=90, extra=extra, xmp=xmp.encode() or None)
    return out.getvalue()


def png(pixels: np.ndarray) -> bytes:
    """Encode an image as PNG."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


@dataclass(frozen=True)
class AuditLibrary:
    """Where the library is and its configuration file."""

    root: Path
    config: Path

    def path(self, relative: str) -> Path:
        """A file of the library."""
        return self.root / relative


def _write(root: Path, relative: str, content: bytes, mtime: int) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))


def make_audit_library(root: Path) -> AuditLibrary:
    """Write the library and its ``dam-dedupe.toml`` under ``root``.

    HK copies are older than SG ones, so the oldest-copy rule makes each HK copy canonical.
    """
    old, new = 1_700_000_000, 1_760_000_000
    astronaut = png(data.astronaut())
    face_only = jpeg(data.astronaut()[0:260, 100:360])
    stock = jpeg(
        data.rocket(),
        iim(80, "Jane Photographer") + iim(110, "Harbour Stock") + iim(116, "© 2026 Harbour Stock Ltd"),
        XMP_RIGHTS,
    )
    logo = jpeg(data.coffee(), iim(116, "© Example Ltd"))
    cat = jpeg(data.chelsea())
    moon = jpeg(data.moon())
    coins, text = jpeg(data.coins()), jpeg(data.text())
    width = max(len(coins), len(text))
    coins, text = coins.ljust(width, b"\x00"), text.ljust(width, b"\x00")  # bytes after the JPEG end are ignored
    files = {
        "hk/people/astronaut.png": (astronaut, old),
        "sg/archive/astronaut copy.png": (astronaut, new),
        "hk/people/portrait.jpg": (face_only, old),
        "hk/stock/harbour.jpg": (stock, old),
        "sg/reports/harbour-2026.jpg": (stock, new),
        "hk/brand/logo.jpg": (logo, old),
        "hk/brand/logo-copy.jpg": (logo, new),
        f"hk/people/{MARKUP_NAME}": (cat, old),
        "sg/cats/chelsea.jpg": (cat, new),
        "hk/misc/DSC_0002.jpg": (moon, old),
        "sg/misc/DSC_0002.jpg": (moon, new),
        "hk/misc/IMG_0001.jpg": (coins, old),
        "sg/misc/IMG_0001.jpg": (text, new),
    }
    for relative, (content, mtime) in files.items():
        _write(root, relative, content, mtime)
    config = root / "dam-dedupe.toml"
    config.write_text(
        f"""
[report]
currency = "HKD"
price_per_gb_month = 0.5

[sources.hk-marketing]
uri = "{(root / "hk").as_posix()}"
residency = "HK"
risk_tier = "external-facing"
department = "Marketing"
price_per_gb_month = {HK_PRICE}

[sources.sg-finance]
uri = "{(root / "sg").as_posix()}"
residency = "SG"
risk_tier = "internal"
department = "Finance"
price_per_gb_month = {SG_PRICE}

[analysis.rights]
own_names = ["Example Ltd"]
""",
        encoding="utf-8",
    )
    return AuditLibrary(root, config)


def run(library: AuditLibrary, catalog: Path, *args: str) -> str:
    """Run the command line against the library's configuration and catalog; return its output."""
    result = CliRunner().invoke(main, ["--config", str(library.config), "--catalog", str(catalog), *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="session")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditLibrary, Path]:
    """The audit library, scanned into a catalog with two worker processes (the analysers run there)."""
    root = tmp_path_factory.mktemp("audit")
    library = make_audit_library(root / "library")
    catalog = root / "catalog.sqlite"
    run(library, catalog, "scan", "hk-marketing", "sg-finance", "--workers", "2")
    return library, catalog


def embedded_data(html: str) -> dict[str, Any]:
    """The facts an HTML report embeds for its script (gzip-compressed JSON, base64)."""
    match = re.search(r'<script id="report-data" type="application/octet-stream">([^<]*)</script>', html)
    assert match is not None, "no embedded report data"
    data: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(match.group(1))))
    return data
