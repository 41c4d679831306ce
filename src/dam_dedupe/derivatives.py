"""Camera RAW masters and the JPEG (or TIFF, PNG) exports made from them: ``derivative``, not ``near``.

A photographer's RAW file and its export look alike to the matcher, but the RAW is the master:
deleting it loses the sensor data. The pair is reported together in one cluster, with the match
kind ``derivative``, which plans leave alone unless ``--match derivative`` is asked for.
"""

from __future__ import annotations

from dam_dedupe.records import Fingerprint, MatchKind

RAW_EXPORT = "camera RAW and an export of it"
"""The first relation word of a ``derivative`` member, as the report shows it."""

RAW_FORMAT = "RAW"
"""The format name the camera RAW decoder records (:mod:`dam_dedupe.plugins.camera_raw`)."""


def derivative_relation(
    canonical: Fingerprint, member: Fingerprint, match: MatchKind, evidence: dict[str, object]
) -> tuple[MatchKind, dict[str, object]]:
    """The match kind and evidence for a verified member, ``derivative`` when exactly one side is a RAW file.

    Called after the matcher verified the pair; byte-identical copies stay ``exact``.
    """
    if match == "exact" or (canonical.format == RAW_FORMAT) == (member.format == RAW_FORMAT):
        return match, evidence
    master = "the canonical" if canonical.format == RAW_FORMAT else "this copy"
    found = evidence.get("relation")
    relation = [RAW_EXPORT, *(found if isinstance(found, list) else [])]
    return "derivative", {**evidence, "relation": relation, "raw_master": master, "verified_as": match}
