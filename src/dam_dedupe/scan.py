"""A scan: list every source into the catalog, fingerprint what is new or changed, match.

Listing runs in this process and is written to the catalog first, so a scan killed at
any moment loses nothing: the next scan reads only what was not fingerprinted yet.
Fingerprinting runs behind an executor (the :mod:`concurrent.futures` interface; a
process pool by default) with a bounded number of jobs in flight, so memory stays flat
however large the library. Every failure is recorded against its asset or source and
the scan goes on: a worker process killed by the kernel is recorded against the asset it
was reading, which is tried again a bounded number of times.

One scan runs per catalog at a time (:meth:`Catalog.scan_lock`). Only a listing that
finished without a problem may mark assets gone, and one store object listed under a
second name (``AssetRecord.object_id``) is recorded once, the other sighting as a problem.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from multiprocessing import forkserver
from multiprocessing.context import BaseContext
from typing import IO, Any, cast

from PIL import Image

from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.analysis import Analysis, SharedResults, analysers_enabled, warn_unavailable
from dam_dedupe.catalog import Catalog, CatalogAsset, RunCounts
from dam_dedupe.clustering import MatchProgress, build_clusters
from dam_dedupe.config import Config
from dam_dedupe.containers import DocumentError, Extractor, PartResult, extractor_for, read_document
from dam_dedupe.decoders import has_decoder_extension
from dam_dedupe.errors import AssetError, AssetGone, DamDedupeError, MissingExtra
from dam_dedupe.fingerprint import FINGERPRINT_VERSION, fingerprint_stream
from dam_dedupe.hookspecs import PROJECT_NAME
from dam_dedupe.host import Host
from dam_dedupe.imaging import NotAnImage, has_image_extension, worth_reading
from dam_dedupe.matcher.grouping import IndexFactory, Verifier
from dam_dedupe.matcher.neighbours import CandidateIndex
from dam_dedupe.records import AssetRecord, DeltaCursor, Fingerprint, ListingProblem, Removed, ScanSummary, SourceSpec
from dam_dedupe.stubs import MAX_STUB_SIZE, redirect_target

log = logging.getLogger(__name__)

ExecutorFactory = Callable[[int], Executor]
Progress = Callable[[str, int, int], None]
"""Called as ``progress(label, done, total)`` while the source ``label`` is fingerprinted."""
ListingProgress = Callable[[str, int, bool], None]
"""Called as ``listing(label, listed, finished)`` while the source ``label`` is listed; its size is known only
when ``finished``."""

COMMIT_EVERY = 200
COMMIT_SECONDS = 2.0
PAGE = 1000
MAX_WORKER_CRASHES = 2
"""How many times a worker may die reading one asset (across scans) before it is an error, not read again
until it changes."""
HEAD_BYTES = 64
"""How much of a file of unknown type is read to tell whether it may be an image before reading it all."""


def default_executor(workers: int) -> Executor:
    """A process pool of ``workers`` processes; with one worker, a thread in this process.

    On Linux, workers are forked from Python's fork server: a clean process, started once, that
    imports the scan's modules and the built-in plugins (:func:`worker_preload`) and forks each
    worker from there, so workers start without importing them again (about 0.4 s of CPU each
    when spawned). The server never decodes an image or runs a model, so no native
    library's threads (LiteRT's) hold a lock it could copy into a worker; this scan's own process
    is never forked, as it may have run them. Elsewhere workers are spawned (on macOS, system
    libraries may start threads on import, which is why Python spawns there by default).
    Either way a worker sees this process's environment as it is when the pool starts.
    """
    if workers <= 1:
        return ThreadPoolExecutor(max_workers=1)
    context = _fork_server() if sys.platform == "linux" else multiprocessing.get_context("spawn")
    environment = dict(os.environ)
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_take_environment, initargs=(environment,)
    )


def start_workers_early(workers: int) -> None:
    """Start the fork server :func:`default_executor`'s workers come from, now, without waiting for it.

    The server imports the scan's modules (about half a second) before it can fork the first
    worker; a scan starts it when its listing finds the first asset to read, so that the import
    overlaps the rest of the listing instead of delaying the first image. Does nothing for one
    worker or off Linux; a pool made later uses the running server.
    """
    if workers > 1 and sys.platform == "linux":
        _fork_server()
        forkserver.ensure_running()


def _fork_server() -> BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(worker_preload())  # used when the server starts: the first pool only
    return context


def worker_preload() -> list[str]:
    """The modules the fork server imports once for every worker: the program's main module (as a spawned
    worker imports it), this module (the jobs' code) and the built-in plugins' modules.

    A vendor's plugin is imported in each worker, as before: its import might start threads, which
    a fork must not copy. Registration is unchanged: each worker still loads every plugin through
    the ``dam_dedupe`` entry points; the server has only imported modules.
    """
    built_in = [ep.module for ep in entry_points(group=PROJECT_NAME) if ep.module.startswith(f"{PROJECT_NAME}.")]
    return ["__main__", __name__, *built_in]


def _take_environment(environment: dict[str, str]) -> None:
    """Give a worker the scan's environment (a forked worker would have the fork server's, from when it started)."""
    os.environ.clear()
    os.environ.update(environment)


DEFAULT_EXCLUDES = ("_dam-dedupe-quarantine/*",)
"""Keys never scanned: the quarantine action's default area (its copies are not duplicates to report)."""


def excludes(config: Config, spec: SourceSpec) -> tuple[str, ...]:
    """Key patterns (``fnmatch``, ``*`` crosses ``/``) a source's scan leaves out.

    The defaults, then ``[scan] exclude`` for every source, then the source's own ``exclude`` option.
    """
    common = config.sections.get("scan", {}).get("exclude", [])
    own = spec.option("exclude", [])
    return (*DEFAULT_EXCLUDES, *common, *(own if isinstance(own, list) else [own]))


# -- the job a worker runs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobResult:
    """What reading one asset found: a fingerprint, or the content state and reason."""

    asset_id: int
    fingerprint: Fingerprint | None = None
    content: str = "image"
    error: str | None = None
    retry: bool = False
    analyses: dict[str, Analysis] = field(default_factory=dict)  # analysis: results by analyser name
    parts: tuple[PartResult, ...] = ()  # formats: the images read from a document (content "document")
    part_analyses: dict[str, dict[str, Analysis]] = field(default_factory=dict)  # formats: by part name


class _HeadKeeper:
    """Passes a stream's reads through, keeping its first ``limit`` bytes (to recognise a redirect stub)."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.head = bytearray()

    def read(self, n: int = -1) -> bytes:
        """Read as the stream does, keeping what falls within the first ``limit`` bytes."""
        data = self.stream.read(n)
        if len(self.head) < self.limit:
            self.head += data[: self.limit - len(self.head)]
        return data


_process_adapters: dict[SourceSpec, SourceAdapter] = {}
_process_host: dict[str, Host] = {}  # analysis: the worker process's plugins, loaded once
_process_shared: dict[str, SharedResults] = {}  # analysis: the worker process's results by content, for one scan


class FingerprintJob:
    """Reads and fingerprints assets of one source; the callable sent to the executor.

    In this process it uses the scan's own adapter. Pickled to a worker process, it
    carries only the :class:`SourceSpec`, and the worker builds its adapter from the
    installed plugins once and keeps it for later jobs.

    With ``analysis`` (the ``[analysis]`` options of ``dam-dedupe.toml``), the installed
    analysers look at each decoded image too, once per content: ``shared`` (the scan's)
    holds their results by SHA-256, and a worker process keeps its own for scan ``scan``.
    """

    def __init__(
        self,
        spec: SourceSpec,
        adapter: SourceAdapter | None = None,
        analysis: dict[str, Any] | None = None,
        host: Host | None = None,
        shared: SharedResults | None = None,
        scan: str = "",
    ) -> None:
        self.spec = spec
        self._adapter = adapter
        self.analysis = analysis
        self._host = host
        self._shared = shared
        self.scan = scan

    def __getstate__(self) -> dict[str, object]:
        state = {"spec": self.spec, "analysis": self.analysis, "scan": self.scan}
        return {**state, "_adapter": None, "_host": None, "_shared": None}

    def host(self) -> Host:
        """The plugins to analyse with: the scan's own, or this worker process's."""
        if self._host is None:
            if "host" not in _process_host:
                _process_host["host"] = Host()
            self._host = _process_host["host"]
        return self._host

    def shared(self) -> SharedResults:
        """Analyser results by content: the scan's own, or this worker process's for this scan."""
        if self._shared is None:
            if self.scan not in _process_shared:
                _process_shared.clear()  # a worker process serves one scan at a time
                _process_shared[self.scan] = SharedResults()
            self._shared = _process_shared[self.scan]
        return self._shared

    def adapter(self) -> SourceAdapter:
        """The adapter to read with: the scan's own, or this worker process's."""
        if self._adapter is None:
            if self.spec not in _process_adapters:
                _process_adapters[self.spec] = Host().open_source(self.spec)
            self._adapter = _process_adapters[self.spec]
        return self._adapter

    def list_shard(self, shard: str) -> list[AssetRecord | ListingProblem]:
        """One shard of the source's listing, listed here (on a cluster's worker: from the store directly)."""
        return list(self.adapter().list_shard(shard))

    def __call__(self, asset_id: int, record: AssetRecord) -> JobResult:
        """Read and fingerprint one asset; never raises for a problem with the asset."""
        if (extractor := extractor_for(record.name)) is not None:
            return self._read_document(asset_id, record, extractor)
        named_as_image = has_image_extension(record.name) or has_decoder_extension(record.name)
        if record.size > MAX_STUB_SIZE and not named_as_image:
            try:
                with self.adapter().open(record) as head_stream:
                    head = head_stream.read(HEAD_BYTES)
            except AssetGone as exc:
                return JobResult(asset_id, content="error", error=f"gone since it was listed: {exc}", retry=True)
            except DamDedupeError as exc:
                return JobResult(asset_id, content="error", error=f"cannot open: {exc}", retry=True)
            if not may_be_image(head):
                return JobResult(asset_id, content="skipped")  # not read further: no decoder knows its first bytes
        try:
            stream = self.adapter().open(record)
        except AssetGone as exc:
            return JobResult(asset_id, content="error", error=f"gone since it was listed: {exc}", retry=True)
        except DamDedupeError as exc:
            return JobResult(asset_id, content="error", error=f"cannot open: {exc}", retry=True)
        analyses: dict[str, Analysis] = {}

        def analyse(image: Image.Image, sha256: str) -> None:
            if self.analysis is not None:
                analyses.update(self.shared().analyse(self.host().pm, record, image, self.analysis, sha256))

        kept = _HeadKeeper(stream, MAX_STUB_SIZE + 1)
        try:
            with stream:
                fingerprint = fingerprint_stream(cast(IO[bytes], kept), analyse, name=record.name)
        except NotAnImage as exc:
            if (target := redirect_target(bytes(kept.head))) is not None:
                # the redirect action's stub in place of a duplicate: not an image, and no mistake either
                return JobResult(asset_id, content="skipped", error=f"redirect stub pointing to {target}")
            if has_image_extension(record.name):
                return JobResult(asset_id, content="not_image", error=f"named as an image but {exc}")
            return JobResult(asset_id, content="skipped")
        except AssetGone as exc:
            return JobResult(asset_id, content="error", error=f"gone while being read: {exc}", retry=True)
        except AssetError as exc:
            return JobResult(asset_id, content="error", error=str(exc))
        except MissingExtra as exc:  # formats: read again by the next scan, once the extra is installed
            return JobResult(asset_id, content="error", error=f"not decoded: {exc}", retry=True)
        except Exception as exc:  # an adapter's stream failing mid-read: record against the asset, retry next scan
            return JobResult(asset_id, content="error", error=f"read failed: {type(exc).__name__}: {exc}", retry=True)
        return JobResult(asset_id, fingerprint, analyses=analyses)

    def read_all(self, assets: list[tuple[int, AssetRecord]]) -> list[JobResult]:
        """Read and fingerprint each (asset id, record), in order: one job of several assets, for an
        executor whose every job costs a round trip (a cluster's scheduler)."""
        return [self(asset_id, record) for asset_id, record in assets]

    def _read_document(self, asset_id: int, record: AssetRecord, extractor: type[Extractor]) -> JobResult:
        """Read a document once and fingerprint the images inside it (formats: :mod:`dam_dedupe.containers`)."""
        by_part: dict[str, dict[str, Analysis]] = {}

        def analyse(part: str, image: Image.Image, sha256: str) -> None:
            if self.analysis is not None:
                found = self.shared().analyse(self.host().pm, record, image, self.analysis, sha256)
                by_part.setdefault(part, {}).update(found)

        try:
            with self.adapter().open(record) as stream:
                found = read_document(extractor, stream, analyse)
        except MissingExtra as exc:
            return JobResult(asset_id, content="error", error=f"images inside not read: {exc}", retry=True)
        except DocumentError as exc:  # final until the document changes: the images it held are not known now
            return JobResult(asset_id, content="document_error", error=str(exc))
        except AssetGone as exc:
            return JobResult(asset_id, content="error", error=f"gone while being read: {exc}", retry=True)
        except DamDedupeError as exc:
            return JobResult(asset_id, content="error", error=f"cannot read: {exc}", retry=True)
        except Exception as exc:  # a plugin's or a stream's failure: recorded against the document
            where = type(exc).__name__
            return JobResult(asset_id, content="error", error=f"document read failed: {where}: {exc}", retry=True)
        return JobResult(asset_id, content="document", error=found.note, parts=found.parts, part_analyses=by_part)


def may_be_image(head: bytes) -> bool:
    """Whether a file's first bytes are those of a format a registered decoder recognises.

    Uses each Pillow decoder's own signature check (plugins such as pillow-heif register
    theirs); the few formats without a signature (TGA, …) are found only by their extension.
    """
    Image.init()
    return any(accept is not None and accept(head) for _factory, accept in Image.OPEN.values())


# -- the scan ----------------------------------------------------------------------------------


class Scan:
    """One scan run over some sources; :func:`run_scan` is the way to use it."""

    def __init__(
        self,
        catalog: Catalog,
        host: Host,
        config: Config,
        workers: int,
        executor_factory: ExecutorFactory,
        progress: Progress | None,
        reread: bool = False,
        listing: ListingProgress | None = None,
        batch: int = 1,
        shard_listing: bool = False,
    ) -> None:
        self.catalog = catalog
        self.batch = batch
        self.shard_listing = shard_listing
        self.reread = reread
        self.host = host
        self.config = config
        self.workers = workers
        self.executor_factory = executor_factory
        self.progress = progress
        self.listing = listing
        self.counts = RunCounts()
        self._cursor: DeltaCursor | None = None
        self._excludes: tuple[str, ...] = ()
        self.failed_sources: list[str] = []
        self._scanned: set[int] = set()
        self._listing_problems = 0
        self._results: list[JobResult] = []
        self._last_commit = time.monotonic()
        self._done = 0
        self.run_id = 0  # formats: the run that records documents' images
        self._documents_seen = False  # formats: whether any source listed a document this run
        self._work_seen = False  # whether a listing has found an asset to read yet
        # analysis: the [analysis] options when an analyser will run, else None
        options = dict(config.sections.get("analysis", {}))
        self.analysis: dict[str, Any] | None = options if analysers_enabled(host.pm, options) else None
        if self.analysis is not None:
            warn_unavailable(host.pm, options)
        self.shared = SharedResults()  # analysis: byte-identical copies analysed once
        self.token = uuid.uuid4().hex  # analysis: names this scan to worker processes' SharedResults

    def run(self, specs: list[SourceSpec], run_id: int) -> None:
        """List every source into the catalog first, then fingerprint what needs reading.

        Listing all sources before reading any lets store hashes be compared across sources.
        """
        opened: list[tuple[SourceAdapter, SourceSpec, int]] = []
        self.run_id = run_id
        self._scanned = {self.catalog.source_id(spec) for spec in specs}
        try:
            for spec in specs:
                source_id = self.catalog.source_id(spec)
                self.catalog.clear_problems(source_id)
                if self.reread:
                    log.info("%s: %d images will be read again", spec.label, self.catalog.renew_images(source_id))
                elif renewed := self.catalog.renew_fingerprints_older_than(FINGERPRINT_VERSION, source_id):
                    log.info("%s: %d fingerprints of an older kind will be made again", spec.label, renewed)
                try:
                    adapter = self.host.open_source(spec)
                except DamDedupeError as exc:
                    self._problem(run_id, source_id, spec.uri, str(exc))
                    self.failed_sources.append(spec.uri)
                    continue
                opened.append((adapter, spec, source_id))
                self._cursor = None
                self._excludes = excludes(self.config, spec)
                self._list(adapter, spec, source_id, run_id)
            for adapter, spec, source_id in opened:
                job = FingerprintJob(spec, adapter, self.analysis, self.host, self.shared, self.token)
                self._fingerprint(job, source_id)
        finally:
            for adapter, _spec, _source_id in opened:
                adapter.close()

    def _problem(self, run_id: int, source_id: int, uri: str, reason: str) -> None:
        log.warning("%s: %s", uri, reason)
        self.catalog.add_problem(run_id, source_id, uri, reason)
        self.counts.errors += 1

    def _list(self, adapter: SourceAdapter, spec: SourceSpec, source_id: int, run_id: int) -> None:
        items: Iterable[AssetRecord | ListingProblem | Removed | DeltaCursor]
        if adapter.supports_changes:
            items = adapter.list_changes(self.catalog.cursor(source_id))
        else:
            items = self._listed(adapter, spec)
        iterator = iter(items)
        batch: list[AssetRecord | ListingProblem | Removed | DeltaCursor] = []
        complete = True
        self._listing_problems = 0
        before = self.counts.listed
        while True:
            try:
                batch.append(next(iterator))
            except StopIteration:
                break
            except DamDedupeError as exc:
                self._problem(run_id, source_id, spec.uri, f"listing stopped: {exc}")
                complete = False
                break
            except Exception as exc:  # a plugin's bug: attribute it, keep what was listed, go on
                where = type(adapter).__module__
                self._problem(run_id, source_id, spec.uri, f"listing failed in {where}: {type(exc).__name__}: {exc}")
                complete = False
                break
            if len(batch) >= COMMIT_EVERY:
                self._record_listing(batch, source_id, run_id)
                batch = []
                if self.listing:
                    self.listing(spec.label, self.counts.listed - before, False)
        self._record_listing(batch, source_id, run_id)
        if self.listing:
            self.listing(spec.label, self.counts.listed - before, True)
        with self.catalog.transaction():
            self.catalog.follow_documents(source_id, run_id)  # formats: images inside documents
        if not complete or self._listing_problems:
            self.failed_sources.append(spec.uri)
        cursor = self._cursor
        if complete and not self._listing_problems and (cursor is None or cursor.full):
            # only a complete listing may say what is gone: a folder it could not list, or a store
            # that vanished mid-scan, would otherwise make present assets look gone
            self.counts.gone += self.catalog.mark_unseen_gone(source_id, run_id)
        elif (cursor is None or cursor.full) and (kept := self.catalog.unseen_count(source_id, run_id)):
            why = (
                "its listing stopped" if not complete else f"{self._listing_problems} part(s) of it could not be listed"
            )
            reason = f"{kept} assets not listed by this scan were kept, not marked gone: {why}"
            log.warning("%s: %s", spec.label, reason)
            self.catalog.add_problem(run_id, source_id, spec.uri, reason)
        if complete and not self._listing_problems and cursor is not None:
            # a part that could not be listed is in no later delta round unless it changes: keep the
            # last good cursor, so the next scan lists these changes again
            self.catalog.set_cursor(source_id, cursor.value)

    def _listed(self, adapter: SourceAdapter, spec: SourceSpec) -> Iterator[AssetRecord | ListingProblem]:
        """The source's listing: a shard a task on the executor's workers where the scan lists there
        (``shard_listing``) and the source splits (:meth:`SourceAdapter.listing_shards`), else here.

        Shards are taken in their order, so the catalog records them as one listing would. A shard
        whose task fails is a listing problem: the listing is then incomplete and marks nothing gone.
        """
        shards = adapter.listing_shards() if self.shard_listing else None
        if shards is None or len(shards) < 2:
            yield from adapter.list_assets()
            return
        job = FingerprintJob(spec, adapter, self.analysis, self.host, self.shared, self.token)
        executor = self.executor_factory(self.workers)
        try:
            tasks = [executor.submit(job.list_shard, shard) for shard in shards]
            for shard, task in zip(shards, tasks, strict=True):
                try:
                    yield from task.result()
                except Exception as exc:  # the store refused the shard, or its worker was lost
                    reason = str(exc) if isinstance(exc, DamDedupeError) else f"{type(exc).__name__}: {exc}"
                    yield ListingProblem(spec.uri, f"the listing of shard {shard!r} failed on the cluster: {reason}")
        finally:
            # Every task's answer has been taken: nothing to wait for (waiting hung once in CI after a
            # KilledWorker, on a cluster whose workers had all died).
            executor.shutdown(wait=False)

    def _excluded(self, key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, pattern) for pattern in self._excludes)

    def _record_listing(
        self, batch: list[AssetRecord | ListingProblem | Removed | DeltaCursor], source_id: int, run_id: int
    ) -> None:
        """Record a batch of the listing in one transaction, in its order (a delta's deletion and a later
        re-creation of the same key), each run of records in a few statements."""
        with self.catalog.transaction():
            records: list[AssetRecord] = []
            for item in batch:
                if isinstance(item, AssetRecord):
                    if not self._excluded(item.key):
                        records.append(item)
                    continue
                self._record_assets(records, source_id, run_id)
                records = []
                if isinstance(item, ListingProblem):
                    self._listing_problems += 1
                    self._problem(run_id, source_id, item.uri, item.reason)
                elif isinstance(item, Removed):
                    self.counts.gone += self.catalog.mark_removed(source_id, item.key, run_id)
                elif isinstance(item, DeltaCursor):
                    self._cursor = item
            self._record_assets(records, source_id, run_id)

    def _record_assets(self, records: list[AssetRecord], source_id: int, run_id: int) -> None:
        if not records:
            return
        for record, listed in zip(
            records, self.catalog.record_listing(source_id, records, run_id, self._scanned), strict=True
        ):
            if listed.same_as is not None:
                # one object under a second name (a bind mount, a link, an overlapping source):
                # never a second asset, which could be taken for its own duplicate
                log.info("%s: same file as %s; recorded once", record.uri, listed.same_as)
                self.catalog.add_problem(run_id, source_id, record.uri, f"same file as {listed.same_as}; recorded once")
                continue
            self.counts.listed += 1
            self._documents_seen = self._documents_seen or extractor_for(record.name) is not None
            if not listed.must_read:
                self.counts.unchanged += 1
            elif not self._work_seen:
                self._first_work()

    def _first_work(self) -> None:
        # The first asset to read: the default pool's fork server starts now, while the listing goes on,
        # rather than at the first image. A rescan that finds nothing changed never starts it.
        self._work_seen = True
        if self.executor_factory is default_executor:
            start_workers_early(self.workers)

    def _to_read(self, source_id: int) -> Iterator[CatalogAsset]:
        """Pending assets worth reading, page by page; the rest are marked skipped without a read."""
        # formats: a file's bytes may equal an image inside a document, which has no store hash to compare
        exact_only = not self.config.matching.perceptual and not self._documents_seen
        shared, mixed_sizes = self.catalog.unconfirmable_by_store_hash() if exact_only else (set(), set())
        after = 0
        while page := self.catalog.pending(source_id, after, PAGE):
            after = page[-1].id
            chosen: list[CatalogAsset] = []
            skipped: list[int] = []
            with self.catalog.transaction():
                for asset in page:
                    record = asset.record
                    document = extractor_for(record.name) is not None
                    if (not worth_reading(record.name) and not document) or (
                        record.size == 0 and not has_image_extension(record.name)
                    ):
                        skipped.append(asset.id)
                        self.counts.skipped += 1
                    elif (
                        exact_only
                        and not document  # formats: the images inside are not the document's bytes
                        and record.store_hash
                        and (record.store_hash, record.size) not in shared
                        and record.size not in mixed_sizes
                    ):
                        # exact matching only, and no asset of its size has this store hash (all comparable):
                        # it cannot be a copy
                        self.counts.skipped += 1
                    else:
                        chosen.append(asset)
                self.catalog.mark_skipped(skipped)
            yield from chosen

    def _fingerprint(self, job: FingerprintJob, source_id: int) -> None:
        total = self.catalog.pending_count(source_id)
        if not total:
            return
        self._done, self._results, self._last_commit = 0, [], time.monotonic()
        queue = self._to_read(source_id)
        while suspects := self._read(job, queue, total, max(4, self.workers * 4), self.batch):
            # a worker process died (the kernel killed it: out of memory, say) and the pool with every
            # job in flight, or a cluster gave up on a job whose workers kept dying; read those again
            # one at a time, alone in the executor, to find which (a job beside it could die with it)
            alone = iter(suspects)
            while culprit := self._read(job, alone, total, 1, 1):
                self._worker_died(culprit[0])
        self._store(self._results)
        self._results = []

    def _read(
        self, job: FingerprintJob, assets: Iterator[CatalogAsset], total: int, limit: int, batch: int
    ) -> list[CatalogAsset]:
        """Read ``assets`` in one executor, ``batch`` a job with at most ``limit`` jobs in flight, until they
        run out or the executor breaks.

        Returns the assets to read again one at a time (empty when every asset was read): those in
        flight when it broke, and those of a job of several that failed without breaking it (Dask's
        ``KilledWorker``: one of them may kill every worker that reads it).
        """
        in_flight: dict[Future[list[JobResult]], list[CatalogAsset]] = {}
        broken: list[CatalogAsset] = []
        suspects: list[CatalogAsset] = []
        with self.executor_factory(self.workers) as executor:
            while True:
                while not broken and len(in_flight) < limit and (chunk := list(itertools.islice(assets, batch))):
                    try:
                        in_flight[executor.submit(job.read_all, [(a.id, a.record) for a in chunk])] = chunk
                    except BrokenExecutor:
                        broken += chunk
                if not in_flight:
                    break
                # once broken, every job in flight fails soon: wait for them all
                finished, _running = wait(in_flight, return_when=ALL_COMPLETED if broken else FIRST_COMPLETED)
                for future in finished:
                    chunk = in_flight.pop(future)
                    if future.cancelled():
                        self._executor_lost(chunk[0])
                    failure = future.exception()
                    if isinstance(failure, BrokenExecutor):
                        broken += chunk
                    elif failure is None:
                        self._results += future.result()
                        self._done += len(chunk)
                    elif len(chunk) > 1:
                        suspects += chunk
                    else:
                        # a job never raises for its asset: its worker failed (Dask's KilledWorker after
                        # the task's workers died again and again), and the scan goes on
                        self._worker_died(chunk[0], f"{type(failure).__name__}: {failure}")
                        self._done += 1
                if self.progress:
                    self.progress(job.spec.label, self._done, total)
                if len(self._results) >= COMMIT_EVERY or time.monotonic() - self._last_commit > COMMIT_SECONDS:
                    self._store(self._results)
                    self._results, self._last_commit = [], time.monotonic()
        return broken + suspects

    def _executor_lost(self, asset: CatalogAsset) -> None:
        """Stop the scan when the executor cancelled a job (a cluster's scheduler went away), keeping what was read."""
        self._store(self._results)
        self._results = []
        raise DamDedupeError(
            f"the executor cancelled the job reading {asset.record.uri} (was the Dask scheduler lost, "
            "or its cluster left without workers?); "
            f"the {self.counts.fingerprinted} images read so far are stored, and the next scan reads the rest"
        )

    def _worker_died(self, asset: CatalogAsset, detail: str = "") -> None:
        """Record a worker killed while reading ``asset`` (alone, or as the executor reported: ``detail``);
        later scans read it again a bounded number of times."""
        with self.catalog.transaction():
            crashes = self.catalog.record_worker_crash(asset.id)
            final = crashes >= MAX_WORKER_CRASHES
            cause = detail or "out of memory?"
            reason = f"the worker process reading it was killed ({crashes} of {MAX_WORKER_CRASHES} tries; {cause})"
            reason += "; not read again until it changes" if final else "; read again by the next scan"
            self.catalog.set_content(asset.id, "error", reason, retry=not final)
        log.warning("%s: %s", asset.record.uri, reason)
        self.counts.errors += 1

    def _store(self, results: list[JobResult]) -> None:
        with self.catalog.transaction():
            for result in results:
                if result.fingerprint is not None:
                    self.catalog.store_fingerprint(result.asset_id, result.fingerprint)
                    self.catalog.store_analyses(result.asset_id, result.fingerprint.sha256, result.analyses)
                    if result.fingerprint.frames > 1:
                        self.catalog.store_frames(result.asset_id, result.fingerprint.frames)
                    self.counts.fingerprinted += 1
                elif result.content == "document":
                    self._store_document(result)
                elif result.content == "document_error":
                    self.catalog.record_parts(result.asset_id, self.run_id, [])  # formats: its images are gone
                    self.catalog.set_content(result.asset_id, "error", result.error)
                    self.counts.errors += 1
                else:
                    self.catalog.set_content(result.asset_id, result.content, result.error, result.retry)
                    if result.content == "skipped":
                        self.counts.skipped += 1
                    else:
                        self.counts.errors += 1

    def _store_document(self, result: JobResult) -> None:
        """Record a document's images as assets of their own, each fingerprinted or with its error (formats)."""
        ids = self.catalog.record_parts(result.asset_id, self.run_id, [(p.name, p.size) for p in result.parts])
        for asset_id, part in zip(ids, result.parts, strict=True):
            if part.fingerprint is not None:
                self.catalog.store_fingerprint(asset_id, part.fingerprint)
                analyses = result.part_analyses.get(part.name, {})
                self.catalog.store_analyses(asset_id, part.fingerprint.sha256, analyses)
                self.counts.fingerprinted += 1
            elif part.content == "skipped":  # a part no decoder knows: noted, not an error
                self.catalog.set_content(asset_id, "skipped", part.error)
                self.counts.skipped += 1
            else:
                self.catalog.set_content(asset_id, "error", part.error)
                self.counts.errors += 1
        note = result.error or f"a document holding {len(ids)} image(s), each scanned as an asset of its own"
        self.catalog.set_content(result.asset_id, "skipped", note)
        self.counts.skipped += 1


def run_scan(
    specs: list[SourceSpec],
    catalog: Catalog,
    host: Host,
    config: Config | None = None,
    workers: int | None = None,
    executor_factory: ExecutorFactory = default_executor,
    progress: Progress | None = None,
    reread: bool = False,
    matching: MatchProgress | None = None,
    listing: ListingProgress | None = None,
    batch: int = 1,
    index: IndexFactory = CandidateIndex,
    shard_listing: bool = False,
    verifier: Verifier | None = None,
) -> ScanSummary:
    """Scan ``specs`` into ``catalog``, then match every present image and store the clusters.

    Args:
        specs: the sources to scan.
        catalog: where listings, fingerprints and clusters are kept.
        host: the loaded plugins.
        config: policy and matching settings (defaults when ``None``).
        workers: fingerprinting workers (default: ``config.workers``).
        executor_factory: builds the executor for ``workers`` (the seam for a distributed engine).
        progress: told of fingerprinting progress.
        reread: read every present image of ``specs`` again, changed or not (so that an
            analyser installed since sees them all).
        matching: told of the match stage's progress (see :data:`~dam_dedupe.clustering.MatchProgress`).
        listing: told how many assets each source's listing has found so far.
        batch: assets read by one job: 1 for a local pool (a worker that dies is known at once), more
            for a cluster, where each job costs a round trip to its scheduler.
        index: builds the matcher's candidate index (see :func:`~dam_dedupe.clustering.build_clusters`).
        shard_listing: list sources that split into shards on the executor's workers, a shard a task
            (for a cluster, whose workers reach the store directly).
        verifier: verifies the matcher's candidate pairs elsewhere (see :func:`~dam_dedupe.clustering.build_clusters`).

    Returns the run's :class:`~dam_dedupe.records.ScanSummary`, also passed to
    ``dam_dedupe_scan_finished`` listeners.
    """
    config = config or Config()
    scan = Scan(
        catalog,
        host,
        config,
        workers or config.workers or os.cpu_count() or 1,
        executor_factory,
        progress,
        reread,
        listing,
        batch,
        shard_listing,
    )
    with catalog.scan_lock([spec.uri for spec in specs]):
        run_id = catalog.begin_run([spec.uri for spec in specs])
        status = "interrupted"
        try:
            scan.run(specs, run_id)
            build_clusters(catalog, config, host, matching, index, verifier)
            status = "finished"
        finally:
            catalog.finish_run(run_id, scan.counts, status)
    c = scan.counts
    summary = ScanSummary(
        run_id,
        tuple(s.uri for s in specs),
        c.listed,
        c.fingerprinted,
        c.unchanged,
        c.gone,
        c.errors,
        c.skipped,
        tuple(scan.failed_sources),
    )
    host.hook.dam_dedupe_scan_finished(summary=summary)
    return summary
