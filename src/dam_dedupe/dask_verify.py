"""Verifying the matcher's candidate pairs over a Dask cluster (``match`` on a cluster; ``docs/scale.md``).

Verifying candidates (comparing two thumbnails, with a crop search when they do not agree as they
stand) is most of a match's time. Groups form one image after another, each verdict deciding
what is asked next, so the pairs cannot all be known ahead; but the formation tells, before it
places a part of a batch of images, the pairs it will likely ask (each image's nearest candidates,
:data:`~dam_dedupe.matcher.formation.Foresee`), and before each of a most-copied image's claim
batches, that batch. :class:`DaskVerifier` judges those over the cluster's workers, a share each,
with the thumbnails sent in the tasks (a worker needs no access to the catalog). A pair asked
that was not foreseen is verified in the matching process as before. The verdicts are those of
:func:`~dam_dedupe.matcher.compare.judge_many` wherever computed, so the clusters are the same.

The tasks hold no state: one whose worker is lost runs again elsewhere. Verdicts the cluster cannot
give (Dask gave up on a task as ``KilledWorker``, or the cluster had no worker for ``no_worker_wait``
and its client was closed) are computed in the matching process from then on, with a warning.
"""

from __future__ import annotations

import logging
import math
import uuid

from dam_dedupe.dask_executor import DaskCluster
from dam_dedupe.matcher.blas import one_thread
from dam_dedupe.matcher.compare import Pair, judge_many, judged_with_copies, keep_copies
from dam_dedupe.matcher.settings import MatchSettings
from dam_dedupe.matcher.verify import Verdict

log = logging.getLogger(__name__)

WORTH_SENDING = 32
"""Fewest pairs sent to the cluster at once; fewer are verified here (a round trip through the
scheduler costs some milliseconds, a plain verdict well under one)."""
TASKS_A_THREAD = 2
"""Tasks a call is split into for each of the cluster's threads: enough to even out their lengths."""


def verdicts_on_worker(pairs: list[Pair], settings: MatchSettings) -> tuple[list[Verdict | None], dict[bytes, bytes]]:
    """A task: the pairs' verdicts and the plain measures of the copies among them (see
    :func:`~dam_dedupe.matcher.compare.judged_with_copies`), numpy on one thread as the worker's is."""
    with one_thread():
        return judged_with_copies(pairs, settings)


class DaskVerifier:
    """The matcher's :class:`~dam_dedupe.matcher.grouping.Verifier` on ``cluster``: each call's pairs
    split over its threads."""

    def __init__(self, cluster: DaskCluster) -> None:
        self.cluster = cluster
        self.failed = False

    def judge(self, pairs: list[Pair], settings: MatchSettings) -> list[Verdict | None]:
        """The verdicts of ``pairs``, judged on the cluster (here when they are few or the cluster fails)."""
        if len(pairs) < WORTH_SENDING or self.failed:
            return judge_many(pairs, settings)
        tasks = max(1, min(self.cluster.threads * TASKS_A_THREAD, len(pairs) // (WORTH_SENDING // 2)))
        size = math.ceil(len(pairs) / tasks)
        client = self.cluster.client
        call = uuid.uuid4().hex
        futures = [
            client.submit(verdicts_on_worker, pairs[start : start + size], settings, key=f"verify-{call}-{start}")
            for start in range(0, len(pairs), size)
        ]
        try:
            answers = client.gather(futures)
        except Exception as exc:
            self.failed = True
            log.warning(
                "verifying on the Dask cluster at %s failed (%s: %s); the match verifies here from now on",
                self.cluster.address,
                type(exc).__name__,
                exc,
            )
            return judge_many(pairs, settings)
        verdicts: list[Verdict | None] = []
        for found, kept in answers:
            verdicts += found
            keep_copies(kept)
        return verdicts
