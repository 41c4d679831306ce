"""The matcher's candidate index sharded over a Dask cluster (``match --index-shards N``; ``docs/scale.md``).

The index (:class:`~dam_dedupe.matcher.neighbours.CandidateIndex`: every hash family's
multi-index) is most of what matching holds an image. Sharded, each shard is a Dask *actor* on a
worker holding the index of every ``N``-th image's hash codes, sent to it as the codes are streamed
out of the catalog; the matching process keeps only the codes themselves. Asked for the candidates
of a batch of images, every shard searches its part with the batch's codes at once and the rows
are merged exactly as one index orders them (:func:`~dam_dedupe.matcher.neighbours.ordered_neighbours`):
the search is exact (multi-index hashing misses nothing within the radius), so the candidates, and
so the clusters, are those one process finds. Verifying candidates stays in the matching process.

An actor's state lives in its worker: a worker lost mid-match loses its part of the index, and the
match stops with a message saying so (nothing is stored until matching ends; run it again).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dam_dedupe.dask_executor import DaskCluster
from dam_dedupe.errors import DamDedupeError
from dam_dedupe.matcher.neighbours import CandidateIndex, ordered_neighbours
from dam_dedupe.matcher.settings import MatchSettings


class IndexShard:
    """One shard, held by a Dask worker: the candidate index of some images' codes."""

    def __init__(self, held: tuple[dict[str, np.ndarray], np.ndarray], settings: MatchSettings) -> None:
        codes, self.positions = held  # the images' codes, and their positions in the whole index
        self.index = CandidateIndex(codes, settings)

    def rows(self, asked: dict[str, np.ndarray]) -> np.ndarray:
        """This shard's candidate rows for the images whose codes are ``asked``, with whole-index positions."""
        table = self.index.rows(asked)
        table[:, 1] = self.positions[table[:, 1]]
        return table


class ShardedIndex:
    """The candidate index of ``codes`` over ``shards`` actors on ``cluster``; asked as one index is."""

    def __init__(
        self, cluster: DaskCluster, codes: dict[str, np.ndarray], settings: MatchSettings, shards: int
    ) -> None:
        self.codes = codes
        self.cluster = cluster
        count = len(next(iter(codes.values()))) if codes else 0
        started = []
        for shard in range(shards):
            positions = np.arange(shard, count, shards, dtype=np.int64)
            part = {family: values[positions] for family, values in codes.items()}
            # scattered first: a shard's codes (8 bytes an image a family) are no part of the task graph
            [held] = cluster.client.scatter([(part, positions)], hash=False)
            started.append(cluster.client.submit(IndexShard, held, settings, actor=True, pure=False))
        self.shards: list[Any] = [self._answer(future) for future in started]

    def neighbours(self, asked: np.ndarray) -> list[list[tuple[int, str]]]:
        """For each position in ``asked``, its candidates: :meth:`CandidateIndex.neighbours` over every shard."""
        asked = np.asarray(asked, dtype=np.int64)
        wanted = {family: values[asked] for family, values in self.codes.items()}
        calls = [shard.rows(wanted) for shard in self.shards]  # every shard searches at once
        parts = [self._answer(call) for call in calls]
        table = np.concatenate(parts) if parts else np.zeros((0, 4), dtype=np.int64)
        return ordered_neighbours(table[asked[table[:, 0]] != table[:, 1]], len(asked))

    def _answer(self, future: Any) -> Any:
        """A shard's answer, or a message naming what was lost."""
        try:
            return future.result()
        except Exception as exc:
            raise DamDedupeError(
                f"a Dask worker holding part of the matching index at {self.cluster.address} failed or was lost "
                f"({type(exc).__name__}: {exc}); nothing was stored: run the match again"
            ) from exc


class DaskIndex:
    """The matcher's index factory (``build_clusters(index=...)``): a :class:`ShardedIndex` of ``shards``
    parts on ``cluster``."""

    def __init__(self, cluster: DaskCluster, shards: int) -> None:
        self.cluster = cluster
        self.shards = shards

    def __call__(self, codes: dict[str, np.ndarray], settings: MatchSettings) -> ShardedIndex:
        return ShardedIndex(self.cluster, codes, settings, self.shards)
