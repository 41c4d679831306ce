"""Explaining why two fingerprints are copies: the match kind and its evidence."""

from __future__ import annotations

from dataclasses import dataclass

from dam_dedupe.matcher.settings import MatchSettings
from dam_dedupe.records import Fingerprint, MatchKind


@dataclass(frozen=True, slots=True)
class Comparison:
    """How one image relates to another.

    Attributes:
        match: ``exact``, ``near`` or ``transformed``.
        evidence: the facts behind it, for reviewers (hashes compared, distances, relation).
    """

    match: MatchKind
    evidence: dict[str, object]


def compare(a: Fingerprint, b: Fingerprint, settings: MatchSettings) -> Comparison | None:
    """Return how ``b`` relates to ``a``, or ``None`` if they are not copies under ``settings``."""
    if a.sha256 == b.sha256:
        return Comparison("exact", {"relation": "identical", "sha256": a.sha256})
    return None
