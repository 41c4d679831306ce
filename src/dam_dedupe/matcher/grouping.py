"""Partitioning fingerprinted assets into groups of copies.

1. Byte-identical fingerprints (same SHA-256) form one node.
2. The index (:mod:`dam_dedupe.matcher.index`) finds every pair of nodes whose ``dct``
   or ``centre`` hashes are within ``candidate_radius`` bits or whose ``low`` hashes are
   within ``crop_radius`` (each family catches copies the others miss: re-encodes, crops,
   edge watermarks), and, for rotated and mirrored copies, whose ``dct`` hashes are within
   ``transform_radius`` bits after each symmetry.
3. Each candidate pair is verified against the thumbnails (:func:`~dam_dedupe.matcher.compare.judge`).
4. Verified pairs are merged best first, and two groups merge only if every member of
   one is a copy of every member of the other under :func:`~dam_dedupe.matcher.compare`
   (complete linkage, with the thresholds relaxed by ``group_slack``). So a chain A~B~C
   where A and C are not copies never becomes one group, and ``compare`` explains every
   pair of members, whichever the canonical policy picks. For groups larger than
   ``LINKAGE_SAMPLE`` the check uses their first ``LINKAGE_SAMPLE`` members.

Featureless pictures (a flat colour; no structure to hash) are grouped when their grey
level and colour agree (:func:`~dam_dedupe.matcher.compare.flat_match`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from dam_dedupe.matcher.compare import FLAT_TOLERANCE, comparable, flat, flat_level, flat_match, is_copy, judge
from dam_dedupe.matcher.index import pairs_within, popcount
from dam_dedupe.matcher.perceptual import dct_dihedral_array
from dam_dedupe.matcher.settings import MatchSettings
from dam_dedupe.records import Fingerprint

ThumbnailSource = Callable[[list[int]], Mapping[int, bytes]]
"""Gives the stored thumbnails of the fingerprints at some indices (see :func:`find_groups`)."""

LINKAGE_SAMPLE = 40
FLAT_WINDOW = 50
INDEX_THREADS = min(2, os.cpu_count() or 1)

# One symmetry of each inverse pair: a pair related by rotate-270 is found as rotate-90 from the other side.
SELF_INVERSE = frozenset({"rotate-180", "mirror-horizontal", "mirror-vertical", "transpose", "transverse"})
CONFIRM_RADIUS = 12
"""Most ``dct`` bits in which a pair nominated by the ``low`` hash beyond ``candidate_radius`` may differ."""
INDEXED_FAMILIES = ("dct", "low", "centre")
"""Hash families whose near neighbours are candidates (see :mod:`dam_dedupe.matcher.perceptual`)."""
SEARCHED_SYMMETRIES = ("rotate-90", "rotate-180", "mirror-horizontal", "mirror-vertical", "transpose", "transverse")


def find_groups(
    fingerprints: Sequence[Fingerprint], settings: MatchSettings, thumbnails: ThumbnailSource | None = None
) -> list[list[int]]:
    """Return groups of two or more indices into ``fingerprints`` that are copies of one image.

    Every index is in at most one group; each group is sorted. With ``thumbnails``, the
    fingerprints may come without their thumbnails: ``thumbnails`` is asked, by index, for
    those of the fingerprints in candidate pairs only, so that matching a million images
    does not hold a million thumbnails (4 KiB each) at once.
    """
    by_hash: dict[str, list[int]] = defaultdict(list)
    for index, fingerprint in enumerate(fingerprints):
        by_hash[fingerprint.sha256].append(index)
    nodes = list(by_hash.values())
    if settings.perceptual:
        nodes = _merge_near(fingerprints, nodes, settings, thumbnails)
    return sorted(sorted(group) for group in nodes if len(group) > 1)


def candidate_pairs(codes: dict[str, np.ndarray], settings: MatchSettings) -> list[tuple[int, int, str]]:
    """Every (i, j, symmetry) nominated by the index: for each family in :data:`INDEXED_FAMILIES`,
    code j within the family's radius (:func:`radius_of`) of code i; with transforms, ``dct`` code j within
    ``transform_radius`` of code i after each symmetry. Pairs come once per (i, j, symmetry).

    The joins run on ``INDEX_THREADS`` threads: numpy releases the interpreter lock in the heavy steps.
    """

    def join(task: tuple[str, str]) -> np.ndarray:
        family, symmetry = task
        if symmetry == "identity":
            found = pairs_within(codes[family], radius_of(family, settings))
            return _confirmed(found, codes, family, settings)
        moved = dct_dihedral_array(codes["dct"], symmetry)
        found = pairs_within(codes["dct"], settings.transform_radius, queries=moved)
        if symmetry in SELF_INVERSE:
            found = _unique_rows(np.sort(found, axis=1))
        return found[found[:, 0] != found[:, 1]]

    tasks = [(family, "identity") for family in INDEXED_FAMILIES if family in codes]
    if settings.transforms:
        tasks += [("dct", symmetry) for symmetry in SEARCHED_SYMMETRIES]
    with ThreadPoolExecutor(INDEX_THREADS) as pool:
        results = list(pool.map(join, tasks))
    identity = np.unique(
        np.concatenate([r for (_, sym), r in zip(tasks, results, strict=True) if sym == "identity"]), axis=0
    )
    found = [(int(i), int(j), "identity") for i, j in identity]
    for (_, symmetry), pairs in zip(tasks, results, strict=True):
        if symmetry != "identity":
            found.extend((int(i), int(j), symmetry) for i, j in pairs)
    return found


def _confirmed(found: np.ndarray, codes: dict[str, np.ndarray], family: str, settings: MatchSettings) -> np.ndarray:
    """``found`` (pairs within ``family``'s radius) without the pairs that are beyond
    ``candidate_radius`` in ``family`` and beyond ``CONFIRM_RADIUS`` in ``dct``: the wider
    ``crop_radius`` of the ``low`` hash (which has fewer independent bits) nominates a pair
    only when a second family agrees."""
    if not len(found) or radius_of(family, settings) <= settings.candidate_radius or "dct" not in codes:
        return found
    first, second = found[:, 0], found[:, 1]
    near = popcount(codes[family][first] ^ codes[family][second]) <= settings.candidate_radius
    agreed = popcount(codes["dct"][first] ^ codes["dct"][second]) <= CONFIRM_RADIUS
    return found[near | agreed]


def radius_of(family: str, settings: MatchSettings) -> int:
    """The Hamming radius within which ``family`` hashes nominate a pair (see :class:`MatchSettings`)."""
    return settings.crop_radius if family == "low" else settings.candidate_radius


def _unique_rows(pairs: np.ndarray) -> np.ndarray:
    """Distinct rows of an (n, 2) array (numpy's unique cannot take an empty one by rows)."""
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def _merge_near(
    fingerprints: Sequence[Fingerprint],
    nodes: list[list[int]],
    settings: MatchSettings,
    thumbnails: ThumbnailSource | None,
) -> list[list[int]]:
    """Merge nodes (lists of byte-identical indices) that are verified copies, without chaining."""
    usable = [n for n, node in enumerate(nodes) if comparable(fingerprints[node[0]])]
    edges = _flat_edges(fingerprints, nodes)
    if len(usable) < 2:
        return _complete_linkage(fingerprints, nodes, edges, settings)
    families = [f for f in INDEXED_FAMILIES if all(f in fingerprints[nodes[n][0]].perceptual for n in usable)]
    codes = {
        family: np.array([int(fingerprints[nodes[n][0]].perceptual[family], 16) for n in usable], dtype=np.uint64)
        for family in families
    }
    candidates = candidate_pairs(codes, settings)
    if thumbnails is not None:
        needed = {nodes[usable[k]][0] for i, j, _ in candidates for k in (i, j)}
        fingerprints = with_thumbnails(fingerprints, needed, thumbnails)
    for i, j, symmetry in candidates:
        a, b = fingerprints[nodes[usable[i]][0]], fingerprints[nodes[usable[j]][0]]
        verdict = judge(a, b, symmetry, settings)
        if verdict is not None:
            edges.append((verdict.trimmed_rms, usable[i], usable[j]))
    edges.sort()
    return _complete_linkage(fingerprints, nodes, edges, settings)


def with_thumbnails(
    fingerprints: Sequence[Fingerprint], indices: Iterable[int], thumbnails: ThumbnailSource
) -> list[Fingerprint]:
    """``fingerprints`` with the thumbnails of those at ``indices`` filled in from ``thumbnails``."""
    filled = list(fingerprints)
    for index, thumbnail in thumbnails(sorted(set(indices))).items():
        filled[index] = replace(filled[index], thumbnail=thumbnail)
    return filled


def _flat_edges(fingerprints: Sequence[Fingerprint], nodes: list[list[int]]) -> list[tuple[float, int, int]]:
    """Edges between featureless nodes of one flat colour.

    Each node is compared with the next ``FLAT_WINDOW`` nodes in grey-level order that are
    within the tolerance: enough for every copy, bounded for a million blank pages.
    """
    flats = sorted(
        (flat_level(fingerprints[node[0]]), n) for n, node in enumerate(nodes) if flat(fingerprints[node[0]])
    )
    edges = []
    for k, (level_a, a) in enumerate(flats):
        for level_b, b in flats[k + 1 : k + 1 + FLAT_WINDOW]:
            if level_b - level_a > FLAT_TOLERANCE:
                break
            if flat_match(fingerprints[nodes[a][0]], fingerprints[nodes[b][0]]) is not None:
                edges.append((level_b - level_a, a, b))
    return edges


def _complete_linkage(
    fingerprints: Sequence[Fingerprint],
    nodes: list[list[int]],
    edges: list[tuple[float, int, int]],
    settings: MatchSettings,
) -> list[list[int]]:
    """Merge node groups along ``edges`` (best first) when every cross pair is a copy."""
    group_of = list(range(len(nodes)))
    members: dict[int, list[int]] = {n: [n] for n in range(len(nodes))}
    verified: dict[tuple[int, int], bool] = {}

    def copies(x: int, y: int) -> bool:
        key = (min(x, y), max(x, y))
        if key not in verified:
            fa, fb = fingerprints[nodes[key[0]][0]], fingerprints[nodes[key[1]][0]]
            verified[key] = is_copy(fa, fb, settings)
        return verified[key]

    for _, x, y in edges:
        gx, gy = group_of[x], group_of[y]
        if gx == gy:
            continue
        verified[(min(x, y), max(x, y))] = True
        if all(copies(p, q) for p in members[gx][:LINKAGE_SAMPLE] for q in members[gy][:LINKAGE_SAMPLE]):
            keep, gone = (gx, gy) if len(members[gx]) >= len(members[gy]) else (gy, gx)
            for n in members[gone]:
                group_of[n] = keep
            members[keep].extend(members.pop(gone))
    return [[index for n in group for index in nodes[n]] for group in members.values()]
