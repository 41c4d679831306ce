"""Which images the hash index nominates as candidate copies of a few images at a time.

For each family in :data:`INDEXED_FAMILIES`, an image's candidates are those whose code is
within the family's radius (:func:`radius_of`); across the ``inner`` and ``dct`` families
(:data:`CROSSED`), those whose code of the other family is near, for crops of 4-5% a side; with
transforms, also those whose ``dct`` code is within ``transform_radius`` of the image's code
after each symmetry. Each family's multi-index is built once
(:class:`~dam_dedupe.matcher.index.HammingIndex`) and asked for the neighbours of one batch of
images after another: cluster formation asks only for the neighbours of images not yet in a
group, so a cluster of 5,000 copies costs 5,000 candidate rows, not the 12.5 million pairs among
its members.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dam_dedupe.matcher.index import HammingIndex, popcount
from dam_dedupe.matcher.perceptual import DIHEDRAL, dct_dihedral_array
from dam_dedupe.matcher.settings import MatchSettings

INDEXED_FAMILIES = ("dct", "low", "centre")
"""Hash families whose near neighbours are candidates (see :mod:`dam_dedupe.matcher.perceptual`)."""
SYMMETRIES = tuple(name for name in DIHEDRAL if name != "identity")
"""Every symmetry a transformed copy may have been made with, searched from the image asked about."""
INDEX_THREADS = min(2, os.cpu_count() or 1)
"""Threads the searches of one batch run on: numpy releases the interpreter lock in the heavy steps."""
CROSSED = (("inner", "dct"), ("dct", "inner"))
"""(family of the asked image's code, family of the codes searched): a picture's ``inner`` hash is
the ``dct`` hash of its crop of about 4.5% a side, so its ``inner`` code finds its crops among the
``dct`` codes and its ``dct`` code finds, among the ``inner`` codes, the pictures it is a crop of.
Such a pair is nominated within ``candidate_radius``, or within ``crop_radius`` when the ``low``
hashes agree within ``crop_radius`` too (see :meth:`CandidateIndex._confirmed_across`)."""
CODE_FAMILIES = (*INDEXED_FAMILIES, "inner")
"""Every hash family whose codes the index holds."""
CONFIRM_RADIUS = 12
"""Most ``dct`` bits in which a pair nominated by the ``low`` hash beyond ``candidate_radius`` may differ."""


def radius_of(family: str, settings: MatchSettings) -> int:
    """The Hamming radius within which ``family`` hashes nominate a pair (see :class:`MatchSettings`)."""
    return settings.crop_radius if family == "low" else settings.candidate_radius


class CandidateIndex:
    """The candidate search over every family's codes (position ``k`` in each array is image ``k``).

    ``codes`` maps family names to uint64 arrays of equal length; only the hash codes are held.
    """

    def __init__(self, codes: dict[str, np.ndarray], settings: MatchSettings) -> None:
        self.codes = codes
        self.settings = settings
        self.families = [family for family in INDEXED_FAMILIES if family in codes]
        self._indexes = {family: HammingIndex(codes[family], radius_of(family, settings)) for family in self.families}
        across_radius = max(settings.crop_radius, settings.candidate_radius)
        self._across = {
            (asked, searched): self._index_of(codes, searched, across_radius)
            for asked, searched in CROSSED
            if asked in codes and searched in codes
        }
        self._turned: HammingIndex | None = None
        if settings.transforms and "dct" in codes:
            self._turned = self._index_of(codes, "dct", settings.transform_radius)

    def _index_of(self, codes: Mapping[str, np.ndarray], family: str, radius: int) -> HammingIndex:
        """An index of ``family`` for ``radius``: the family's own when its radius is that (the
        presets' default, so one index serves every search of those codes), else a new one."""
        own = self._indexes.get(family)
        return own if own is not None and own.radius == radius else HammingIndex(codes[family], radius)

    def neighbours(self, asked: np.ndarray) -> list[list[tuple[int, str]]]:
        """For each image position in ``asked``, its candidates as (position, symmetry), nearest first.

        ``symmetry`` is what turns the asked image into the candidate (``identity`` for a copy as it
        stands); a candidate found both as it stands and turned is listed once, as it stands.
        The order is by ``dct`` distance after the symmetry.
        """
        asked = np.asarray(asked, dtype=np.int64)
        table = self.rows({family: codes[asked] for family, codes in self.codes.items()})
        return ordered_neighbours(table[asked[table[:, 0]] != table[:, 1]], len(asked))

    def rows(self, asked: Mapping[str, np.ndarray]) -> np.ndarray:
        """Every candidate among this index's codes of the images whose codes are ``asked`` (by family,
        position ``k`` in each array being asked image ``k``), as rows (k, candidate position, symmetry
        number, ``dct`` distance after the symmetry). An image asked about is not told apart from
        itself here: :meth:`neighbours` drops those rows. A shard of a larger index answers with these
        rows, and the union of every shard's rows is the whole index's (``DaskIndex``)."""

        def search(task: tuple[str, str, int]) -> np.ndarray:
            # (family asked, family searched, symmetry number): one search of one index.
            family, searched, number = task
            if family != searched:
                found = self._across[family, searched].query(asked[family])
                return self._with_symmetry(self._confirmed_across(found, asked, family, searched), 0)
            if number == 0:
                found = self._indexes[family].query(asked[family])
                return self._with_symmetry(self._confirmed(found, asked, family), 0)
            assert self._turned is not None
            moved = dct_dihedral_array(asked["dct"], SYMMETRIES[number - 1])
            return self._with_symmetry(self._turned.query(moved), number)

        tasks = [(family, family, 0) for family in self.families]
        tasks += [(family, searched, 0) for family, searched in self._across]
        if self._turned is not None:
            tasks += [("dct", "dct", number) for number in range(1, len(SYMMETRIES) + 1)]
        with ThreadPoolExecutor(INDEX_THREADS) as pool:
            found = list(pool.map(search, tasks))
        table = np.concatenate(found) if found else np.zeros((0, 3), dtype=np.int64)
        distance = self._dct_distance(asked, table[:, 0], table[:, 1], table[:, 2])
        return np.column_stack([table, distance]).astype(np.int64)

    @staticmethod
    def _with_symmetry(found: np.ndarray, number: int) -> np.ndarray:
        """(asked position, candidate, symmetry number) rows."""
        return np.column_stack([found, np.full(len(found), number, dtype=np.int64)])

    def _confirmed(self, found: np.ndarray, asked: Mapping[str, np.ndarray], family: str) -> np.ndarray:
        """``found`` without the pairs beyond ``candidate_radius`` in ``family`` and beyond
        ``CONFIRM_RADIUS`` in ``dct``: the wider ``crop_radius`` of the ``low`` hash (which has
        fewer independent bits) nominates a pair only when a second family agrees."""
        settings = self.settings
        if not len(found) or radius_of(family, settings) <= settings.candidate_radius or "dct" not in self.codes:
            return found
        first, second = found[:, 0], found[:, 1]
        near = popcount(asked[family][first] ^ self.codes[family][second]) <= settings.candidate_radius
        agreed = popcount(asked["dct"][first] ^ self.codes["dct"][second]) <= CONFIRM_RADIUS
        return found[near | agreed]

    def _confirmed_across(
        self, found: np.ndarray, asked: Mapping[str, np.ndarray], family: str, searched: str
    ) -> np.ndarray:
        """``found`` (from ``family`` codes to ``searched`` ones, within ``crop_radius``) without the
        pairs beyond ``candidate_radius`` whose ``low`` hashes differ in more than ``crop_radius``
        bits: the wider radius alone nominated 35 unrelated pairs in the benchmark corpus."""
        settings = self.settings
        if not len(found) or settings.crop_radius <= settings.candidate_radius:
            return found
        first, second = found[:, 0], found[:, 1]
        near = popcount(asked[family][first] ^ self.codes[searched][second]) <= settings.candidate_radius
        if "low" not in self.codes:
            return found[near]
        return found[near | (popcount(asked["low"][first] ^ self.codes["low"][second]) <= settings.crop_radius)]

    def _dct_distance(
        self, asked: Mapping[str, np.ndarray], first: np.ndarray, second: np.ndarray, symmetry: np.ndarray
    ) -> np.ndarray:
        """``dct`` bits in which each second image (of this index) differs from its first (asked)
        after the row's symmetry."""
        if "dct" not in self.codes:
            return np.zeros(len(first), dtype=np.int64)
        moved = asked["dct"][first].copy()
        for number, name in enumerate(SYMMETRIES, start=1):
            rows = symmetry == number
            if rows.any():
                moved[rows] = dct_dihedral_array(asked["dct"][first[rows]], name)
        return popcount(moved ^ self.codes["dct"][second])


def ordered_neighbours(table: np.ndarray, count: int) -> list[list[tuple[int, str]]]:
    """The candidate lists of ``count`` asked images from rows (k, candidate, symmetry number, distance):
    one entry per (asked, candidate), the lowest symmetry number (so identity wins), nearest first,
    then by position."""
    table = table[np.lexsort((table[:, 2], table[:, 1], table[:, 0]))]
    first = np.ones(len(table), dtype=bool)
    first[1:] = (table[1:, 0] != table[:-1, 0]) | (table[1:, 1] != table[:-1, 1])
    table = table[first]
    table = table[np.lexsort((table[:, 1], table[:, 3], table[:, 0]))]
    names = ("identity", *SYMMETRIES)
    result: list[list[tuple[int, str]]] = [[] for _ in range(count)]
    for position, other, symmetry in table[:, :3].tolist():
        result[position].append((other, names[symmetry]))
    return result


def candidate_pairs(codes: dict[str, np.ndarray], settings: MatchSettings) -> list[tuple[int, int, str]]:
    """Every (i, j, symmetry) the index nominates among all the images: j is a candidate copy of
    i after ``symmetry``. A pair is listed from each end it is found from (for the benchmark and
    tests; cluster formation asks :class:`CandidateIndex` for a few images at a time)."""
    size = len(next(iter(codes.values()))) if codes else 0
    everyone = np.arange(size)
    found = CandidateIndex(codes, settings).neighbours(everyone)
    return [(i, j, symmetry) for i in range(size) for j, symmetry in found[i]]
