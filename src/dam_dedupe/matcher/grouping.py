"""Partitioning fingerprinted assets into groups of copies.

1. Byte-identical fingerprints (same SHA-256) form one node.
2. The index (:mod:`dam_dedupe.matcher.neighbours`) nominates, for a node, the nodes whose
   ``dct`` or ``centre`` hashes are within ``candidate_radius`` bits or whose ``low`` hashes are
   within ``crop_radius`` (each family catches copies the others miss: re-encodes, crops,
   edge watermarks), and, for rotated and mirrored copies, whose ``dct`` hashes are within
   ``transform_radius`` bits after each symmetry.
3. Groups form around representatives (:mod:`dam_dedupe.matcher.formation`): a node joins a
   group when it is a verified copy (:func:`~dam_dedupe.matcher.compare.judge`) of the member
   that nominated it and, under the thresholds relaxed by ``group_slack``
   (:func:`~dam_dedupe.matcher.compare.is_copy`), of the group's representative and first few
   members. So a chain A~B~C where A and C are not copies never becomes one group, the copies
   of one image form one group however many there are, and the cost grows with the number of
   images, not with the square of a group's size.

Featureless pictures (a flat colour; no structure to hash) are grouped the same way, their
candidates being the nearest in grey level, when their grey level and colour agree
(:func:`~dam_dedupe.matcher.compare.flat_match`).
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from dam_dedupe.matcher.compare import FLAT_TOLERANCE, comparable, flat, flat_level, flat_match, is_copy, judge
from dam_dedupe.matcher.formation import form_groups
from dam_dedupe.matcher.neighbours import INDEXED_FAMILIES, CandidateIndex
from dam_dedupe.matcher.settings import MatchSettings
from dam_dedupe.records import Fingerprint

ThumbnailSource = Callable[[list[int]], Mapping[int, bytes]]
"""Gives the stored thumbnails of the fingerprints at some indices (see :func:`find_groups`)."""
Progress = Callable[[int, int], None]
"""Told (images placed, images to place) as matching goes on."""

FLAT_WINDOW = 50
THUMBNAIL_CACHE = 8192
"""Thumbnails (4 KiB each) kept between batches; a batch that needs more keeps all it needs."""


def find_groups(
    fingerprints: Sequence[Fingerprint],
    settings: MatchSettings,
    thumbnails: ThumbnailSource | None = None,
    progress: Progress | None = None,
) -> list[list[int]]:
    """Return groups of two or more indices into ``fingerprints`` that are copies of one image.

    Every index is in at most one group; each group is sorted. With ``thumbnails``, the
    fingerprints may come without their thumbnails: ``thumbnails`` is asked, by index, for
    those of the fingerprints the matcher verifies only, a batch at a time, so that matching a
    million images does not hold a million thumbnails (4 KiB each) at once. ``progress``, when
    given, is told how many of the distinct images have been placed in a group.
    """
    by_hash: dict[str, list[int]] = defaultdict(list)
    for index, fingerprint in enumerate(fingerprints):
        by_hash[fingerprint.sha256].append(index)
    nodes = list(by_hash.values())
    if settings.perceptual:
        nodes = _merge_near(fingerprints, nodes, settings, _Thumbnails(fingerprints, thumbnails), progress)
    return sorted(sorted(group) for group in nodes if len(group) > 1)


class _Thumbnails:
    """The fingerprints with their thumbnails, loaded a batch at a time and kept up to ``THUMBNAIL_CACHE``."""

    def __init__(self, fingerprints: Sequence[Fingerprint], source: ThumbnailSource | None) -> None:
        self.fingerprints = fingerprints
        self.source = source
        self.loaded: OrderedDict[int, Fingerprint] = OrderedDict()

    def prepare(self, indices: set[int]) -> None:
        """Load the thumbnails of ``indices`` that are not loaded, in one call to the source."""
        if self.source is None:
            return
        for index in indices & self.loaded.keys():
            self.loaded.move_to_end(index)
        missing = sorted(indices - self.loaded.keys())
        found = self.source(missing) if missing else {}
        for index in missing:
            thumbnail = found.get(index)
            fingerprint = self.fingerprints[index]
            self.loaded[index] = fingerprint if thumbnail is None else replace(fingerprint, thumbnail=thumbnail)
        while len(self.loaded) > max(THUMBNAIL_CACHE, len(indices)):
            self.loaded.popitem(last=False)

    def __getitem__(self, index: int) -> Fingerprint:
        if self.source is None:
            return self.fingerprints[index]
        if index not in self.loaded:
            self.prepare({index})
        return self.loaded[index]


def with_thumbnails(
    fingerprints: Sequence[Fingerprint], indices: Iterable[int], thumbnails: ThumbnailSource
) -> list[Fingerprint]:
    """``fingerprints`` with the thumbnails of those at ``indices`` filled in from ``thumbnails``."""
    filled = list(fingerprints)
    for index, thumbnail in thumbnails(sorted(set(indices))).items():
        filled[index] = replace(filled[index], thumbnail=thumbnail)
    return filled


def _merge_near(
    fingerprints: Sequence[Fingerprint],
    nodes: list[list[int]],
    settings: MatchSettings,
    loaded: _Thumbnails,
    progress: Progress | None,
) -> list[list[int]]:
    """Merge nodes (lists of byte-identical indices) that are verified copies, without chaining."""
    usable = [n for n, node in enumerate(nodes) if comparable(fingerprints[node[0]])]
    flats = [n for n, node in enumerate(nodes) if flat(fingerprints[node[0]])]
    placed = {n for group in (usable, flats) for n in group}
    merged = [[n] for n in range(len(nodes)) if n not in placed]
    merged += _near_groups(fingerprints, nodes, usable, settings, loaded, progress)
    merged += _flat_groups(fingerprints, nodes, flats)
    return [[index for n in group for index in nodes[n]] for group in merged]


def _near_groups(
    fingerprints: Sequence[Fingerprint],
    nodes: list[list[int]],
    usable: list[int],
    settings: MatchSettings,
    loaded: _Thumbnails,
    progress: Progress | None,
) -> list[list[int]]:
    """Groups (of node numbers) of the comparable nodes ``usable``."""
    if not usable:
        return []
    first = [nodes[n][0] for n in usable]
    families = [f for f in INDEXED_FAMILIES if all(f in fingerprints[i].perceptual for i in first)]
    codes = {
        family: np.array([int(fingerprints[i].perceptual[family], 16) for i in first], dtype=np.uint64)
        for family in families
    }
    index = CandidateIndex(codes, settings)

    def neighbours(asked: list[int]) -> list[list[tuple[int, str]]]:
        return index.neighbours(np.array(asked, dtype=np.int64))

    def edge(a: int, b: int, symmetry: str) -> bool:
        return judge(loaded[first[a]], loaded[first[b]], symmetry, settings) is not None

    def consistent(a: int, b: int) -> bool:
        return is_copy(loaded[first[a]], loaded[first[b]], settings)

    def prepare(positions: set[int]) -> None:
        loaded.prepare({first[k] for k in positions})

    groups = form_groups(_largest_first(fingerprints, first), neighbours, edge, consistent, prepare, progress)
    return [[usable[k] for k in group] for group in groups]


def _largest_first(fingerprints: Sequence[Fingerprint], first: list[int]) -> list[int]:
    """Positions in ``first`` by decreasing pixel count (then position): a group's representative
    is then its most detailed copy, against which smaller copies verify best."""
    return sorted(range(len(first)), key=lambda k: (-fingerprints[first[k]].width * fingerprints[first[k]].height, k))


def _flat_groups(fingerprints: Sequence[Fingerprint], nodes: list[list[int]], flats: list[int]) -> list[list[int]]:
    """Groups (of node numbers) of featureless nodes of one flat colour.

    A node's candidates are the next ``FLAT_WINDOW`` nodes in grey-level order on either side
    that are within the tolerance: enough for every copy, bounded for a million blank pages.
    """
    ranked = sorted(flats, key=lambda n: (flat_level(fingerprints[nodes[n][0]]), n))
    rank = {n: k for k, n in enumerate(ranked)}
    levels = [flat_level(fingerprints[nodes[n][0]]) for n in ranked]

    def neighbours(asked: list[int]) -> list[list[tuple[int, str]]]:
        found = []
        for k in asked:
            near = range(max(0, k - FLAT_WINDOW), min(len(ranked), k + FLAT_WINDOW + 1))
            close = [j for j in near if j != k and abs(levels[j] - levels[k]) <= FLAT_TOLERANCE]
            found.append([(j, "identity") for j in sorted(close, key=lambda j: (abs(levels[j] - levels[k]), j))])
        return found

    def same(a: int, b: int, symmetry: str = "identity") -> bool:
        return flat_match(fingerprints[nodes[ranked[a]][0]], fingerprints[nodes[ranked[b]][0]]) is not None

    groups = form_groups(sorted(rank.values()), neighbours, same, same)
    return [[ranked[k] for k in group] for group in groups]
