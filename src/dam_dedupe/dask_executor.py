"""Fingerprinting on a Dask distributed cluster (``scan --executor dask``; see ``docs/scale.md``).

A scan's executor seam (:func:`~dam_dedupe.scan.run_scan`'s ``executor_factory``) takes any
:class:`concurrent.futures.Executor`; Dask's client gives one. Each task carries the
:class:`~dam_dedupe.scan.FingerprintJob` (the source's :class:`~dam_dedupe.records.SourceSpec`, never
an SDK client or a credential) and the listing records of ``BATCH`` assets: the worker builds its
own adapter from its own installed plugins and environment, reads the assets from the store
directly, and only the fingerprints travel back. Listing, the catalog's writes and matching stay in
the scanning process, so a task that Dask runs twice (its worker died) is stored once.

A worker that dies mid-task is Dask's to handle: the scheduler runs the task again on another
worker, and after ``distributed.scheduler.allowed-failures`` deaths it fails the task as
``KilledWorker``; the scan then reads that task's assets again one at a time and records the one
that kills its worker, as it does for a process pool worker the kernel killed, and goes on.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from dam_dedupe.errors import DamDedupeError, MissingExtra

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_WORKER_WAIT = 120.0
"""Seconds a cluster may have no worker before its jobs are stopped (``[scan] no_worker_wait``): long
enough for an adaptive cluster to start one, or a lost one to be replaced."""
WATCH_EVERY = 1.0
"""Seconds between two looks at the cluster's workers."""

PROJECT = "dam-dedupe"
NO_TRIM = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
"""Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also stops glibc from raising
its mmap threshold: every large numpy temporary is then mapped and unmapped, and verifying pairs took
twice as long (1.97 s where the same pairs took 0.97 s in a plain process). Workers started here go
without it; ``docs/scale.md`` says how to start others so."""


def _distributed() -> Any:
    """The ``distributed`` package, or :class:`MissingExtra` naming the install command."""
    try:
        import distributed
    except ImportError as exc:
        raise MissingExtra("dask", "distributed") from exc
    return distributed


def _connect_timeout() -> float:
    """Dask's own connect timeout (``distributed.comm.timeouts.connect``; 30 s unless configured), in seconds:
    also how long a scan waits for the scheduler's first worker."""
    from dask.config import get
    from dask.utils import parse_timedelta

    return float(parse_timedelta(get("distributed.comm.timeouts.connect")))


class DaskCluster:
    """A scan's executors on one Dask cluster: the scheduler at ``scheduler``, or, without one, a
    ``LocalCluster`` of ``workers`` processes (one thread each) started here and stopped on close.

    Call it as an :data:`~dam_dedupe.scan.ExecutorFactory`; use it as a context manager so that
    the client (and a local cluster) is closed however the scan ends.
    """

    BATCH = 32
    """Assets a task reads (``run_scan``'s ``batch``): each task costs a round trip through the scheduler,
    where an image takes 5-15 ms to read and fingerprint. On 2 cores, 2 workers scanned 138 images/s with
    1 a task, 243 with 8 and 267-287 with 32, the local pool 302-331 (``benchmarks/dask_scan.py``)."""

    def __init__(self, scheduler: str | None, workers: int, no_worker_wait: float = NO_WORKER_WAIT) -> None:
        distributed = _distributed()
        from dask.config import set as configured

        self._cluster: LocalCluster | None = None
        try:
            if scheduler is None:
                with configured(NO_TRIM):
                    self._cluster = distributed.LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=":0",  # any free port: two local-cluster scans at once must not collide
                        silence_logs=logging.WARNING,
                    )
                self.client: Client = distributed.Client(self._cluster)
            else:
                self.client = distributed.Client(scheduler)  # waits Dask's connect timeout (its own setting)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise DamDedupeError(f"cannot use the Dask scheduler at {scheduler or 'a local cluster'}: {exc}") from exc
        self.address = scheduler or self._cluster.scheduler_address  # type: ignore[union-attr]
        try:
            self.client.wait_for_workers(1, timeout=_connect_timeout())
        except TimeoutError as exc:
            self.close()
            raise DamDedupeError(
                f"the Dask scheduler at {self.address} has no worker (waited {_connect_timeout():.0f} s)"
            ) from exc
        self._check_workers()
        self.threads = sum(self.client.nthreads().values())
        """The threads the cluster's workers run tasks in, in all (the scan keeps about four tasks in flight each)."""
        self.workerless = False
        """Whether the watch gave up on the cluster, which had no worker for ``no_worker_wait`` seconds."""
        self._closing = threading.Event()
        self._watch = threading.Thread(target=self._watch_workers, args=(no_worker_wait,), daemon=True)
        self._watch.start()

    def _watch_workers(self, wait: float) -> None:
        """Close the client once the cluster has had no worker for ``wait`` seconds.

        Dask keeps a task whose workers are all gone waiting for a new one, for ever: a scan or a match
        would hang. Closed, the client cancels every job, and the command stops as for a lost scheduler,
        keeping what it stored."""
        since: float | None = None
        while not self._closing.wait(WATCH_EVERY):
            try:
                workers = len(self.client.nthreads())
            except Exception:  # the scheduler is unreachable: Dask's own timeouts deal with that
                continue
            now = time.monotonic()
            since = None if workers else since or now
            if since is not None and now - since >= wait:
                log.warning(
                    "the Dask cluster at %s has had no worker for %.0f s: its jobs are stopped", self.address, wait
                )
                self.workerless = True
                self.client.close()
                return

    def _check_workers(self) -> None:
        """Refuse a cluster whose workers lack this version of dam-dedupe: every task would fail on them;
        warn of workers that trim their memory as Dask starts them by default (see :data:`NO_TRIM`)."""
        trimming = self.client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_", on_error="return")
        if any(isinstance(value, str) for value in trimming.values()):
            log.warning(
                "the Dask workers at %s run with MALLOC_TRIM_THRESHOLD_ set, which makes verifying images "
                "about twice as slow: start them with it unset (docs/scale.md, 'Starting a cluster')",
                self.address,
            )
        ours = importlib.metadata.version(PROJECT)
        found = self.client.run(importlib.metadata.version, PROJECT, on_error="return")
        wrong = {worker: version for worker, version in found.items() if version != ours}
        if wrong:
            self.close()
            seen = ", ".join(
                f"{worker}: {'not installed' if isinstance(v, Exception) else v}" for worker, v in sorted(wrong.items())
            )
            raise DamDedupeError(
                f"the Dask workers must run dam-dedupe {ours}, as this scan does; install it there ({seen})"
            )

    def __call__(self, workers: int) -> Executor:
        """An executor on the cluster (``workers`` is the cluster's to decide). Tasks are not pure:
        an asset read twice in one scan (after a worker died) is read again, not taken from a cache."""
        return _Jobs(self)

    def close(self) -> None:
        """Close the client and stop the local cluster, if this started one."""
        closing = getattr(self, "_closing", None)
        if closing is not None:
            closing.set()
            self._watch.join()
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class _Jobs(Executor):
    """The client's executor, but for a shutdown once the watch has closed the client (its jobs are
    cancelled then, and the client's own shutdown would fail on its closed event loop)."""

    def __init__(self, cluster: DaskCluster) -> None:
        self.cluster = cluster
        self.jobs = cluster.client.get_executor(pure=False)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self.jobs.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if not self.cluster.workerless:
            self.jobs.shutdown(wait=wait)  # it cancels what is left when not waiting
