"""Exact matching: byte-identical copies share a SHA-256."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from dam_dedupe.records import AssetRecord, Fingerprint, Member


def exact_groups(items: Iterable[tuple[AssetRecord, Fingerprint]]) -> list[list[Member]]:
    """Group assets whose content SHA-256 is equal; return only groups of two or more.

    Each group is ordered by asset URI so results do not depend on listing order.
    """
    by_hash: dict[str, list[Member]] = defaultdict(list)
    for asset, fingerprint in items:
        by_hash[fingerprint.sha256].append(
            Member(asset, fingerprint, "exact", {"relation": "identical", "sha256": fingerprint.sha256})
        )
    return [sorted(group, key=lambda m: m.asset.uri) for group in by_hash.values() if len(group) > 1]


def store_hash_candidates(assets: Iterable[AssetRecord]) -> list[list[AssetRecord]]:
    """Group listed assets whose store content hash and size agree: exact-duplicate candidates
    found without reading a byte. They are confirmed by SHA-256 before being called identical.
    """
    by_hash: dict[tuple[str, int], list[AssetRecord]] = defaultdict(list)
    for asset in assets:
        if asset.store_hash:
            by_hash[(asset.store_hash, asset.size)].append(asset)
    return [group for group in by_hash.values() if len(group) > 1]
