"""The catalog's storage interface and the rows it hands back.

The scan, the report and the governance workflow talk to the catalog only through
:class:`Catalog`, so a server database can replace the embedded SQLite file without
touching adapters or the matcher.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from dam_dedupe.analysis import Analysis
from dam_dedupe.records import AssetRecord, Fingerprint, SourceSpec

DecisionKind = Literal["exclude", "keep_all", "not_duplicates", "exclude_member", "canonical"]
"""A reviewer's decision on a cluster: leave it out of plans (``exclude``), keep every copy
(``keep_all``), say its members are not copies (``not_duplicates``), leave one member out
(``exclude_member``), or make one member canonical (``canonical``)."""


class Listed(NamedTuple):
    """What recording one listed asset found: whether it must be read, or, when it was not recorded,
    the URI of the other asset that is the same store object."""

    must_read: bool
    same_as: str | None = None


@dataclass(frozen=True, slots=True)
class SourceOverview:
    """One source as ``dam-dedupe sources`` lists it.

    Attributes:
        uri: the source's URI.
        name: its configured name, or empty.
        present: assets listed by its latest scan.
        gone: assets seen once and missing now (or forgotten).
        last_scanned: when a scan last listed it, ISO 8601 UTC, or ``None``.
        forgotten: when an admin forgot it, or ``None`` while it is in use.
    """

    uri: str
    name: str
    present: int
    gone: int
    last_scanned: str | None
    forgotten: str | None


@dataclass(frozen=True, slots=True)
class AssetState:
    """Where an asset stands in the catalog.

    Attributes:
        presence: ``present`` or ``gone`` (listed before, missing now; never silently dropped).
        content: ``pending`` (not read yet), ``image``, ``not_image``, ``skipped`` (not read:
            its name says it is no image; or read and found to be a redirect stub) or ``error``.
        error: the reason, for ``error`` and ``not_image``; for a skipped redirect stub, where it points.
    """

    presence: str
    content: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CatalogAsset:
    """An asset as the catalog holds it: its id, record, fingerprint and state."""

    id: int
    source_id: int
    record: AssetRecord
    fingerprint: Fingerprint | None
    state: AssetState


@dataclass(frozen=True, slots=True)
class CatalogProblem:
    """A current error: ``scope`` is ``asset`` (one asset failed) or ``listing`` (a folder, link or source)."""

    uri: str
    reason: str
    scope: str


@dataclass(slots=True)
class StoredCluster:
    """A cluster as stored: member asset ids with their match kind and evidence against the canonical."""

    id: str
    canonical_asset_id: int
    canonical_reason: str
    preset: str
    members: list[tuple[int, str, dict[str, object]]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """A reviewer's decision on a cluster, as the catalog keeps it.

    Attributes:
        cluster: the cluster id the reviewer saw.
        decision: what they decided.
        uri: the member concerned, for ``exclude_member`` and ``canonical``; else ``None``.
        members: the cluster's members when the decision was imported, as (URI, SHA-256)
            pairs. The decision stands while the cluster has exactly these members with
            this content, and lapses when a member changes, joins or leaves.
        decided_by: the reviewer's name from the exported file.
        decided_at: when they exported it (ISO 8601).
    """

    cluster: str
    decision: DecisionKind
    uri: str | None
    members: frozenset[tuple[str, str]]
    decided_by: str
    decided_at: str


@dataclass(slots=True)
class RunCounts:
    """Counters of one scan run."""

    listed: int = 0
    fingerprinted: int = 0
    unchanged: int = 0
    gone: int = 0
    errors: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class SignOff:
    """One person's approval of a plan, in one role (``it``, ``legal``, ``compliance``, …)."""

    plan_id: str
    signed_by: str
    role: str
    note: str
    at: str


@dataclass(frozen=True, slots=True)
class GovernanceRecords:
    """What the governance tables hold, which ``audit verify`` checks against the audit chain.

    Attributes:
        plans: every registered plan id.
        signoffs: every sign-off row.
        runs: every apply and undo run, as (run id, kind).
        steps: every journaled step outcome, as (run id, step index).
        guards: whether the triggers that make the audit log append-only are still in place.
    """

    plans: list[str]
    signoffs: list[SignOff]
    runs: list[tuple[str, str]]
    steps: list[tuple[str, int]]
    guards: bool


@dataclass(frozen=True, slots=True)
class ActionRun:
    """One ``apply`` or ``undo`` of a plan.

    Attributes:
        id: the run id users name (``dam-dedupe undo RUN_ID``).
        plan_id: the plan it carries out.
        kind: ``apply`` or ``undo``.
        undoes: for an undo, the apply run it reverses; else ``None``.
        started, started_by: when and by whom.
        finished: when every step was done, or ``None`` while running or after a crash.
        status: ``running`` or ``finished``.
    """

    id: str
    plan_id: str
    kind: str
    undoes: str | None
    started: str
    started_by: str
    finished: str | None
    status: str


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A step's *before* (about to act, with what undo needs) or *after* (done, with its outcome)."""

    run_id: str
    step: int
    phase: str
    outcome: str
    detail: dict[str, object]
    at: str


# -- the DAM integration service (dam_dedupe.service) ------------------------------------


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A bearer token of the service, as stored: only a hash of the token itself.

    Attributes:
        name: the name it was created under (unique).
        scopes: what it may do: ``check``, ``read``, ``plan``, ``ingest``.
        created, last_used, revoked: ISO 8601 UTC times, or ``None``.
    """

    name: str
    scopes: frozenset[str]
    created: str
    last_used: str | None
    revoked: str | None


@dataclass(frozen=True, slots=True)
class DamIngest:
    """A DAM asset version the service has catalogued (``POST /v1/ingest``): each is read once."""

    dam_asset_id: str
    version: str
    uri: str
    sha256: str | None
    ingested: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An outgoing webhook event that could not be delivered after every retry, kept to be resent by hand."""

    subscriber: str
    event: str
    body: str
    error: str
    attempts: int
    failed: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the chained audit log; ``hash`` covers every other field and ``prev_hash``."""

    seq: int
    at: str
    actor: str
    event: str
    plan_id: str
    run_id: str
    detail: dict[str, object]
    prev_hash: str
    hash: str


class Catalog(Protocol):
    """What the scan, report and governance workflow need of a catalog."""

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes into one atomic, durable batch."""

    def snapshot(self) -> AbstractContextManager[None]:
        """Read several queries from one consistent state (a plan's clusters, decisions and assets), whatever
        another process commits meanwhile. Reads only; not nested in :meth:`transaction`."""

    def source_id(self, spec: SourceSpec) -> int:
        """The id of a source, recorded on first use."""

    def cursor(self, source_id: int) -> str | None:
        """The stored change-listing cursor of a source."""

    def set_cursor(self, source_id: int, cursor: str | None) -> None:
        """Store a source's change-listing cursor."""

    def begin_run(self, sources: Sequence[str]) -> int:
        """Record the start of a scan; return its run id."""

    def finish_run(self, run_id: int, counts: RunCounts, status: str) -> None:
        """Record the end of a scan and its counts."""

    def record_listed(self, source_id: int, record: AssetRecord, run_id: int) -> bool:
        """Record a listed asset; return ``True`` if it must be read."""

    def record_listing(
        self, source_id: int, records: Sequence[AssetRecord], run_id: int, scanned: Collection[int]
    ) -> list[Listed]:
        """Record a batch of a source's listing, in order, as :meth:`record_listed` records each asset, in a
        few statements; a record naming the same store object as another present asset (by ``object_id``)
        is not recorded, and its outcome names that asset's URI.

        Another asset counts when listed under another name by this run, or held by a source this run
        (``scanned``: its source ids) does not scan; an asset this run has not seen yet in a source it
        scans may have been renamed.
        """

    def mark_removed(self, source_id: int, key: str, run_id: int) -> int:
        """Mark one asset gone; return 1 if it was present."""

    def mark_unseen_gone(self, source_id: int, run_id: int) -> int:
        """After a complete listing, mark every present asset it did not list as gone."""

    def unseen_count(self, source_id: int, run_id: int) -> int:
        """How many present assets of a source this run has not listed (what a complete listing would mark gone)."""

    def clear_problems(self, source_id: int) -> None:
        """Forget a source's recorded problems; a new scan of it records what is still wrong."""

    def add_problem(self, run_id: int, source_id: int, uri: str, reason: str) -> None:
        """Record something the run could not list or read, outside any one asset."""

    def pending(self, source_id: int, after_id: int = 0, limit: int = 1000) -> list[CatalogAsset]:
        """A page of present assets of a source still waiting to be read: ids above ``after_id``, in id order."""

    def pending_count(self, source_id: int) -> int:
        """How many present assets of a source wait to be read."""

    def unconfirmable_by_store_hash(self) -> tuple[set[tuple[str, int]], set[int]]:
        """Shared (store hash, size) pairs, and sizes whose assets' store hashes cannot be compared."""

    def renew_fingerprints_older_than(self, version: int, source_id: int) -> int:
        """Mark a source's present images whose fingerprint is older than ``version`` as waiting to be read."""

    def renew_images(self, source_id: int) -> int:
        """Mark all of a source's present images as waiting to be read (``dam-dedupe scan --reread``)."""

    def set_content(self, asset_id: int, content: str, error: str | None = None, retry: bool = False) -> None:
        """Record what reading an asset found when it gave no fingerprint."""

    def mark_skipped(self, asset_ids: Collection[int]) -> None:
        """Mark assets skipped without a read (their names say they are no image), in a few statements."""

    def record_worker_crash(self, asset_id: int) -> int:
        """Count a worker process that died reading this asset (reset when it changes); return the count."""

    def store_fingerprint(self, asset_id: int, fp: Fingerprint) -> None:
        """Store an asset's fingerprint and mark it an image."""

    def images(self, thumbnails: bool = True) -> list[CatalogAsset]:
        """Every present, fingerprinted image; without the fingerprints' thumbnails when
        ``thumbnails`` is false (:meth:`thumbnails` gives them when needed)."""

    def previews(self, asset_ids: Iterable[int]) -> dict[int, bytes]:
        """The stored colour previews of these assets, by asset id (those that have one)."""

    def images_streamed(self, chunk: int = 2000) -> Iterator[CatalogAsset]:
        """Every present, fingerprinted image without its thumbnail, one asset per URI (the first
        listed), in id order, read ``chunk`` at a time (for matching a library too large to hold)."""

    def thumbnails(self, asset_ids: Iterable[int]) -> dict[int, bytes]:
        """The stored thumbnails of these assets, by asset id."""

    def asset_by_uri(self, uri: str) -> CatalogAsset | None:
        """The asset with this URI, or ``None``."""

    def assets_by_id(self, ids: Iterable[int], thumbnails: bool = True) -> dict[int, CatalogAsset]:
        """Assets by id; without the fingerprints' thumbnails when ``thumbnails`` is false (as :meth:`images`)."""

    def replace_clusters(self, clusters: Iterable[StoredCluster]) -> None:
        """Replace every stored cluster with these."""

    def clusters(self) -> list[StoredCluster]:
        """Every stored cluster, largest first."""

    # Reads for matching a library too large to hold (see dam_dedupe.clustering).

    def fingerprints_streamed(self, chunk: int = 4096) -> Iterator[tuple[int, Fingerprint]]:
        """(asset id, fingerprint without its thumbnail) of the images :meth:`images_streamed`
        gives, in the same order, without their asset records."""

    def fingerprints_by_id(self, asset_ids: Iterable[int]) -> dict[int, Fingerprint]:
        """The whole fingerprints (thumbnails included) of these assets, by asset id (those that have one)."""

    def clusters_streamed(self) -> Iterator[StoredCluster]:
        """Every stored cluster, one at a time, in id order."""

    def problems(self) -> list[CatalogProblem]:
        """Current errors."""

    def store_analyses(self, asset_id: int, sha256: str, analyses: Mapping[str, Analysis]) -> None:
        """Replace an asset's analyser results with these, found on content ``sha256``."""

    def analyses(self) -> dict[int, dict[str, Analysis]]:
        """Analyser results of present images by asset id, then analyser name (current content only)."""

    def name_size_rows(self) -> list[tuple[str, int, str | None]]:
        """Every present image as (file name, size, id of the cluster it belongs to or ``None``)."""

    def replace_decisions(self, decisions: Sequence[ReviewDecision]) -> None:
        """Store decisions, replacing every earlier decision on the clusters they name."""

    def decisions(self) -> list[ReviewDecision]:
        """Every stored decision, oldest first."""

    def cluster_contents(self) -> dict[str, frozenset[tuple[str, str]]]:
        """Every stored cluster's members as (URI, SHA-256) pairs, by cluster id."""

    def standing_decisions(self) -> dict[str, list[ReviewDecision]]:
        """Decisions that still apply, by cluster id: the cluster has the same members with the same content."""

    def counts(self) -> dict[str, int]:
        """Totals over assets: ``assets``, ``images``, ``gone``, ``skipped``."""

    def sources(self) -> list[SourceSpec]:
        """Every source the catalog has seen and not been told to forget."""

    def source_overview(self) -> list[SourceOverview]:
        """Every source with its asset counts and state, forgotten ones included, for ``dam-dedupe sources``."""

    def forget_source(self, uri: str) -> int:
        """Leave a source out of matching and reports until it is scanned again; return how many assets it had.

        Its assets are marked gone (never deleted: the catalog still says what was there), its
        listing problems leave the report. The caller records the audit entry in the same transaction.
        """

    def scan_lock(self, sources: Sequence[str]) -> AbstractContextManager[None]:
        """Hold the lock that lets one scan at a time list these sources; raise ``DamDedupeError`` naming
        the holder if it is held. SQLite locks the whole file; PostgreSQL each source, so scans of
        different sources share one catalog.

        It must be released when the holding process dies, so a killed scan never blocks the next.
        """

    def match_lock(self) -> AbstractContextManager[None]:
        """Wait for, then hold, the lock under which clusters are read and replaced: one matcher at a time,
        so the matcher that starts last, having seen every committed fingerprint, stores the clusters.

        It must be released when the holding process dies.
        """

    # -- governance: plans, sign-offs, runs, journal, audit log --------------------------------

    def run_lock(self) -> AbstractContextManager[None]:
        """Hold the lock that lets one ``apply`` or ``undo`` run at a time; raise ``DamDedupeError`` if it is held.

        It must be released when the holding process dies, so an interrupted run can be resumed.
        """

    def save_plan(self, plan_id: str, action: str, created: str, created_by: str, body: str) -> None:
        """Register a plan (its canonical JSON body); registering the same id again changes nothing."""

    def plan_body(self, plan_id: str) -> str | None:
        """The registered body of a plan, or ``None`` if no plan with this id was made with this catalog."""

    def add_signoff(self, signoff: SignOff) -> None:
        """Record a sign-off against a registered plan."""

    def signoffs(self, plan_id: str) -> list[SignOff]:
        """Every sign-off of a plan, oldest first."""

    def governance_records(self) -> GovernanceRecords:
        """Everything the governance tables hold, for ``audit verify`` to check against the chain."""

    def begin_action_run(self, run: ActionRun) -> None:
        """Record the start of an apply or undo run."""

    def finish_action_run(self, run_id: str, finished: str) -> None:
        """Mark a run finished."""

    def action_runs(self, plan_id: str | None = None) -> list[ActionRun]:
        """Runs, oldest first; only those of ``plan_id`` when given."""

    def action_run(self, run_id: str) -> ActionRun | None:
        """One run, or ``None``."""

    def add_journal(self, entry: JournalEntry) -> None:
        """Append a step's *before* or *after*; a second entry for the same run, step and phase is refused."""

    def journal(self, run_id: str) -> list[JournalEntry]:
        """A run's journal, in the order written."""

    def last_audit_entry(self) -> AuditEntry | None:
        """The newest audit entry, whose hash the next one chains to."""

    def add_audit_entry(self, entry: AuditEntry) -> None:
        """Append an audit entry (the caller computed its chain hash)."""

    def audit_entries(self) -> list[AuditEntry]:
        """The whole audit log, oldest first."""

    # -- the DAM integration service --------------------------------------------------------

    def add_token(self, name: str, token_hash: str, scopes: Collection[str], created: str) -> None:
        """Store a new service token by the hash of its secret; a revoked token's name may be reused."""

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token whose secret hashes to ``token_hash`` (revoked or not), or ``None``."""

    def tokens(self) -> list[ApiToken]:
        """Every token, by name."""

    def revoke_token(self, name: str, when: str) -> bool:
        """Revoke a token at once; ``False`` if no token of that name is in force."""

    def touch_token(self, name: str, when: str) -> None:
        """Record when a token was last used."""

    def dam_ingest(self, dam_asset_id: str, version: str) -> DamIngest | None:
        """The record of a DAM asset version already ingested, or ``None``."""

    def record_dam_ingest(self, ingest: DamIngest) -> bool:
        """Record a DAM asset version as ingested; ``False`` if it already was (nothing is changed)."""

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Keep an outgoing webhook event that could not be delivered."""

    def dead_letters(self) -> list[DeadLetter]:
        """Every undelivered webhook event, oldest first."""

    def clusters_of(self, asset_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """For those of ``asset_ids`` in a cluster: (cluster id, the canonical's URI)."""

    def cluster_page(self, after: str, limit: int) -> list[StoredCluster]:
        """Up to ``limit`` stored clusters with ids after ``after``, in id order."""

    def cluster_by_id(self, cluster_id: str) -> StoredCluster | None:
        """One stored cluster with its members, or ``None``."""

    def assets_page(self, uri: str, after: int, limit: int) -> list[CatalogAsset]:
        """Up to ``limit`` assets with this URI (or under it, ending in ``/``) and ids after ``after``."""

    def change_marker(self) -> tuple[object, ...]:
        """A value that changes whenever the catalogued images or clusters change (cheap to ask often)."""

    # -- images inside documents (formats) ----------------------------------------------

    def record_parts(self, container_id: int, run_id: int, parts: Sequence[tuple[str, int]]) -> list[int]:
        """Record the images read from a document (part name, size) as assets; return their ids."""

    def follow_documents(self, source_id: int, run_id: int) -> None:
        """After a listing: give each document's images their document's presence."""

    def store_frames(self, asset_id: int, frames: int) -> None:
        """Record how many pages, frames or layers a fingerprinted file holds."""

    def embedded_images(self) -> dict[int, str]:
        """Every present image inside a document, by asset id, with its document's URI."""

    def close(self) -> None:
        """Release the catalog."""
