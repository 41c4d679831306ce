"""The catalog's storage interface and the rows it hands back.

The scan, the report and the governance workflow talk to the catalog only through
:class:`Catalog`, so a server database can replace the embedded SQLite file without
touching adapters or the matcher.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from dam_dedupe.analysis import Analysis
from dam_dedupe.records import AssetRecord, Fingerprint, SourceSpec

DecisionKind = Literal["exclude", "keep_all", "not_duplicates", "exclude_member", "canonical"]
"""A reviewer's decision on a cluster: leave it out of plans (``exclude``), keep every copy
(``keep_all``), say its members are not copies (``not_duplicates``), leave one member out
(``exclude_member``), or make one member canonical (``canonical``)."""


@dataclass(frozen=True, slots=True)
class AssetState:
    """Where an asset stands in the catalog.

    Attributes:
        presence: ``present`` or ``gone`` (listed before, missing now; never silently dropped).
        content: ``pending`` (not read yet), ``image``, ``not_image``, ``skipped`` (not read:
            its name says it is no image) or ``error``.
        error: the reason, for ``error`` and ``not_image``.
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


class Catalog(Protocol):
    """What the scan, report and governance workflow need of a catalog."""

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes into one atomic, durable batch."""

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

    def mark_removed(self, source_id: int, key: str, run_id: int) -> int:
        """Mark one asset gone; return 1 if it was present."""

    def mark_unseen_gone(self, source_id: int, run_id: int) -> int:
        """After a complete listing, mark every present asset it did not list as gone."""

    def add_problem(self, run_id: int, source_id: int, uri: str, reason: str) -> None:
        """Record something the run could not list or read, outside any one asset."""

    def pending(self, source_id: int, after_id: int = 0, limit: int = 1000) -> list[CatalogAsset]:
        """A page of present assets of a source still waiting to be read: ids above ``after_id``, in id order."""

    def pending_count(self, source_id: int) -> int:
        """How many present assets of a source wait to be read."""

    def unconfirmable_by_store_hash(self) -> tuple[set[tuple[str, int]], set[int]]:
        """Shared (store hash, size) pairs, and sizes whose assets' store hashes cannot be compared."""

    def set_content(self, asset_id: int, content: str, error: str | None = None, retry: bool = False) -> None:
        """Record what reading an asset found when it gave no fingerprint."""

    def store_fingerprint(self, asset_id: int, fp: Fingerprint) -> None:
        """Store an asset's fingerprint and mark it an image."""

    def images(self) -> list[CatalogAsset]:
        """Every present, fingerprinted image."""

    def asset_by_uri(self, uri: str) -> CatalogAsset | None:
        """The asset with this URI, or ``None``."""

    def assets_by_id(self, ids: Iterable[int]) -> dict[int, CatalogAsset]:
        """Assets by id."""

    def replace_clusters(self, clusters: Iterable[StoredCluster]) -> None:
        """Replace every stored cluster with these."""

    def clusters(self) -> list[StoredCluster]:
        """Every stored cluster, largest first."""

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
        """Every source the catalog has seen."""

    def close(self) -> None:
        """Release the catalog."""
