"""All pairs of 64-bit hashes within a Hamming radius: multi-index hashing, exactly.

Multi-index hashing (Norouzi, Punjani and Fleet, 2012): split each 64-bit code into ``m``
chunks. If two codes differ in at most ``r`` bits, some chunk differs in at most
``r // m`` bits (pigeonhole), so every pair within ``r`` is found by looking up, for each
chunk, the buckets within ``r // m`` bit flips of a query's chunk value, and checking the
full distance of what is found. Nothing within the radius is missed: the result equals
:func:`pairs_within_linear` (the reference linear scan kept beside it for tests).

The work is vectorised with numpy: per chunk, one sort of the database and, per flip
mask, one gather over all queries. The chunk count is chosen from the database size and
radius by a cost model, so buckets stay small (about one code each) and masks few.
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

BITS = 64
_ONE = np.uint64(1)


def popcount(values: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64."""
    return np.bitwise_count(values).astype(np.int64)


def pairs_within_linear(codes: np.ndarray, radius: int, queries: np.ndarray | None = None) -> np.ndarray:
    """Reference implementation: every (query, code) index pair within ``radius``, by linear scan.

    With ``queries`` ``None`` it is the self-join of ``codes`` and returns pairs ``i < j``.
    Returns an int64 array of shape (k, 2), sorted.
    """
    found: list[tuple[int, int]] = []
    self_join = queries is None
    probe = codes if queries is None else queries
    for i, code in enumerate(probe):
        near = np.nonzero(popcount(codes ^ code) <= radius)[0]
        if self_join:
            near = near[near > i]
        found.extend((i, int(j)) for j in near)
    return _sorted_pairs(np.array(found, dtype=np.int64).reshape(-1, 2))


def _sorted_pairs(pairs: np.ndarray) -> np.ndarray:
    """Unique pairs in lexicographic order (one 1-D unique of a combined key: a row-wise unique is far slower)."""
    if not len(pairs):
        return pairs.reshape(0, 2)
    width = int(pairs[:, 1].max()) + 1
    keys = np.unique(pairs[:, 0] * width + pairs[:, 1])
    return np.stack([keys // width, keys % width], axis=1)


def _flip_masks(width: int, flips: int) -> np.ndarray:
    """Every mask of ``width`` bits with at most ``flips`` bits set."""
    masks = [0]
    for k in range(1, flips + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(width), k))
    return np.array(masks, dtype=np.uint64)


def _chunk_widths(parts: int) -> list[int]:
    """Widths of ``parts`` contiguous chunks covering 64 bits, as equal as possible."""
    return [BITS // parts + (1 if i < BITS % parts else 0) for i in range(parts)]


def choose_chunks(size: int, radius: int) -> int:
    """The chunk count that minimises the estimated work for a database of ``size`` codes.

    Work per query is estimated as masks probed x (1 + expected codes per bucket), with
    codes assumed spread evenly (real hashes cluster more; the estimate only needs to rank).
    """
    best, best_cost = 1, float("inf")
    for parts in range(1, min(BITS, radius + 1) + 1):
        widths = _chunk_widths(parts)
        flips = radius // parts
        cost = sum(sum(comb(w, k) for k in range(flips + 1)) * (1 + size / 2.0**w) for w in widths)
        if max(widths) <= 32 and cost < best_cost:
            best, best_cost = parts, cost
    return best


def pairs_within(codes: np.ndarray, radius: int, queries: np.ndarray | None = None) -> np.ndarray:
    """Every (query, code) index pair whose codes differ in at most ``radius`` bits.

    ``codes`` and ``queries`` are uint64 arrays. With ``queries`` ``None`` it is the
    self-join of ``codes`` and returns pairs ``i < j``. Returns an int64 array of shape
    (k, 2), sorted, equal to :func:`pairs_within_linear` on the same input.
    """
    index = HammingIndex(codes, radius)
    return index.self_join() if queries is None else index.query(queries)


class HammingIndex:
    """The multi-index over ``codes`` for one ``radius``, built once and asked many times.

    A matcher that looks up the neighbours of a few codes at a time (cluster formation asks
    for the neighbours of each group's first member only) would otherwise sort the database
    again for every batch.
    """

    def __init__(self, codes: np.ndarray, radius: int) -> None:
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64)
        self.radius = radius
        parts = choose_chunks(len(self.codes), radius)
        self._chunks: list[tuple[int, np.uint64, np.ndarray, _Buckets, np.ndarray]] = []
        shift = 0
        for width in _chunk_widths(parts):
            mask = np.uint64((1 << width) - 1)
            keys = ((self.codes >> np.uint64(shift)) & mask).astype(np.int64)
            # Positions as 4 bytes where they fit: the index is most of what grouping holds an image.
            order = np.argsort(keys, kind="stable").astype(np.int32 if len(keys) < 1 << 31 else np.int64)
            flips = _flip_masks(width, radius // parts).astype(np.int64)
            self._chunks.append((shift, mask, order, _Buckets(keys[order], width), flips))
            shift += width

    def query(self, queries: np.ndarray) -> np.ndarray:
        """Every (query position, code index) pair within the radius, as a sorted int64 array of shape (k, 2)."""
        return self._search(np.ascontiguousarray(queries, dtype=np.uint64), self_join=False)

    def self_join(self) -> np.ndarray:
        """Every pair ``i < j`` of codes within the radius, sorted."""
        return self._search(self.codes, self_join=True)

    def _search(self, probe: np.ndarray, self_join: bool) -> np.ndarray:
        if not len(self.codes) or not len(probe):
            return np.zeros((0, 2), dtype=np.int64)
        found: list[np.ndarray] = []
        for shift, mask, order, bucket, flips in self._chunks:
            probe_keys = ((probe >> np.uint64(shift)) & mask).astype(np.int64)
            for flip in flips:
                # In a self-join a pair whose keys differ by ``flip`` is found from both ends:
                # probe only from the end with the smaller key.
                chosen = np.nonzero(probe_keys < (probe_keys ^ flip))[0] if self_join and flip else None
                wanted = probe_keys ^ flip if chosen is None else probe_keys[chosen] ^ flip
                start, stop = bucket.ranges(wanted)
                found.append(_expand(self.codes, probe, order, start, stop, self.radius, self_join, chosen))
        return _sorted_pairs(np.concatenate(found))


class _Buckets:
    """Where each key's codes lie in the sorted order: a direct table for chunks narrow enough
    that the table is not much larger than the codes, binary search otherwise."""

    TABLE_PER_CODE = 8
    """Most table entries (4 bytes each, 8 past two billion codes) per code: a table of every 22-bit
    key is 16 MiB, and an index has one per chunk and family, whatever the library's size."""

    def __init__(self, sorted_keys: np.ndarray, width: int) -> None:
        # Keys and positions as 4 bytes where they fit: the tables are most of what an index holds.
        self.sorted_keys = sorted_keys.astype(np.int32) if width < 32 else sorted_keys
        self.starts: np.ndarray | None = None
        if 1 << width <= self.TABLE_PER_CODE * len(sorted_keys) + 4096:
            counts = np.bincount(sorted_keys, minlength=1 << width)
            positions = np.int32 if len(sorted_keys) < 1 << 31 else np.int64
            self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(positions)

    def ranges(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, stop) positions in the sorted order of the codes whose key is ``wanted``."""
        if self.starts is not None:
            return self.starts[wanted], self.starts[wanted + 1]
        wanted = wanted.astype(self.sorted_keys.dtype)  # keys of this width: searched without converting the table
        return (
            np.searchsorted(self.sorted_keys, wanted, side="left"),
            np.searchsorted(self.sorted_keys, wanted, side="right"),
        )


def _expand(
    codes: np.ndarray,
    probe: np.ndarray,
    order: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    radius: int,
    self_join: bool,
    chosen: np.ndarray | None,
) -> np.ndarray:
    """The verified pairs from bucket ranges [start, stop) of each probed query.

    ``chosen`` maps the probed positions to query indices when only some queries were probed.
    """
    counts = stop - start
    hit = np.nonzero(counts)[0]
    if not len(hit):
        return np.zeros((0, 2), dtype=np.int64)
    counts = counts[hit]
    position = np.repeat(hit, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    other = order[np.repeat(start[hit], counts) + offsets]
    query = position if chosen is None else chosen[position]
    keep = popcount(probe[query] ^ codes[other]) <= radius
    query, other = query[keep], other[keep]
    if self_join:
        first, second = np.minimum(query, other), np.maximum(query, other)
        distinct = first != second
        return np.stack([first[distinct], second[distinct]], axis=1).astype(np.int64)
    return np.stack([query, other], axis=1).astype(np.int64)
