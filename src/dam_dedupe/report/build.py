"""The report's facts, as one versioned JSON-ready document built from the catalog.

The CSV and HTML reports are views of this document, so every format carries the
same facts. The schema is documented in ``docs/report-schema.md``; bump
:data:`SCHEMA` on any incompatible change.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from PIL import Image

from dam_dedupe import __version__
from dam_dedupe.catalog import Catalog, CatalogAsset

SCHEMA = "dam-dedupe/report/1"


def display_path(uri: str) -> str:
    """A URI made readable: percent-escapes decoded (undecodable bytes shown as U+FFFD)."""
    return unquote(uri, errors="replace")


def thumbnail_data_uri(asset: CatalogAsset) -> str | None:
    """The stored thumbnail as a ``data:image/png`` URI, or ``None``."""
    fp = asset.fingerprint
    if fp is None or not fp.thumbnail:
        return None
    side = int(len(fp.thumbnail) ** 0.5)
    if side * side != len(fp.thumbnail):
        return None
    buffer = io.BytesIO()
    Image.frombytes("L", (side, side), fp.thumbnail).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _member(asset: CatalogAsset, match: str, evidence: dict[str, object], canonical: bool) -> dict[str, Any]:
    record, fp = asset.record, asset.fingerprint
    return {
        "uri": record.uri,
        "path": display_path(record.uri),
        "name": record.name,
        "source": record.source,
        "size": record.size,
        "modified": record.modified.isoformat() if record.modified else None,
        "sha256": fp.sha256 if fp else None,
        "store_hash": record.store_hash,
        "width": fp.width if fp else None,
        "height": fp.height if fp else None,
        "format": fp.format if fp else None,
        "match": match,
        "canonical": canonical,
        "evidence": evidence,
    }


def build_report(catalog: Catalog, with_thumbnails: bool = False) -> dict[str, Any]:
    """Build the report document: ``schema``, ``generated``, ``clusters``, ``summary``, ``errors``.

    ``with_thumbnails`` adds each member's thumbnail as a data URI (``thumbnail``), for the HTML view.
    """
    stored = catalog.clusters()
    assets = catalog.assets_by_id(asset_id for cluster in stored for asset_id, _m, _e in cluster.members)
    clusters = []
    duplicate_copies = reclaimable = 0
    for cluster in stored:
        members = []
        for asset_id, match, evidence in cluster.members:
            asset = assets[asset_id]
            member = _member(asset, match, evidence, asset_id == cluster.canonical_asset_id)
            if with_thumbnails:
                member["thumbnail"] = thumbnail_data_uri(asset)
            members.append(member)
        members.sort(key=lambda m: (not m["canonical"], m["uri"]))
        cluster_reclaimable = sum(m["size"] for m in members if not m["canonical"])
        duplicate_copies += len(members) - 1
        reclaimable += cluster_reclaimable
        clusters.append(
            {
                "id": cluster.id,
                "canonical": assets[cluster.canonical_asset_id].record.uri,
                "canonical_reason": cluster.canonical_reason,
                "preset": cluster.preset,
                "copies": len(members),
                "reclaimable_bytes": cluster_reclaimable,
                "members": members,
            }
        )
    problems = catalog.problems()
    counts = catalog.counts()
    return {
        "schema": SCHEMA,
        "generator": f"dam-dedupe {__version__}",
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "sources": [{"uri": spec.uri, "name": spec.name} for spec in catalog.sources()],
        "summary": {
            "assets": counts["assets"],
            "images": counts["images"],
            "clusters": len(clusters),
            "duplicate_copies": duplicate_copies,
            "reclaimable_bytes": reclaimable,
            "errors": len(problems),
            "gone": counts["gone"],
            "skipped": counts["skipped"],
        },
        "clusters": clusters,
        "errors": [{"uri": p.uri, "path": display_path(p.uri), "reason": p.reason, "scope": p.scope} for p in problems],
    }
