"""The report's facts, as one versioned JSON-ready document built from the catalog.

The CSV and HTML reports are views of this document, so every format carries the
same facts. The schema is documented in ``docs/report-schema.md``; bump
:data:`SCHEMA` on any incompatible change.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from dam_dedupe import __version__
from dam_dedupe.analysis import LICENSED, PERSONAL_DATA, Analysis
from dam_dedupe.catalog import Catalog, CatalogAsset, ReviewDecision
from dam_dedupe.display import display_path
from dam_dedupe.matcher.perceptual import viewable_thumbnail
from dam_dedupe.records import embedded_in
from dam_dedupe.report.compare import name_size_comparison
from dam_dedupe.report.settings import ReportSettings, SourceFacts

SCHEMA = "dam-dedupe/report/2"

Doc = dict[str, Any]


def _analyses_doc(found: dict[str, Analysis]) -> Doc:
    return {
        name: {"flags": sorted(a.flags), "facts": dict(a.facts), **({"error": a.error} if a.error else {})}
        for name, a in sorted(found.items())
    }


MATCH_KINDS = ("exact", "near", "transformed", "derivative")
"""Every match kind, for the summary's counts."""


def _flags(found: dict[str, Analysis]) -> list[str]:
    return sorted({flag for a in found.values() for flag in a.flags})


def _location(asset: CatalogAsset, source: SourceFacts, analyses: dict[str, Analysis]) -> Doc:
    """Where one copy is and what it is: the fields every member and register entry shares."""
    record, fp = asset.record, asset.fingerprint
    return {
        "uri": record.uri,
        "path": display_path(record.uri),
        "name": record.name,
        "source": record.source,
        "source_name": source.name,
        "residency": source.residency,
        "risk_tier": source.risk_tier,
        "department": source.department,
        "size": record.size,
        "modified": record.modified.isoformat() if record.modified else None,
        "sha256": fp.sha256 if fp else None,
        "flags": _flags(analyses),
        "embedded_in": embedded_in(record),  # formats: the document this image is inside, else None
    }


class _Builder:
    """Builds the document in one pass over the clusters, then the registers and totals."""

    def __init__(self, catalog: Catalog, settings: ReportSettings, with_thumbnails: bool) -> None:
        self.catalog = catalog
        self.settings = settings
        self.with_thumbnails = with_thumbnails
        stored_names = {spec.uri: spec.name for spec in catalog.sources()}
        self.sources = {uri: settings.source(uri, name) for uri, name in stored_names.items()}
        self.analyses = catalog.analyses()
        self.standing = catalog.standing_decisions()

    def source(self, uri: str) -> SourceFacts:
        if uri not in self.sources:
            self.sources[uri] = self.settings.source(uri)
        return self.sources[uri]

    def member(self, asset: CatalogAsset, match: str, evidence: dict[str, object], canonical: bool) -> Doc:
        found = self.analyses.get(asset.id, {})
        fp = asset.fingerprint
        doc = {
            **_location(asset, self.source(asset.record.source), found),
            "store_hash": asset.record.store_hash,
            "width": fp.width if fp else None,
            "height": fp.height if fp else None,
            "format": fp.format if fp else None,
            "match": match,
            "canonical": canonical,
            "evidence": evidence,
            "analyses": _analyses_doc(found),
        }
        if self.with_thumbnails:
            doc["thumbnail"] = viewable_thumbnail(fp.thumbnail, fp.perceptual) if fp and fp.thumbnail else None
        return doc

    def cluster(self, stored: Any, assets: dict[int, CatalogAsset]) -> Doc:
        members = [
            self.member(assets[asset_id], match, evidence, asset_id == stored.canonical_asset_id)
            for asset_id, match, evidence in stored.members
        ]
        if self.with_thumbnails:
            previews = self.catalog.previews(asset_id for asset_id, _match, _evidence in stored.members)
            for doc, (asset_id, _match, _evidence) in zip(members, stored.members, strict=True):
                doc["preview"] = previews.get(asset_id)
        members.sort(key=lambda m: (not m["canonical"], m["uri"]))
        sources = [self.source(m["source"]) for m in members]
        duplicates = [(m, s) for m, s in zip(members, sources, strict=True) if not m["canonical"]]
        flags = {flag for m in members for flag in m["flags"]}
        residencies = sorted({s.residency for s in sources if s.residency})
        departments = sorted({s.department for s in sources})
        source_names = sorted({s.name for s in sources})
        licensed = LICENSED in flags
        rights: dict[str, str] = next(
            (a["facts"] for m in members for a in m["analyses"].values() if LICENSED in a["flags"]), {}
        )
        faces = max((int(a["facts"].get("faces", 0)) for m in members for a in m["analyses"].values()), default=0)
        rank = min(s.risk_rank for s in sources)
        reasons = [
            reason
            for reason, present in (
                ("personal data", PERSONAL_DATA in flags),
                (
                    "licensed imagery copied across departments or sources",
                    licensed and (len(departments) > 1 or len(source_names) > 1),
                ),
                (f"copies in {len(residencies)} jurisdictions ({', '.join(residencies)})", len(residencies) > 1),
            )
            if present
        ]
        decisions = [_decision_doc(d) for d in self.standing.get(stored.id, [])]
        canonical_format = next((m["format"] for m in members if m["canonical"]), None)
        format_changes = [m["uri"] for m, _s in duplicates if m["format"] and m["format"] != canonical_format]
        return {
            "id": stored.id,
            "canonical": assets[stored.canonical_asset_id].record.uri,
            "canonical_reason": stored.canonical_reason,
            "preset": stored.preset,
            "copies": len(members),
            "match_kinds": sorted({m["match"] for m, _s in duplicates}),
            "reclaimable_bytes": sum(m["size"] for m, _s in duplicates),
            "monthly_cost": sum(s.monthly_cost(m["size"]) for m, s in duplicates),
            "sources": source_names,
            "departments": departments,
            "residencies": residencies,
            "cross_jurisdiction": len(residencies) > 1,
            "personal_data": PERSONAL_DATA in flags,
            "faces": faces,
            "licensed": licensed,
            "licensed_spread": licensed and (len(departments) > 1 or len(source_names) > 1),
            "rights": rights,
            "risk": {
                "tier": self.settings.risk_tiers[rank] if rank < len(self.settings.risk_tiers) else None,
                "rank": rank,
                "reasons": reasons,
            },
            "decided": any(d["decision"] in ("keep_all", "not_duplicates", "exclude") for d in decisions),
            "decisions": decisions,
            "format_changes": format_changes,
            "embedded_copies": sum(m["embedded_in"] is not None for m in members),  # formats: held inside documents
            "referenced_in": sorted({m["embedded_in"] for m in members if m["embedded_in"]}),
            "members": members,
        }

    def build(self) -> Doc:
        stored = self.catalog.clusters()
        assets = self.catalog.assets_by_id(asset_id for cluster in stored for asset_id, _m, _e in cluster.members)
        clusters = [self.cluster(c, assets) for c in stored]
        clusters.sort(key=lambda c: (c["risk"]["rank"], -len(c["risk"]["reasons"]), -c["reclaimable_bytes"], c["id"]))
        in_clusters = {asset_id for c in stored for asset_id, _m, _e in c.members}
        loose = self.catalog.assets_by_id(
            asset_id
            for asset_id, found in self.analyses.items()
            if asset_id not in in_clusters and (_flags(found) or any(a.error for a in found.values()))
        )
        register = self.register(clusters, loose)
        sources = self.source_table(clusters, loose)
        problems = self.catalog.problems()
        errors = [{"uri": p.uri, "path": display_path(p.uri), "reason": p.reason, "scope": p.scope} for p in problems]
        errors += self.analysis_errors(clusters, loose)
        return {
            "schema": SCHEMA,
            "generator": f"dam-dedupe {__version__}",
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "currency": self.settings.currency,
            "risk_tiers": list(self.settings.risk_tiers),
            "sources": sources,
            "summary": self.summary(clusters, loose, register, errors),
            "clusters": clusters,
            "personal_data_register": register,
            "licensed": [
                {
                    "cluster": c["id"],
                    "rights": c["rights"],
                    "sources": c["sources"],
                    "departments": c["departments"],
                    "spread": c["licensed_spread"],
                    "copies": c["copies"],
                }
                for c in clusters
                if c["licensed"]
            ],
            "cross_jurisdiction": [
                {
                    "cluster": c["id"],
                    "residencies": c["residencies"],
                    "copies": c["copies"],
                    "locations": [
                        {
                            "uri": m["uri"],
                            "path": m["path"],
                            "source_name": m["source_name"],
                            "residency": m["residency"],
                        }
                        for m in c["members"]
                    ],
                }
                for c in clusters
                if c["cross_jurisdiction"]
            ],
            "errors": errors,
        }

    def register(self, clusters: list[Doc], loose: dict[int, CatalogAsset]) -> list[Doc]:
        """Every image showing people, with every location of every copy, highest risk first."""
        entries = [
            {
                "image": c["id"],
                "cluster": c["id"],
                "faces": c["faces"],
                "copies": c["copies"],
                "risk_rank": c["risk"]["rank"],
                "locations": [{k: m[k] for k in _LOCATION_KEYS} for m in c["members"]],
            }
            for c in clusters
            if c["personal_data"]
        ]
        for asset in loose.values():
            found = self.analyses.get(asset.id, {})
            if PERSONAL_DATA not in _flags(found):
                continue
            source = self.source(asset.record.source)
            entries.append(
                {
                    "image": "a-" + (asset.fingerprint.sha256[:16] if asset.fingerprint else str(asset.id)),
                    "cluster": None,
                    "faces": max(int(a.facts.get("faces", 0)) for a in found.values()),
                    "copies": 1,
                    "risk_rank": source.risk_rank,
                    "locations": [_location(asset, source, found)],
                }
            )
        entries.sort(key=lambda e: (e["risk_rank"], e["image"]))
        return entries

    def source_table(self, clusters: list[Doc], loose: dict[int, CatalogAsset]) -> list[Doc]:
        """Per source: its labels, what its duplicate copies hold and cost, flagged images; highest risk first."""
        stats: dict[str, Counter[str]] = {uri: Counter() for uri in self.sources}
        for cluster in clusters:
            for m in cluster["members"]:
                counter = stats.setdefault(m["source"], Counter())
                counter["copies_in_clusters"] += 1
                if not m["canonical"]:
                    counter["duplicate_copies"] += 1
                    counter["reclaimable_bytes"] += m["size"]
                counter["personal_data_images"] += PERSONAL_DATA in m["flags"]
                counter["licensed_images"] += LICENSED in m["flags"]
        for asset in loose.values():
            flags = _flags(self.analyses.get(asset.id, {}))
            counter = stats.setdefault(asset.record.source, Counter())
            counter["personal_data_images"] += PERSONAL_DATA in flags
            counter["licensed_images"] += LICENSED in flags
        rows: list[Doc] = []
        for uri, counter in stats.items():
            s = self.source(uri)
            rows.append(
                {
                    "uri": uri,
                    "name": s.name,
                    "residency": s.residency,
                    "risk_tier": s.risk_tier,
                    "risk_rank": s.risk_rank,
                    "department": s.department,
                    "price_per_gb_month": s.price_per_gb_month,
                    "copies_in_clusters": counter["copies_in_clusters"],
                    "duplicate_copies": counter["duplicate_copies"],
                    "reclaimable_bytes": counter["reclaimable_bytes"],
                    "monthly_cost": s.monthly_cost(counter["reclaimable_bytes"]),
                    "personal_data_images": counter["personal_data_images"],
                    "licensed_images": counter["licensed_images"],
                }
            )
        rows.sort(key=lambda r: (r["risk_rank"], -r["reclaimable_bytes"], r["name"]))
        return rows

    def analysis_errors(self, clusters: list[Doc], loose: dict[int, CatalogAsset]) -> list[Doc]:
        """Analysers that failed on an image, as errors with scope ``analysis``."""
        seen: list[Doc] = []
        members = [(m["uri"], m["analyses"]) for c in clusters for m in c["members"]]
        members += [(a.record.uri, _analyses_doc(self.analyses.get(i, {}))) for i, a in loose.items()]
        for uri, analyses in members:
            for name, result in analyses.items():
                if "error" in result:
                    seen.append(
                        {
                            "uri": uri,
                            "path": display_path(uri),
                            "reason": f"{name}: {result['error']}",
                            "scope": "analysis",
                        }
                    )
        return seen

    def summary(
        self, clusters: list[Doc], loose: dict[int, CatalogAsset], register: list[Doc], errors: list[Doc]
    ) -> Doc:
        counts = self.catalog.counts()
        flagged = [_flags(found) for found in self.analyses.values()]
        by_match: Counter[str] = Counter(m["match"] for c in clusters for m in c["members"] if not m["canonical"])
        reclaimable = sum(c["reclaimable_bytes"] for c in clusters)
        content_copies = sum(c["copies"] - 1 for c in clusters)
        return {
            "assets": counts["assets"],
            "images": counts["images"],
            "clusters": len(clusters),
            "duplicate_copies": content_copies,
            "reclaimable_bytes": reclaimable,
            "monthly_cost": sum(c["monthly_cost"] for c in clusters),
            "currency": self.settings.currency,
            "copies_histogram": {str(k): v for k, v in sorted(Counter(c["copies"] for c in clusters).items())},
            "duplicates_by_match": {kind: by_match.get(kind, 0) for kind in MATCH_KINDS},
            # formats: copies held inside documents (counted in the figures above; never acted on)
            "embedded_copies": sum(c["embedded_copies"] for c in clusters),
            "embedded_bytes": sum(m["size"] for c in clusters for m in c["members"] if m["embedded_in"]),
            "analysed_images": len(self.analyses),
            "personal_data": {
                "images": sum(PERSONAL_DATA in f for f in flagged),
                "register_entries": len(register),
                "locations": sum(len(e["locations"]) for e in register),
                "clusters": sum(c["personal_data"] for c in clusters),
            },
            "licensed": {
                "images": sum(LICENSED in f for f in flagged),
                "clusters": sum(c["licensed"] for c in clusters),
                "spread_clusters": sum(c["licensed_spread"] for c in clusters),
            },
            "cross_jurisdiction_clusters": sum(c["cross_jurisdiction"] for c in clusters),
            "decided_clusters": sum(c["decided"] for c in clusters),
            "metadata_comparison": name_size_comparison(self.catalog.name_size_rows(), content_copies),
            "errors": len(errors),
            "gone": counts["gone"],
            "skipped": counts["skipped"],
        }


_LOCATION_KEYS = (
    "uri",
    "path",
    "name",
    "source",
    "source_name",
    "residency",
    "risk_tier",
    "department",
    "size",
    "modified",
    "sha256",
    "flags",
    "embedded_in",
)


def _decision_doc(decision: ReviewDecision) -> Doc:
    return {
        "decision": decision.decision,
        "uri": decision.uri,
        "decided_by": decision.decided_by,
        "decided_at": decision.decided_at,
    }


def build_report(catalog: Catalog, settings: ReportSettings | None = None, with_thumbnails: bool = False) -> Doc:
    """Build the report document (schema ``dam-dedupe/report/2``, see ``docs/report-schema.md``).

    ``settings`` gives each source's residency, risk tier, department and storage price
    (defaults when ``None``). ``with_thumbnails`` adds each member's raw greyscale
    thumbnail bytes (``thumbnail``) for the HTML view; the JSON export never carries them.
    """
    return _Builder(catalog, settings or ReportSettings(), with_thumbnails).build()
