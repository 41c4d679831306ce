"""Finding the catalogued copies of one fingerprint: what ``/v1/check`` answers.

The service keeps the catalog's hash codes in memory (:class:`CatalogIndex`, about 40 bytes an
image) and compares a query with all of them at once (numpy XOR and ``bitwise_count``: about a
millisecond per family at 100k images). The candidates are nominated exactly as the scan's index
nominates them (:mod:`dam_dedupe.matcher.neighbours`: the same families, radii and confirmation, and
every symmetry for rotated and mirrored copies) and verified with the scan's own pair decision
(:func:`~dam_dedupe.matcher.compare.judge`), so a check and a scan agree on what is a copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from dam_dedupe.catalog.base import CatalogAsset
from dam_dedupe.matcher.compare import (
    FLAT_TOLERANCE,
    comparable,
    compare,
    evidence,
    flat,
    flat_level,
    flat_match,
    judge,
)
from dam_dedupe.matcher.grouping import COMPARABLE, FLAT, OTHER
from dam_dedupe.matcher.neighbours import CONFIRM_RADIUS, SYMMETRIES
from dam_dedupe.matcher.perceptual import dct_dihedral
from dam_dedupe.matcher.settings import MatchSettings
from dam_dedupe.records import Fingerprint, MatchKind

MAX_VERIFIED = 64
"""Pair verifications per check (a candidate may be tried under more than one symmetry), nearest first:
bounds a check's time, about 3 ms a verification, on a library of look-alikes."""
FAMILIES = ("dct", "low", "centre", "inner")
"""Hash families held per image; a fingerprint older than the ``inner`` hash (version 5) stands in
with its ``dct`` hash there, with which the search across ``inner`` and ``dct`` repeats the ``dct`` one."""
INVERSE = {"rotate-90": "rotate-270", "rotate-270": "rotate-90"}
"""Symmetries whose inverse is another one (mirrors, transposes and the half turn undo themselves)."""

Loader = Callable[[list[int]], Mapping[int, CatalogAsset]]
"""Gives catalogued assets with their whole fingerprints (thumbnails included), by asset id."""
Clusters = Callable[[Iterable[int]], Mapping[int, tuple[str, str]]]
"""Gives the (cluster id, canonical URI) of those assets that are in a cluster, by asset id."""


@dataclass(frozen=True, slots=True)
class Match:
    """One catalogued asset that the checked image is a copy of."""

    asset_id: int
    uri: str
    match: MatchKind
    evidence: dict[str, object]


@dataclass(slots=True)
class _Arrays:
    ids: np.ndarray
    uris: list[str]
    kind: np.ndarray  # COMPARABLE, FLAT or OTHER (matched byte for byte only), as the scan's grouping says
    level: np.ndarray
    codes: dict[str, np.ndarray]
    by_sha: dict[str, list[int]] = field(default_factory=dict)


class CatalogIndex:
    """The hash codes of every present catalogued image, for checks; safe to share between threads.

    :meth:`replace` swaps in a freshly loaded index at once (checks in flight finish on the old one);
    :meth:`add` appends one image (an ingested asset) without reloading.
    """

    def __init__(self, settings: MatchSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._arrays = _build([])

    def __len__(self) -> int:
        return len(self._arrays.ids)

    def replace(self, assets: Iterable[CatalogAsset]) -> None:
        """Load the index from the catalog's present images (fingerprints without thumbnails are enough)."""
        arrays = _build(assets)
        with self._lock:
            self._arrays = arrays

    def add(self, asset: CatalogAsset) -> None:
        """Add one catalogued image (replacing an entry of the same asset id)."""
        with self._lock:
            old = self._arrays
            keep = old.ids != asset.id
            rows = [(int(i), u) for i, u, k in zip(old.ids.tolist(), old.uris, keep.tolist(), strict=True) if k]
            new = _build([asset])
            self._arrays = _Arrays(
                np.concatenate([old.ids[keep], new.ids]),
                [u for _, u in rows] + new.uris,
                np.concatenate([old.kind[keep], new.kind]),
                np.concatenate([old.level[keep], new.level]),
                {f: np.concatenate([old.codes[f][keep], new.codes[f]]) for f in FAMILIES},
            )
            offset = int(keep.sum())
            added = [(sha, [p + offset for p in positions]) for sha, positions in new.by_sha.items()]
            _index_sha(self._arrays, [*_shas(old, keep), *added])

    def matches(self, query: Fingerprint, load: Loader, clusters: Clusters, exclude: int | None = None) -> list[Match]:
        """Every catalogued asset ``query`` is a copy of: ``exact`` (same SHA-256), ``near`` or
        ``transformed`` (rotated or mirrored), nearest first after the exact ones. ``exclude`` is an
        asset id left out (the ingested asset itself)."""
        arrays = self._arrays
        exact = [p for p in arrays.by_sha.get(query.sha256, []) if int(arrays.ids[p]) != exclude]
        found = [
            Match(int(arrays.ids[p]), arrays.uris[p], "exact", {"relation": ["identical"], "sha256": query.sha256})
            for p in exact
        ]
        if not self.settings.perceptual or not len(arrays.ids):
            return found
        skip = np.zeros(len(arrays.ids), dtype=bool)
        skip[exact] = True
        if exclude is not None:
            skip |= arrays.ids == exclude
        if comparable(query):
            found += self._near(query, arrays, skip, load, clusters)
        elif flat(query):
            found += self._flat(query, arrays, skip, load)
        return found

    def _near(
        self, query: Fingerprint, arrays: _Arrays, skip: np.ndarray, load: Loader, clusters: Clusters
    ) -> list[Match]:
        """Perceptual and transformed copies among the comparable images, verified as the scan verifies."""
        settings = self.settings
        usable = (arrays.kind == COMPARABLE) & ~skip
        q = {family: np.uint64(_code(query, family)) for family in FAMILIES}
        dct = np.bitwise_count(arrays.codes["dct"] ^ q["dct"])
        low = np.bitwise_count(arrays.codes["low"] ^ q["low"])
        centre = np.bitwise_count(arrays.codes["centre"] ^ q["centre"])
        radius = settings.candidate_radius
        low_hit = (low <= settings.crop_radius) & ((low <= radius) | (dct <= CONFIRM_RADIUS))
        # A crop of 4-5% a side and its original, from either end (neighbours.CROSSED).
        across = np.minimum(
            np.bitwise_count(arrays.codes["dct"] ^ q["inner"]), np.bitwise_count(arrays.codes["inner"] ^ q["dct"])
        )
        across_hit = (across <= radius) | ((across <= settings.crop_radius) & (low <= settings.crop_radius))
        tried: list[tuple[int, int, str]] = []  # (dct distance after the symmetry, position, symmetry)
        for position in np.nonzero(usable & ((dct <= radius) | (centre <= radius) | low_hit | across_hit))[0].tolist():
            tried.append((int(dct[position]), position, "identity"))
        if settings.transforms:
            for symmetry in SYMMETRIES:
                moved = np.uint64(dct_dihedral(int(q["dct"]), symmetry))
                distance = np.bitwise_count(arrays.codes["dct"] ^ moved)
                for position in np.nonzero(usable & (distance <= settings.transform_radius))[0].tolist():
                    tried.append((int(distance[position]), position, symmetry))
        tried = sorted(tried, key=lambda t: (t[0], t[1], t[2] != "identity"))[:MAX_VERIFIED]
        assets = load(list(dict.fromkeys(int(arrays.ids[p]) for _, p, _ in tried)))
        found: dict[int, Match] = {}
        for _, position, symmetry in tried:
            asset_id = int(arrays.ids[position])
            asset = assets.get(asset_id)
            if asset_id in found or asset is None or asset.fingerprint is None:
                continue
            # judged from the catalogued asset to the upload, so that the evidence reads as the edits
            # that made the upload ("resized", "rotate-90") from what is catalogued
            verdict = judge(asset.fingerprint, query, INVERSE.get(symmetry, symmetry), settings)
            if verdict is not None:
                kind: MatchKind = "near" if verdict.symmetry == "identity" else "transformed"
                found[asset_id] = Match(asset_id, asset.record.uri, kind, evidence(asset.fingerprint, query, verdict))
        return list(found.values()) + self._cluster_mates(query, found, assets, clusters)

    def _cluster_mates(
        self, query: Fingerprint, found: dict[int, Match], assets: Mapping[int, CatalogAsset], clusters: Clusters
    ) -> list[Match]:
        """The nominated candidates that failed the pair decision but share a cluster with a copy found, and
        pass the relaxed decision: the scan would put the upload in that cluster (a verified copy of one
        member) and keep it there (a relaxed copy of the others), so the check names them too."""
        rest = [asset_id for asset_id in assets if asset_id not in found]
        if not found or not rest:
            return []
        cluster_of = clusters([*found, *rest])
        joined = {cluster_of[asset_id][0] for asset_id in found if asset_id in cluster_of}
        mates = []
        for asset_id in rest:
            fingerprint = assets[asset_id].fingerprint
            if asset_id not in cluster_of or cluster_of[asset_id][0] not in joined or fingerprint is None:
                continue
            comparison = compare(fingerprint, query, self.settings)
            if comparison is not None:
                mates.append(Match(asset_id, assets[asset_id].record.uri, comparison.match, comparison.evidence))
        return mates

    def _flat(self, query: Fingerprint, arrays: _Arrays, skip: np.ndarray, load: Loader) -> list[Match]:
        """Featureless copies: one flat colour, within the scan's tolerance of grey level and chroma."""
        gaps = np.abs(arrays.level - flat_level(query))
        positions = np.nonzero((arrays.kind == FLAT) & ~skip & (gaps <= FLAT_TOLERANCE))[0]
        positions = positions[np.argsort(gaps[positions], kind="stable")][:MAX_VERIFIED].tolist()
        assets = load([int(arrays.ids[p]) for p in positions])
        found = []
        for asset in assets.values():
            if asset.fingerprint is not None and (facts := flat_match(query, asset.fingerprint)) is not None:
                found.append(Match(asset.id, asset.record.uri, "near", facts))
        return found


def _code(fp: Fingerprint, family: str) -> int:
    """A comparable fingerprint's ``family`` code (``dct`` for a missing ``inner``: see :data:`FAMILIES`)."""
    return int(fp.perceptual.get(family) or fp.perceptual["dct"], 16)


def _build(assets: Iterable[CatalogAsset]) -> _Arrays:
    """The arrays of an index over ``assets`` (those with a fingerprint)."""
    ids: list[int] = []
    uris: list[str] = []
    kinds: list[int] = []
    levels: list[float] = []
    codes: dict[str, list[int]] = {family: [] for family in FAMILIES}
    shas: list[tuple[str, list[int]]] = []
    for asset in assets:
        fp = asset.fingerprint
        if fp is None:
            continue
        position = len(ids)
        ids.append(asset.id)
        uris.append(asset.record.uri)
        kind = _kind(fp)
        kinds.append(kind)
        levels.append(flat_level(fp) if kind == FLAT else 0.0)
        for family in FAMILIES:
            codes[family].append(_code(fp, family) if kind == COMPARABLE else 0)
        shas.append((fp.sha256, [position]))
    arrays = _Arrays(
        np.array(ids, dtype=np.int64),
        uris,
        np.array(kinds, dtype=np.int8),
        np.array(levels, dtype=np.float32),
        {family: np.array(values, dtype=np.uint64) for family, values in codes.items()},
    )
    _index_sha(arrays, shas)
    return arrays


def _kind(fp: Fingerprint) -> int:
    """How an image is matched: perceptually (with every indexed family), as a flat colour, or byte for byte."""
    if comparable(fp) and all(family in fp.perceptual for family in FAMILIES):
        return COMPARABLE
    return FLAT if flat(fp) else OTHER


def _shas(arrays: _Arrays, keep: np.ndarray) -> list[tuple[str, list[int]]]:
    """The content hashes of the kept rows, by their new positions."""
    renumber = np.cumsum(keep) - 1
    return [(sha, [int(renumber[p]) for p in ps if keep[p]]) for sha, ps in arrays.by_sha.items()]


def _index_sha(arrays: _Arrays, shas: Iterable[tuple[str, list[int]]]) -> None:
    """Fill ``by_sha`` (content hash to positions) from (hash, positions) pairs."""
    arrays.by_sha = {}
    for sha, positions in shas:
        if positions:
            arrays.by_sha.setdefault(sha, []).extend(positions)
