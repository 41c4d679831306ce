"""Partitioning fingerprinted assets into groups of copies."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from dam_dedupe.matcher.settings import MatchSettings
from dam_dedupe.records import Fingerprint


def find_groups(fingerprints: Sequence[Fingerprint], settings: MatchSettings) -> list[list[int]]:
    """Return groups of two or more indices into ``fingerprints`` that are copies of one image.

    Every index is in at most one group; each group is sorted.
    """
    by_hash: dict[str, list[int]] = defaultdict(list)
    for index, fingerprint in enumerate(fingerprints):
        by_hash[fingerprint.sha256].append(index)
    return [group for group in by_hash.values() if len(group) > 1]
