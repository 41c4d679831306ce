"""Partitioning fingerprinted assets into groups of copies.

1. Byte-identical fingerprints (same SHA-256) form one node.
2. The index (:mod:`dam_dedupe.matcher.neighbours`) nominates, for a node, the nodes whose
   ``dct`` or ``centre`` hashes are within ``candidate_radius`` bits or whose ``low`` hashes are
   within ``crop_radius`` (each family catches copies the others miss: re-encodes, crops,
   edge watermarks), those whose ``dct`` hash is near its ``inner`` hash or the other way
   round (crops of 4-5% a side), and, for rotated and mirrored copies, whose ``dct`` hashes are within
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

Memory: the fingerprints are read once, and only what the index and the order need is kept
(:class:`_Summary`: the content hash, pixel count, kind and four 64-bit codes, about 80 bytes an
image); whole fingerprints with their thumbnails are loaded a batch of candidates at a time
(:func:`find_groups_streamed`), and at most ``LOADED`` of them are kept between batches.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from dam_dedupe.matcher.blas import one_thread
from dam_dedupe.matcher.compare import (
    FLAT_TOLERANCE,
    SETTLING_ROOM,
    Pair,
    are_copies,
    comparable,
    flat,
    flat_level,
    flat_match,
    judge_many,
    threshold_share,
)
from dam_dedupe.matcher.formation import Edge, form_groups
from dam_dedupe.matcher.neighbours import CODE_FAMILIES, CandidateIndex
from dam_dedupe.matcher.settings import MatchSettings
from dam_dedupe.matcher.verify import Verdict
from dam_dedupe.records import Fingerprint

ThumbnailSource = Callable[[list[int]], Mapping[int, bytes]]
"""Gives the stored thumbnails of the fingerprints at some indices (see :func:`find_groups`)."""
FingerprintSource = Callable[[list[int]], Mapping[int, Fingerprint]]
"""Gives the whole fingerprints (with thumbnails) at some indices (see :func:`find_groups_streamed`)."""
Progress = Callable[[int, int], None]
"""Told (images placed, images to place) as matching goes on."""


class Neighbours(Protocol):
    """What grouping asks of the candidate index (:class:`~dam_dedupe.matcher.neighbours.CandidateIndex`)."""

    def neighbours(self, asked: np.ndarray) -> list[list[tuple[int, str]]]: ...


IndexFactory = Callable[[dict[str, np.ndarray], MatchSettings], Neighbours]
"""Builds the candidate index over the comparable images' codes: :class:`CandidateIndex` in this
process by default, or one sharded over a cluster (:class:`dam_dedupe.dask_index.DaskIndex`) that
must answer exactly as it does."""


class Verifier(Protocol):
    """Verifies candidate pairs elsewhere (:class:`dam_dedupe.dask_verify.DaskVerifier`: over a Dask
    cluster), asked for those the grouping is about to ask, a part of a batch at a time."""

    def judge(self, pairs: list[Pair], settings: MatchSettings) -> list[Verdict | None]:
        """:func:`~dam_dedupe.matcher.compare.judge_many`'s verdicts of ``pairs``, the same wherever computed."""
        ...


FLAT_WINDOW = 50
LOADED = 2048
"""Whole fingerprints (a 4 KiB thumbnail each) kept between batches; a batch that needs more keeps all it needs."""
AHEAD_KEPT = 1 << 16
"""Verdicts judged ahead (by a :class:`Verifier`) kept until asked; more, and those not asked yet are dropped."""
SUMMARY_CHUNK = 4096
"""Fingerprints summarised into arrays at a time while they are read."""
OTHER, COMPARABLE, FLAT = 0, 1, 2
"""An image's kind in the summary: matched byte for byte only, perceptually, or as a flat colour."""


def find_groups(
    fingerprints: Sequence[Fingerprint],
    settings: MatchSettings,
    thumbnails: ThumbnailSource | None = None,
    progress: Progress | None = None,
) -> list[list[int]]:
    """Return groups of two or more indices into ``fingerprints`` that are copies of one image.

    Every index is in at most one group; each group is sorted. With ``thumbnails``, the
    fingerprints may come without their thumbnails: ``thumbnails`` is asked, by index, for
    those of the fingerprints the matcher verifies only, a batch at a time. ``progress``, when
    given, is told how many of the distinct images have been placed in a group.
    """

    def load(indices: list[int]) -> dict[int, Fingerprint]:
        found = thumbnails(indices) if thumbnails is not None else {}
        return {i: replace(fingerprints[i], thumbnail=found[i]) if i in found else fingerprints[i] for i in indices}

    return find_groups_streamed(fingerprints, settings, load, progress)


def find_groups_streamed(
    fingerprints: Iterable[Fingerprint],
    settings: MatchSettings,
    load: FingerprintSource,
    progress: Progress | None,
    index: IndexFactory = CandidateIndex,
    verifier: Verifier | None = None,
) -> list[list[int]]:
    """:func:`find_groups` for a library too large to hold: ``fingerprints`` (which may come
    without thumbnails) is read once, in order, and only summarised; ``load`` is asked, by index,
    for the whole fingerprints of the images a batch verifies. Indices count from 0 in the
    order ``fingerprints`` gave them. ``index`` builds the candidate index (see :data:`IndexFactory`);
    ``verifier``, when given, verifies the candidate pairs a part of a batch is about to ask, together
    (the groups are the same: only where the verdicts are computed changes)."""
    with one_thread():
        summary = _Summary.of(fingerprints)
        node, first = summary.nodes()
        kinds = summary.kind[first]
        merged: list[list[int]] = [[n] for n in np.nonzero(kinds == OTHER)[0].tolist()]
        if settings.perceptual:
            loaded = _Loaded(load)
            comparable_nodes = np.nonzero(kinds == COMPARABLE)[0]
            merged += _near_groups(summary, first, comparable_nodes, settings, loaded, progress, index, verifier)
            merged += _flat_groups(summary, first, np.nonzero(kinds == FLAT)[0], loaded)
        else:
            merged += [[n] for n in np.nonzero(kinds != OTHER)[0].tolist()]
        images_of = _images_of(node, len(first))
        groups = [sorted(i for n in group for i in images_of[n]) for group in merged]
    return sorted(group for group in groups if len(group) > 1)


@dataclass(slots=True)
class _Summary:
    """What grouping keeps of every fingerprint, as arrays by index (see the module notes)."""

    sha256: np.ndarray
    kind: np.ndarray
    area: np.ndarray
    level: np.ndarray
    codes: dict[str, np.ndarray]

    @classmethod
    def of(cls, fingerprints: Iterable[Fingerprint]) -> _Summary:
        """Read ``fingerprints`` once, ``SUMMARY_CHUNK`` at a time."""
        parts: list[_Summary] = []
        chunk: list[Fingerprint] = []
        for fingerprint in fingerprints:
            chunk.append(fingerprint)
            if len(chunk) == SUMMARY_CHUNK:
                parts.append(cls._of_chunk(chunk))
                chunk = []
        parts.append(cls._of_chunk(chunk))
        families = [f for f in CODE_FAMILIES if all(f in part.codes for part in parts)]
        return cls(
            np.concatenate([part.sha256 for part in parts]),
            np.concatenate([part.kind for part in parts]),
            np.concatenate([part.area for part in parts]),
            np.concatenate([part.level for part in parts]),
            {family: np.concatenate([part.codes[family] for part in parts]) for family in families},
        )

    @classmethod
    def _of_chunk(cls, chunk: list[Fingerprint]) -> _Summary:
        kind = np.array([COMPARABLE if comparable(fp) else FLAT if flat(fp) else OTHER for fp in chunk], np.int8)
        usable = [fp for fp, k in zip(chunk, kind.tolist(), strict=True) if k == COMPARABLE]
        codes = {}
        for family in CODE_FAMILIES:
            if all(family in fp.perceptual for fp in usable):
                values = [
                    int(fp.perceptual[family], 16) if k == COMPARABLE else 0 for fp, k in zip(chunk, kind, strict=True)
                ]
                codes[family] = np.array(values, dtype=np.uint64)
        return cls(
            np.array([bytes.fromhex(fp.sha256) for fp in chunk], dtype="S32"),
            kind,
            np.array([fp.width * fp.height for fp in chunk], dtype=np.int64),
            np.array([flat_level(fp) if k == FLAT else 0.0 for fp, k in zip(chunk, kind, strict=True)], np.float32),
            codes,
        )

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(node of each image, first image of each node): byte-identical images are one node."""
        _, first, node = np.unique(self.sha256, return_index=True, return_inverse=True)
        return node.ravel(), first


def _images_of(node: np.ndarray, count: int) -> list[list[int]]:
    """The images of each of ``count`` nodes."""
    order = np.argsort(node, kind="stable")
    bounds = np.searchsorted(node[order], np.arange(count + 1))
    return [order[bounds[n] : bounds[n + 1]].tolist() for n in range(count)]


class _Loaded:
    """Whole fingerprints by index, loaded a batch at a time and kept up to ``LOADED``."""

    def __init__(self, load: FingerprintSource) -> None:
        self.load = load
        self.kept: OrderedDict[int, Fingerprint] = OrderedDict()

    def prepare(self, indices: set[int]) -> None:
        """Load those of ``indices`` not kept, in one call to the source."""
        # By the indices, not by set operations with the keys: those walk every kept fingerprint.
        missing = []
        for index in indices:
            if index in self.kept:
                self.kept.move_to_end(index)
            else:
                missing.append(index)
        missing.sort()
        if missing:
            self.kept.update(self.load(missing))
        while len(self.kept) > max(LOADED, len(indices)):
            self.kept.popitem(last=False)

    def __getitem__(self, index: int) -> Fingerprint:
        if index not in self.kept:
            self.prepare({index})
        return self.kept[index]


def _near_groups(
    summary: _Summary,
    first: np.ndarray,
    usable: np.ndarray,
    settings: MatchSettings,
    loaded: _Loaded,
    progress: Progress | None,
    index: IndexFactory,
    verifier: Verifier | None,
) -> list[list[int]]:
    """Groups (of node numbers) of the comparable nodes ``usable``."""
    if not len(usable):
        return []
    image = first[usable]
    candidates = index({family: codes[image] for family, codes in summary.codes.items()}, settings)

    def neighbours(asked: list[int]) -> list[list[tuple[int, str]]]:
        return candidates.neighbours(np.array(asked, dtype=np.int64))

    ahead: dict[tuple[int, int, str], Verdict | None] = {}

    def foresee(pairs: list[tuple[int, int, str]]) -> None:
        if len(ahead) > AHEAD_KEPT:
            ahead.clear()
        missing = list(dict.fromkeys(pair for pair in pairs if pair not in ahead))
        if missing and verifier is not None:
            asked = [(loaded[int(image[a])], loaded[int(image[b])], symmetry) for a, b, symmetry in missing]
            ahead.update(zip(missing, verifier.judge(asked, settings), strict=True))

    def edges(pairs: list[tuple[int, int, str]]) -> list[Edge | None]:
        asked = [(loaded[int(image[a])], loaded[int(image[b])], symmetry) for a, b, symmetry in pairs]
        verdicts: list[Verdict | None] = [None] * len(pairs)
        here = []
        for k, pair in enumerate(pairs):
            if pair in ahead:
                verdicts[k] = ahead.pop(pair)
            else:
                here.append(k)
        for k, verdict in zip(here, judge_many([asked[k] for k in here], settings), strict=True):
            verdicts[k] = verdict
        return [
            None if verdict is None else (verdict.trimmed_rms, threshold_share(a, b, verdict, settings))
            for (a, b, _), verdict in zip(asked, verdicts, strict=True)
        ]

    def consistent(pairs: list[tuple[int, int]]) -> list[bool]:
        return are_copies([(loaded[int(image[a])], loaded[int(image[b])]) for a, b in pairs], settings)

    def prepare(positions: set[int]) -> None:
        loaded.prepare({int(image[k]) for k in positions})

    # Largest picture first: a group's representative is then its most detailed copy.
    order = np.lexsort((np.arange(len(image)), -summary.area[image])).tolist()
    groups = form_groups(
        order, neighbours, edges, consistent, prepare, progress, SETTLING_ROOM, None if verifier is None else foresee
    )
    return [usable[group].tolist() for group in groups]


def _flat_groups(summary: _Summary, first: np.ndarray, flats: np.ndarray, loaded: _Loaded) -> list[list[int]]:
    """Groups (of node numbers) of featureless nodes of one flat colour.

    A node's candidates are the ``FLAT_WINDOW`` nodes on either side in grey-level order that
    are within the tolerance: enough for every copy, bounded for a million blank pages.
    """
    if not len(flats):
        return []
    levels = summary.level[first[flats]]
    ranked = flats[np.lexsort((flats, levels))]
    image, levels = first[ranked], summary.level[first[ranked]]

    def neighbours(asked: list[int]) -> list[list[tuple[int, str]]]:
        found = []
        for k in asked:
            near = np.arange(max(0, k - FLAT_WINDOW), min(len(ranked), k + FLAT_WINDOW + 1))
            gaps = np.abs(levels[near] - levels[k])
            close = near[(near != k) & (gaps <= FLAT_TOLERANCE)]
            found.append(
                [(int(j), "identity") for j in close[np.argsort(np.abs(levels[close] - levels[k]), kind="stable")]]
            )
        return found

    def same(a: int, b: int) -> bool:
        return flat_match(loaded[int(image[a])], loaded[int(image[b])]) is not None

    def level_gaps(pairs: list[tuple[int, int, str]]) -> list[Edge | None]:
        return [(float(abs(levels[a] - levels[b])), 1.0) if same(a, b) else None for a, b, _ in pairs]

    def all_same(pairs: list[tuple[int, int]]) -> list[bool]:
        return [same(a, b) for a, b in pairs]

    def prepare(positions: set[int]) -> None:
        loaded.prepare({int(image[k]) for k in positions})

    groups = form_groups(list(range(len(ranked))), neighbours, level_gaps, all_same, prepare)
    return [ranked[group].tolist() for group in groups]
