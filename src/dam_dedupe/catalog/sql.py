"""The catalog's queries, shared by its back ends (a SQLite file, a PostgreSQL database).

They are written in the SQL both speak: ``?`` placeholders, ``ON CONFLICT`` upserts,
``RETURNING``, ``COUNT(*) FILTER``. A back end opens the connection, owns transactions,
locks and the schema's migrations, and names the one expression that differs
(:attr:`SqlCatalog.HASH_ALGORITHM`).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from dam_dedupe.analysis import Analysis
from dam_dedupe.catalog.base import (
    ActionRun,
    ApiToken,
    AssetState,
    AuditEntry,
    CatalogAsset,
    CatalogProblem,
    DamIngest,
    DeadLetter,
    GovernanceRecords,
    JournalEntry,
    Listed,
    ReviewDecision,
    RunCounts,
    SignOff,
    SourceOverview,
    StoredCluster,
)
from dam_dedupe.errors import DamDedupeError
from dam_dedupe.records import EMBEDDED_IN, PART, AssetRecord, Fingerprint, SourceSpec

QUERY_CHUNK = 500
"""Ids per ``IN (...)`` query, well under SQLite's limit on bound parameters."""

AUDIT_GUARDS = frozenset({"audit_log_no_update", "audit_log_no_delete"})
"""The triggers that keep the audit log append-only; ``audit verify`` checks they are in place."""


class Row(Protocol):
    """A result row, read by position or by column name (as :class:`sqlite3.Row` is)."""

    def __getitem__(self, key: int | str) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...

    def keys(self) -> list[str]: ...


ObjectRow = Row | dict[str, Any]
"""An asset of a store object as :meth:`SqlCatalog._same_object` weighs it: stored, or recorded by this batch."""


class Cursor(Protocol):
    """What the queries need of a cursor."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the queries need of a connection: DB-API ``execute`` with ``?`` placeholders, in autocommit."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    def close(self) -> None: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _store_kind(source_uri: str) -> str:
    """The kind of store a source URI names (its scheme; plain paths are ``file``)."""
    return urlsplit(source_uri).scheme if "://" in source_uri else "file"


class SqlCatalog(ABC):
    """The :class:`~dam_dedupe.catalog.base.Catalog` over a SQL connection; a back end subclasses it."""

    HASH_ALGORITHM = ""
    """SQL naming the algorithm of ``store_hash`` (its text up to ``:``), which the two dialects spell differently."""

    conn: Connection
    location: str
    """Where the catalog is: a file's path, or a database's URL (which may hold a password: show it
    through :func:`dam_dedupe.catalog.display_location`)."""
    audit_anchor: Path | None
    """Where the audit chain's head is written after every committed entry (``[governance] audit_anchor``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.audit_anchor = None
        self._source_uris: dict[int, str] = {}
        self._new_head: AuditEntry | None = None

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Group writes into one atomic, durable batch."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """Read several queries from one consistent state of the catalog (a plan's clusters and their assets)."""

    @abstractmethod
    def scan_lock(self, sources: Sequence[str]) -> AbstractContextManager[None]:
        """Hold the lock that lets one scan at a time list these sources."""

    @abstractmethod
    def run_lock(self) -> AbstractContextManager[None]:
        """Hold the lock that lets one ``apply`` or ``undo`` run at a time on this catalog."""

    @abstractmethod
    def match_lock(self) -> AbstractContextManager[None]:
        """Hold the lock under which clusters are rebuilt: one matcher reads and replaces them at a time."""

    @abstractmethod
    def _trigger_names(self) -> set[str]:
        """The names of the triggers defined in the catalog."""

    def _committed(self) -> None:
        """After a commit: anchor the audit chain's new head, if one was written."""
        if self._new_head is not None:
            self._anchor(self._new_head)

    def _rolled_back(self) -> None:
        """After a rollback: the head written in it was never committed."""
        self._new_head = None

    def _anchor(self, head: AuditEntry) -> None:
        """Append the chain's new head to the anchor file, durably, once the entry it names is committed."""
        self._new_head = None
        if self.audit_anchor is None:
            return
        self.audit_anchor.parent.mkdir(parents=True, exist_ok=True)
        with self.audit_anchor.open("a", encoding="ascii") as anchor:
            anchor.write(f"{head.seq} {head.hash}\n")
            anchor.flush()
            os.fsync(anchor.fileno())

    # -- sources and runs ----------------------------------------------------------------

    def source_id(self, spec: SourceSpec) -> int:
        """The id of a source, recorded on first use."""
        self.conn.execute(
            "INSERT INTO sources (uri, name) VALUES (?, ?)"
            " ON CONFLICT (uri) DO UPDATE SET name = excluded.name, forgotten = NULL",  # scanned again: back in use
            (spec.uri, spec.name),
        )
        return int(self.conn.execute("SELECT id FROM sources WHERE uri = ?", (spec.uri,)).fetchone()[0])

    def cursor(self, source_id: int) -> str | None:
        """The stored change-listing cursor of a source."""
        row = self.conn.execute("SELECT cursor FROM sources WHERE id = ?", (source_id,)).fetchone()
        return row[0] if row else None

    def set_cursor(self, source_id: int, cursor: str | None) -> None:
        """Store a source's change-listing cursor."""
        self.conn.execute("UPDATE sources SET cursor = ? WHERE id = ?", (cursor, source_id))

    def begin_run(self, sources: Sequence[str]) -> int:
        """Record the start of a scan; return its run id."""
        cur = self.conn.execute(
            "INSERT INTO scan_runs (started, status, sources) VALUES (?, 'running', ?) RETURNING id",
            (_now(), json.dumps(list(sources), ensure_ascii=False)),
        )
        return int(cur.fetchone()[0])

    def finish_run(self, run_id: int, counts: RunCounts, status: str) -> None:
        """Record the end of a scan and its counts."""
        self.conn.execute(
            "UPDATE scan_runs SET finished = ?, status = ?, listed = ?, fingerprinted = ?, unchanged = ?,"
            " gone = ?, errors = ?, skipped = ? WHERE id = ?",
            (
                _now(),
                status,
                counts.listed,
                counts.fingerprinted,
                counts.unchanged,
                counts.gone,
                counts.errors,
                counts.skipped,
                run_id,
            ),
        )

    def runs(self) -> list[Row]:
        """Every scan run, newest first."""
        return self.conn.execute("SELECT * FROM scan_runs ORDER BY id DESC").fetchall()

    # -- listing ---------------------------------------------------------------------------

    def record_listed(self, source_id: int, record: AssetRecord, run_id: int) -> bool:
        """Record a listed asset; return ``True`` if it must be read (new, changed, or not yet read).

        An asset whose size and store hash (or, without a store hash, size and modified time)
        are unchanged keeps its fingerprint and is not read again.
        """
        writes: dict[str, list[tuple[object, ...]]] = {"insert": [], "seen": [], "changed": [], "unread": []}
        row = self._known(source_id, [record.key]).get(record.key)
        must_read = self._listing_write(row, source_id, record, run_id, writes)
        self._write_listing(writes)
        return must_read

    def record_listing(
        self, source_id: int, records: Sequence[AssetRecord], run_id: int, scanned: Collection[int]
    ) -> list[Listed]:
        """Record a batch of a source's listing, in order, as :meth:`record_listed` records each asset,
        except a record that names the same store object as another asset (:meth:`_same_object`),
        which is not recorded. Two queries read what the batch needs and a few write it: a listing
        costs a few round trips a batch, not several an asset (a shared catalog is across a network).
        """
        keys = [record.key for record in records]
        if len(set(keys)) < len(keys):  # a key listed twice: the second sees the first recorded
            first_repeat = next(n for n, key in enumerate(keys) if key in keys[:n])
            head = self.record_listing(source_id, records[:first_repeat], run_id, scanned)
            return head + self.record_listing(source_id, records[first_repeat:], run_id, scanned)
        known = self._known(source_id, keys)
        objects = self._object_rows([r.object_id for r in records if r.object_id is not None])
        listed: dict[tuple[int, str], str] = {}  # (source, key) listed by this batch: its URI now
        outcomes: list[Listed] = []
        writes: dict[str, list[tuple[object, ...]]] = {"insert": [], "seen": [], "changed": [], "unread": []}
        for record in records:
            same = self._same_object(
                source_id, record, run_id, scanned, objects.get(record.object_id or "", []), listed
            )
            if same is not None:
                outcomes.append(Listed(False, same))
                continue
            listed[source_id, record.key] = record.uri
            if record.object_id is not None:
                seen = {"source_id": source_id, "key": record.key, "uri": record.uri, "state": "present"}
                objects.setdefault(record.object_id, []).append(
                    {**seen, "last_seen_run": run_id, "source_uri": record.source}
                )
            outcomes.append(Listed(self._listing_write(known.get(record.key), source_id, record, run_id, writes)))
        self._write_listing(writes)
        return outcomes

    def _known(self, source_id: int, keys: list[str]) -> dict[str, Row]:
        """The stored assets of a source with these keys, by key (what recording a listing compares)."""
        query = (
            "SELECT id, key, size, modified, store_hash, content, error_retry, worker_crashes FROM assets"
            " WHERE source_id = ? AND key IN ({marks})"
        )
        return {row["key"]: row for row in self._rows_by_values(query, keys, source_id)}

    def _listing_write(
        self,
        row: Row | None,
        source_id: int,
        record: AssetRecord,
        run_id: int,
        writes: dict[str, list[tuple[object, ...]]],
    ) -> bool:
        """Queue the write that records ``record`` (``row``: its asset as stored, if any); return whether
        it must be read."""
        values = (
            record.uri,
            record.name,
            record.size,
            _iso(record.modified),
            record.store_hash,
            record.etag,
            record.version_id,
            json.dumps(record.metadata, ensure_ascii=False),
            record.object_id,
            run_id,
        )
        if row is None:
            writes["insert"].append((*values, source_id, record.key, run_id))
            return True
        if record.store_hash is not None:
            # a content hash settles it: stores change modified times for metadata edits (tags) too
            unchanged = (row["size"], row["store_hash"]) == (record.size, record.store_hash)
        else:
            unchanged = (row["size"], row["modified"]) == (record.size, _iso(record.modified))
        settled = row["content"] in ("image", "not_image", "skipped") or (
            row["content"] == "error" and not row["error_retry"]
        )
        if unchanged and settled:
            writes["seen"].append((*values, row["id"]))
            return False
        writes["changed"].append((*values, row["worker_crashes"] if unchanged else 0, row["id"]))
        writes["unread"].append((row["id"],))
        return True

    def _write_listing(self, writes: dict[str, list[tuple[object, ...]]]) -> None:
        statements = {
            "insert": "INSERT INTO assets (uri, name, size, modified, store_hash, etag, version_id, metadata,"
            " object_id, last_seen_run, source_id, key, first_seen_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "seen": "UPDATE assets SET uri = ?, name = ?, size = ?, modified = ?, store_hash = ?, etag = ?,"
            " version_id = ?, metadata = ?, object_id = ?, last_seen_run = ?, state = 'present', gone_run = NULL"
            " WHERE id = ?",
            "changed": "UPDATE assets SET uri = ?, name = ?, size = ?, modified = ?, store_hash = ?, etag = ?,"
            " version_id = ?, metadata = ?, object_id = ?, last_seen_run = ?, state = 'present', gone_run = NULL,"
            " content = 'pending', error = NULL, error_retry = 0, worker_crashes = ? WHERE id = ?",
            "unread": "DELETE FROM fingerprints WHERE asset_id = ?",
        }
        for kind, sql in statements.items():
            if writes[kind]:
                self.conn.executemany(sql, writes[kind])

    def _object_rows(self, object_ids: list[str]) -> dict[str, list[ObjectRow]]:
        """Every asset of these store objects, by object id, in id order, with its source's URI."""
        query = (
            "SELECT a.object_id, a.source_id, a.key, a.uri, a.state, a.last_seen_run, s.uri AS source_uri"
            " FROM assets a JOIN sources s ON s.id = a.source_id WHERE a.object_id IN ({marks}) ORDER BY a.id"
        )
        found: dict[str, list[ObjectRow]] = {}
        for row in self._rows_by_values(query, sorted(set(object_ids))):
            found.setdefault(row["object_id"], []).append(row)
        return found

    def _same_object(
        self,
        source_id: int,
        record: AssetRecord,
        run_id: int,
        scanned: Collection[int],
        rows: list[ObjectRow],
        listed: Mapping[tuple[int, str], str],
    ) -> str | None:
        """The URI of another present asset that is the store object ``record`` names, or ``None``.

        ``rows`` are the assets of that object, stored or recorded earlier in this batch
        (``listed``: their URIs now). Another asset counts when this run listed it under another
        name (a bind mount, a link, a second source naming the same folder, a case-insensitive
        share), or when its source is not part of this run. One not yet seen by this run in a
        source it scans does not: it may have been renamed (same object, new name), and its own
        listing will tell. Object ids are compared within one kind of store only.
        """
        for row in rows:
            where = (row["source_id"], row["key"])
            if where == (source_id, record.key):
                continue
            if where not in listed and row["state"] != "present":
                continue
            if _store_kind(row["source_uri"]) != _store_kind(record.source):
                continue
            if where in listed or row["last_seen_run"] == run_id or row["source_id"] not in scanned:
                return listed.get(where, str(row["uri"]))
        return None

    def mark_removed(self, source_id: int, key: str, run_id: int) -> int:
        """Mark one asset gone (a change listing said it was deleted); return 1 if it was present."""
        cur = self.conn.execute(
            "UPDATE assets SET state = 'gone', gone_run = ? WHERE source_id = ? AND key = ? AND state = 'present'",
            (run_id, source_id, key),
        )
        return cur.rowcount

    def mark_unseen_gone(self, source_id: int, run_id: int) -> int:
        """After a complete listing, mark every present asset it did not list as gone; return how many."""
        cur = self.conn.execute(
            "UPDATE assets SET state = 'gone', gone_run = ? WHERE source_id = ? AND state = 'present'"
            " AND last_seen_run < ?",
            (run_id, source_id, run_id),
        )
        return cur.rowcount

    def unseen_count(self, source_id: int, run_id: int) -> int:
        """How many present assets of a source this run has not listed (what a complete listing would mark gone)."""
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM assets WHERE source_id = ? AND state = 'present' AND last_seen_run < ?",
                (source_id, run_id),
            ).fetchone()[0]
        )

    def clear_problems(self, source_id: int) -> None:
        """Forget a source's recorded problems; a new scan of it records what is still wrong."""
        self.conn.execute("DELETE FROM problems WHERE source_id = ?", (source_id,))

    def add_problem(self, run_id: int, source_id: int, uri: str, reason: str) -> None:
        """Record something the run could not list or read, outside any one asset."""
        self.conn.execute(
            "INSERT INTO problems (run_id, source_id, uri, reason) VALUES (?, ?, ?, ?)",
            (run_id, source_id, uri, reason),
        )

    # -- content -------------------------------------------------------------------------

    def pending(self, source_id: int, after_id: int = 0, limit: int = 1000) -> list[CatalogAsset]:
        """A page of present assets of a source still waiting to be read: ids above ``after_id``, in id order."""
        rows = self.conn.execute(
            "SELECT * FROM assets WHERE source_id = ? AND state = 'present' AND content = 'pending' AND id > ?"
            " AND id NOT IN (SELECT asset_id FROM embedded) ORDER BY id LIMIT ?",
            (source_id, after_id, limit),
        ).fetchall()
        return [self._asset(row) for row in rows]

    def pending_count(self, source_id: int) -> int:
        """How many present assets of a source wait to be read."""
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM assets WHERE source_id = ? AND state = 'present' AND content = 'pending'"
                " AND id NOT IN (SELECT asset_id FROM embedded)",
                (source_id,),
            ).fetchone()[0]
        )

    def unconfirmable_by_store_hash(self) -> tuple[set[tuple[str, int]], set[int]]:
        """What store hashes cannot settle without reading bytes.

        Returns the (store hash, size) pairs more than one present asset shares (candidates
        to confirm), and the sizes shared by assets whose store hashes cannot be compared
        (one has none, or they use different algorithms): assets of those sizes must be read.
        """
        shared = self.conn.execute(
            "SELECT store_hash, size FROM assets WHERE state = 'present' AND store_hash IS NOT NULL"
            " GROUP BY store_hash, size HAVING COUNT(*) > 1"
        ).fetchall()
        mixed = self.conn.execute(
            "SELECT size FROM assets WHERE state = 'present' GROUP BY size HAVING COUNT(*) > 1 AND"
            f" (COUNT(store_hash) < COUNT(*) OR COUNT(DISTINCT {self.HASH_ALGORITHM}) > 1)"
        ).fetchall()
        return {(row[0], row[1]) for row in shared}, {row[0] for row in mixed}

    def renew_fingerprints_older_than(self, version: int, source_id: int) -> int:
        """Mark a source's present images whose fingerprint is older than ``version`` as waiting to be read."""
        cur = self.conn.execute(
            "UPDATE assets SET content = 'pending' WHERE source_id = ? AND state = 'present' AND content = 'image'"
            " AND id IN (SELECT asset_id FROM fingerprints WHERE version < ?)",
            (source_id, version),
        )
        return cur.rowcount

    def renew_images(self, source_id: int) -> int:
        """Mark all of a source's present images as waiting to be read (``dam-dedupe scan --reread``)."""
        cur = self.conn.execute(
            "UPDATE assets SET content = 'pending' WHERE source_id = ? AND state = 'present' AND content = 'image'",
            (source_id,),
        )
        return cur.rowcount

    def set_content(self, asset_id: int, content: str, error: str | None = None, retry: bool = False) -> None:
        """Record what reading an asset found when it gave no fingerprint (not an image, skipped, error)."""
        self.conn.execute(
            "UPDATE assets SET content = ?, error = ?, error_retry = ? WHERE id = ?",
            (content, error, int(retry), asset_id),
        )

    def mark_skipped(self, asset_ids: Collection[int]) -> None:
        """Mark assets skipped without a read (as :meth:`set_content` with ``skipped``), ``QUERY_CHUNK`` a statement."""
        wanted = list(asset_ids)
        for start in range(0, len(wanted), QUERY_CHUNK):
            chunk = wanted[start : start + QUERY_CHUNK]
            self.conn.execute(
                "UPDATE assets SET content = 'skipped', error = NULL, error_retry = 0"
                f" WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )

    def record_worker_crash(self, asset_id: int) -> int:
        """Count a worker process that died (killed by the kernel) while reading this asset; return the count.

        The count is reset when the asset changes, so a fixed file is read again.
        """
        self.conn.execute("UPDATE assets SET worker_crashes = worker_crashes + 1 WHERE id = ?", (asset_id,))
        return int(self.conn.execute("SELECT worker_crashes FROM assets WHERE id = ?", (asset_id,)).fetchone()[0])

    def store_fingerprint(self, asset_id: int, fp: Fingerprint) -> None:
        """Store an asset's fingerprint and mark it an image."""
        self.conn.execute(
            "INSERT INTO fingerprints (asset_id, sha256, size, width, height, format, metadata_fields,"
            " perceptual, thumbnail, version, preview) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (asset_id) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,"
            " width = excluded.width, height = excluded.height, format = excluded.format,"
            " metadata_fields = excluded.metadata_fields, perceptual = excluded.perceptual,"
            " thumbnail = excluded.thumbnail, version = excluded.version, preview = excluded.preview,"
            " frames = excluded.frames",
            (
                asset_id,
                fp.sha256,
                fp.size,
                fp.width,
                fp.height,
                fp.format,
                fp.metadata_fields,
                json.dumps(fp.perceptual),
                fp.thumbnail,
                fp.version,
                fp.preview,
            ),
        )
        self.conn.execute(
            "UPDATE assets SET content = 'image', error = NULL, error_retry = 0 WHERE id = ?", (asset_id,)
        )

    def images(self, thumbnails: bool = True) -> list[CatalogAsset]:
        """Every present, fingerprinted image, with its fingerprint; without the fingerprints'
        thumbnails when ``thumbnails`` is false (:meth:`thumbnails` gives them when needed)."""
        thumbnail = "f.thumbnail" if thumbnails else "NULL AS thumbnail"
        rows = self.conn.execute(
            "SELECT a.*, f.sha256, f.size AS fp_size, f.width, f.height, f.format, f.metadata_fields,"
            f" f.perceptual, {thumbnail}, f.version FROM assets a JOIN fingerprints f ON f.asset_id = a.id"
            " WHERE a.state = 'present' AND a.content = 'image' ORDER BY a.id"
        ).fetchall()
        return [self._asset(row) for row in rows]

    def previews(self, asset_ids: Iterable[int]) -> dict[int, bytes]:
        """The stored colour previews of these assets, by asset id (those that have one)."""
        query = "SELECT asset_id, preview FROM fingerprints WHERE asset_id IN ({marks}) AND preview IS NOT NULL"
        return {row["asset_id"]: row["preview"] for row in self._rows_by_id(query, asset_ids)}

    def _present_images(self, asset_columns: str, chunk: int) -> Iterator[Row]:
        """Rows of every present, fingerprinted image without its thumbnail (``asset_columns`` of the asset
        beside the fingerprint), one per URI (the first listed), in id order, ``chunk`` rows a query."""
        after = 0
        while True:
            rows = self.conn.execute(
                f"SELECT {asset_columns}, f.sha256, f.size AS fp_size, f.width, f.height, f.format,"
                " f.metadata_fields, f.perceptual, NULL AS thumbnail, f.version"
                " FROM assets a JOIN fingerprints f ON f.asset_id = a.id"
                " WHERE a.state = 'present' AND a.content = 'image' AND a.id > ? AND NOT EXISTS"
                " (SELECT 1 FROM assets b JOIN fingerprints g ON g.asset_id = b.id WHERE b.uri = a.uri"
                " AND b.id < a.id AND b.state = 'present' AND b.content = 'image') ORDER BY a.id LIMIT ?",
                (after, chunk),
            ).fetchall()
            if not rows:
                return
            yield from rows
            after = rows[-1]["id"]

    def images_streamed(self, chunk: int = 2000) -> Iterator[CatalogAsset]:
        """Every present, fingerprinted image without its thumbnail, one asset per URI (the first
        listed: an object listed under two overlapping sources is one asset), in id order, read
        ``chunk`` rows a query so that matching a large library never holds all its rows at once."""
        yield from (self._asset(row) for row in self._present_images("a.*", chunk))

    def thumbnails(self, asset_ids: Iterable[int]) -> dict[int, bytes]:
        """The stored thumbnails of these assets, by asset id."""
        query = "SELECT asset_id, thumbnail FROM fingerprints WHERE asset_id IN ({marks}) AND thumbnail IS NOT NULL"
        return {row["asset_id"]: row["thumbnail"] for row in self._rows_by_id(query, asset_ids)}

    def _rows_by_id(self, query: str, ids: Iterable[int]) -> Iterator[Row]:
        """The rows of ``query`` (its ``{marks}`` stands for the ids) for ``ids``, ``QUERY_CHUNK`` ids a query."""
        yield from self._rows_by_values(query, ids)

    def _rows_by_values(self, query: str, values: Iterable[object], *before: object) -> Iterator[Row]:
        """The rows of ``query`` for ``values`` (its ``{marks}``), ``QUERY_CHUNK`` a query, after the
        parameters ``before`` that come first in it."""
        wanted = list(values)
        for start in range(0, len(wanted), QUERY_CHUNK):
            chunk = wanted[start : start + QUERY_CHUNK]
            yield from self.conn.execute(query.format(marks=",".join("?" * len(chunk))), (*before, *chunk))

    def asset_by_uri(self, uri: str) -> CatalogAsset | None:
        """The asset with this URI (present or gone), with its fingerprint if it has one."""
        row = self.conn.execute(
            "SELECT a.*, f.sha256, f.size AS fp_size, f.width, f.height, f.format, f.metadata_fields,"
            " f.perceptual, f.thumbnail, f.version FROM assets a LEFT JOIN fingerprints f ON f.asset_id = a.id"
            " WHERE a.uri = ? ORDER BY a.state = 'present' DESC, a.id DESC LIMIT 1",
            (uri,),
        ).fetchone()
        return self._asset(row) if row is not None else None

    # -- clusters ---------------------------------------------------------------------------

    def replace_clusters(self, clusters: Iterable[StoredCluster]) -> None:
        """Replace every stored cluster with these."""
        with self.transaction():
            self.conn.execute("DELETE FROM cluster_members")
            self.conn.execute("DELETE FROM clusters")
            for cluster in clusters:
                self.conn.execute(
                    "INSERT INTO clusters (id, canonical_asset_id, canonical_reason, preset) VALUES (?, ?, ?, ?)",
                    (cluster.id, cluster.canonical_asset_id, cluster.canonical_reason, cluster.preset),
                )
                self.conn.executemany(
                    "INSERT INTO cluster_members (cluster_id, asset_id, match, evidence) VALUES (?, ?, ?, ?)",
                    [
                        (cluster.id, asset_id, match, json.dumps(evidence, ensure_ascii=False))
                        for asset_id, match, evidence in cluster.members
                    ],
                )

    def clusters(self) -> list[StoredCluster]:
        """Every stored cluster, largest first."""
        members: dict[str, list[tuple[int, str, dict[str, object]]]] = {}
        for row in self.conn.execute("SELECT * FROM cluster_members ORDER BY cluster_id, asset_id"):
            members.setdefault(row["cluster_id"], []).append(
                (row["asset_id"], row["match"], json.loads(row["evidence"]))
            )
        stored = [
            StoredCluster(
                row["id"], row["canonical_asset_id"], row["canonical_reason"], row["preset"], members.get(row["id"], [])
            )
            for row in self.conn.execute("SELECT * FROM clusters")
        ]
        return sorted(stored, key=lambda c: (-len(c.members), c.id))

    def assets_by_id(self, ids: Iterable[int], thumbnails: bool = True) -> dict[int, CatalogAsset]:
        """Assets (with fingerprints where they have one) by id; without the fingerprints' thumbnails
        when ``thumbnails`` is false (a cluster of thousands of members is explained a part at a time)."""
        thumbnail = "f.thumbnail" if thumbnails else "NULL AS thumbnail"
        query = (
            "SELECT a.*, f.sha256, f.size AS fp_size, f.width, f.height, f.format, f.metadata_fields,"
            f" f.perceptual, {thumbnail}, f.version FROM assets a LEFT JOIN fingerprints f ON f.asset_id = a.id"
            " WHERE a.id IN ({marks})"
        )
        return {row["id"]: self._asset(row) for row in self._rows_by_id(query, ids)}

    # -- reads for matching a library too large to hold ---------------------------------------

    def fingerprints_streamed(self, chunk: int = 4096) -> Iterator[tuple[int, Fingerprint]]:
        """(asset id, fingerprint without its thumbnail) of the images :meth:`images_streamed`
        gives, in the same order, ``chunk`` rows a query, without building their asset records."""
        yield from ((row["id"], _fingerprint(row)) for row in self._present_images("a.id", chunk))

    def fingerprints_by_id(self, asset_ids: Iterable[int]) -> dict[int, Fingerprint]:
        """The whole fingerprints (thumbnails included) of these assets, by asset id (those that have one)."""
        query = (
            "SELECT asset_id, sha256, size AS fp_size, width, height, format, metadata_fields, perceptual,"
            " thumbnail, version FROM fingerprints WHERE asset_id IN ({marks})"
        )
        return {row["asset_id"]: _fingerprint(row) for row in self._rows_by_id(query, asset_ids)}

    def clusters_streamed(self) -> Iterator[StoredCluster]:
        """Every stored cluster, one at a time, in id order."""
        after = ""
        while True:
            row = self.conn.execute("SELECT * FROM clusters WHERE id > ? ORDER BY id LIMIT 1", (after,)).fetchone()
            if row is None:
                return
            members = [
                (member["asset_id"], member["match"], json.loads(member["evidence"]))
                for member in self.conn.execute(
                    "SELECT * FROM cluster_members WHERE cluster_id = ? ORDER BY asset_id", (row["id"],)
                )
            ]
            yield StoredCluster(row["id"], row["canonical_asset_id"], row["canonical_reason"], row["preset"], members)
            after = row["id"]

    # -- what went wrong and totals ------------------------------------------------------------

    def problems(self) -> list[CatalogProblem]:
        """Current errors: present assets that failed, and problems from each source's latest run."""
        found = [
            CatalogProblem(row["uri"], row["error"], "asset")
            for row in self.conn.execute(
                "SELECT uri, error FROM assets WHERE state = 'present' AND content IN ('error', 'not_image')"
                " ORDER BY uri"
            )
        ]
        found += [
            CatalogProblem(row["uri"], row["reason"], "listing")
            for row in self.conn.execute(
                "SELECT p.uri, p.reason FROM problems p WHERE p.run_id ="
                " (SELECT MAX(q.run_id) FROM problems q WHERE q.source_id = p.source_id)"
                " AND p.source_id IN (SELECT id FROM sources WHERE forgotten IS NULL) ORDER BY p.id"
            )
        ]
        return found

    def counts(self) -> dict[str, int]:
        """Totals over present assets: ``assets``, ``images``, ``gone``, ``skipped``."""
        row = self.conn.execute(
            "SELECT COUNT(*) FILTER (WHERE state = 'present') AS assets,"
            " COUNT(*) FILTER (WHERE state = 'present' AND content = 'image') AS images,"
            " COUNT(*) FILTER (WHERE state = 'gone') AS gone,"
            " COUNT(*) FILTER (WHERE state = 'present' AND content = 'skipped') AS skipped FROM assets"
        ).fetchone()
        return {key: int(row[key] or 0) for key in ("assets", "images", "gone", "skipped")}

    def sources(self) -> list[SourceSpec]:
        """Every source the catalog has seen and not been told to forget."""
        rows = self.conn.execute("SELECT uri, name FROM sources WHERE forgotten IS NULL")
        return [SourceSpec(row["uri"], row["name"]) for row in rows]

    def source_overview(self) -> list[SourceOverview]:
        """Every source with its asset counts and state, forgotten ones included."""
        started = dict(self.conn.execute("SELECT id, started FROM scan_runs").fetchall())
        rows = self.conn.execute(
            "SELECT s.uri, s.name, s.forgotten, COUNT(a.id) FILTER (WHERE a.state = 'present') AS present,"
            " COUNT(a.id) FILTER (WHERE a.state = 'gone') AS gone,"
            " MAX(a.last_seen_run) AS last_run FROM sources s LEFT JOIN assets a ON a.source_id = s.id"
            " GROUP BY s.id ORDER BY s.uri"
        )
        return [
            SourceOverview(
                row["uri"],
                row["name"],
                int(row["present"] or 0),
                int(row["gone"] or 0),
                started.get(row["last_run"]),
                row["forgotten"],
            )
            for row in rows
        ]

    def forget_source(self, uri: str) -> int:
        """Mark a source forgotten and its present assets gone; return how many assets it had."""
        row = self.conn.execute("SELECT id FROM sources WHERE uri = ?", (uri,)).fetchone()
        if row is None:
            raise DamDedupeError(f"the catalog has no source {uri}")
        self.conn.execute("UPDATE sources SET forgotten = ? WHERE id = ?", (_now(), row[0]))
        cursor = self.conn.execute(
            "UPDATE assets SET state = 'gone', gone_run = NULL WHERE source_id = ? AND state = 'present'", (row[0],)
        )
        self.conn.execute("UPDATE sources SET cursor = NULL WHERE id = ?", (row[0],))  # a later scan lists it all
        return cursor.rowcount

    # -- governance: plans, sign-offs, runs, journal, audit log --------------------------------

    def save_plan(self, plan_id: str, action: str, created: str, created_by: str, body: str) -> None:
        """Register a plan (its canonical JSON body); registering the same id again changes nothing."""
        self.conn.execute(
            "INSERT INTO plans (id, action, created, created_by, body) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO NOTHING",
            (plan_id, action, created, created_by, body),
        )

    def plan_body(self, plan_id: str) -> str | None:
        """The registered body of a plan, or ``None`` if no plan with this id was made with this catalog."""
        row = self.conn.execute("SELECT body FROM plans WHERE id = ?", (plan_id,)).fetchone()
        return row[0] if row else None

    def add_signoff(self, signoff: SignOff) -> None:
        """Record a sign-off against a registered plan."""
        self.conn.execute(
            "INSERT INTO signoffs (plan_id, signed_by, role, note, at) VALUES (?, ?, ?, ?, ?)",
            (signoff.plan_id, signoff.signed_by, signoff.role, signoff.note, signoff.at),
        )

    def signoffs(self, plan_id: str) -> list[SignOff]:
        """Every sign-off of a plan, oldest first."""
        rows = self.conn.execute(
            "SELECT plan_id, signed_by, role, note, at FROM signoffs WHERE plan_id = ? ORDER BY id", (plan_id,)
        )
        return [SignOff(*row) for row in rows]

    def governance_records(self) -> GovernanceRecords:
        """Everything the governance tables hold, for ``audit verify`` to check against the chain."""
        plans = [row[0] for row in self.conn.execute("SELECT id FROM plans ORDER BY id")]
        signoffs = [
            SignOff(*row)
            for row in self.conn.execute("SELECT plan_id, signed_by, role, note, at FROM signoffs ORDER BY id")
        ]
        steps = [
            (row[0], int(row[1]))
            for row in self.conn.execute("SELECT run_id, step FROM journal WHERE phase = 'after' ORDER BY run_id, step")
        ]
        runs = [(row[0], row[1]) for row in self.conn.execute("SELECT id, kind FROM action_runs ORDER BY id")]
        return GovernanceRecords(plans, signoffs, runs, steps, self._trigger_names() >= AUDIT_GUARDS)

    def begin_action_run(self, run: ActionRun) -> None:
        """Record the start of an apply or undo run."""
        self.conn.execute(
            "INSERT INTO action_runs (id, plan_id, kind, undoes, started, started_by, finished, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run.id, run.plan_id, run.kind, run.undoes, run.started, run.started_by, run.finished, run.status),
        )

    def finish_action_run(self, run_id: str, finished: str) -> None:
        """Mark a run finished."""
        self.conn.execute("UPDATE action_runs SET finished = ?, status = 'finished' WHERE id = ?", (finished, run_id))

    def action_runs(self, plan_id: str | None = None) -> list[ActionRun]:
        """Runs, oldest first; only those of ``plan_id`` when given."""
        query = "SELECT id, plan_id, kind, undoes, started, started_by, finished, status FROM action_runs"
        # rowid: the order runs began in (SQLite's own rowid; a column of that name on PostgreSQL)
        if plan_id is None:
            rows = self.conn.execute(query + " ORDER BY started, rowid")
        else:
            rows = self.conn.execute(query + " WHERE plan_id = ? ORDER BY started, rowid", (plan_id,))
        return [ActionRun(*row) for row in rows]

    def action_run(self, run_id: str) -> ActionRun | None:
        """One run, or ``None``."""
        row = self.conn.execute(
            "SELECT id, plan_id, kind, undoes, started, started_by, finished, status FROM action_runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        return ActionRun(*row) if row else None

    def add_journal(self, entry: JournalEntry) -> None:
        """Append a step's *before* or *after*; a second entry for the same run, step and phase is refused."""
        self.conn.execute(
            "INSERT INTO journal (run_id, step, phase, outcome, detail, at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                entry.run_id,
                entry.step,
                entry.phase,
                entry.outcome,
                json.dumps(entry.detail, ensure_ascii=False),
                entry.at,
            ),
        )

    def journal(self, run_id: str) -> list[JournalEntry]:
        """A run's journal, in the order written."""
        rows = self.conn.execute(
            "SELECT run_id, step, phase, outcome, detail, at FROM journal WHERE run_id = ? ORDER BY id", (run_id,)
        )
        return [JournalEntry(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def last_audit_entry(self) -> AuditEntry | None:
        """The newest audit entry, whose hash the next one chains to."""
        row = self.conn.execute("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return self._audit(row) if row else None

    def add_audit_entry(self, entry: AuditEntry) -> None:
        """Append an audit entry (the caller computed its chain hash)."""
        self.conn.execute(
            "INSERT INTO audit_log (seq, at, actor, event, plan_id, run_id, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.seq,
                entry.at,
                entry.actor,
                entry.event,
                entry.plan_id,
                entry.run_id,
                json.dumps(entry.detail, ensure_ascii=False, sort_keys=True),
                entry.prev_hash,
                entry.hash,
            ),
        )
        self._new_head = entry

    def audit_entries(self) -> list[AuditEntry]:
        """The whole audit log, oldest first."""
        return [self._audit(row) for row in self.conn.execute("SELECT * FROM audit_log ORDER BY seq")]

    @staticmethod
    def _audit(row: Row) -> AuditEntry:
        return AuditEntry(
            row["seq"],
            row["at"],
            row["actor"],
            row["event"],
            row["plan_id"],
            row["run_id"],
            json.loads(row["detail"]),
            row["prev_hash"],
            row["hash"],
        )

    # -- analyses and review decisions --------------------------------------------------------

    def store_analyses(self, asset_id: int, sha256: str, analyses: Mapping[str, Analysis]) -> None:
        """Replace an asset's analyser results with these, found on content ``sha256``."""
        self.conn.execute("DELETE FROM analyses WHERE asset_id = ?", (asset_id,))
        self.conn.executemany(
            "INSERT INTO analyses (asset_id, analyser, sha256, flags, facts, error) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    asset_id,
                    name,
                    sha256,
                    json.dumps(sorted(a.flags)),
                    json.dumps(dict(a.facts), ensure_ascii=False),
                    a.error,
                )
                for name, a in analyses.items()
            ],
        )

    def analyses(self) -> dict[int, dict[str, Analysis]]:
        """Analyser results of present images by asset id, then analyser name.

        Only results found on the asset's current content count: a changed file's old
        results are ignored until it is read again.
        """
        found: dict[int, dict[str, Analysis]] = {}
        rows = self.conn.execute(
            "SELECT n.asset_id, n.analyser, n.flags, n.facts, n.error FROM analyses n"
            " JOIN assets a ON a.id = n.asset_id JOIN fingerprints f ON f.asset_id = n.asset_id"
            " WHERE a.state = 'present' AND a.content = 'image' AND f.sha256 = n.sha256 ORDER BY n.asset_id"
        )
        for row in rows:
            found.setdefault(row["asset_id"], {})[row["analyser"]] = Analysis(
                frozenset(json.loads(row["flags"])), json.loads(row["facts"]), row["error"]
            )
        return found

    def name_size_rows(self) -> list[tuple[str, int, str | None]]:
        """Every present image as (file name, size, id of the cluster it belongs to or ``None``)."""
        rows = self.conn.execute(
            "SELECT a.name, a.size, m.cluster_id FROM assets a JOIN fingerprints f ON f.asset_id = a.id"
            " LEFT JOIN cluster_members m ON m.asset_id = a.id WHERE a.state = 'present' AND a.content = 'image'"
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def replace_decisions(self, decisions: Sequence[ReviewDecision]) -> None:
        """Store decisions, replacing every earlier decision on the clusters they name."""
        with self.transaction():
            for cluster in {d.cluster for d in decisions}:
                self.conn.execute("DELETE FROM review_decisions WHERE cluster_id = ?", (cluster,))
            self.conn.executemany(
                "INSERT INTO review_decisions (cluster_id, decision, uri, members, decided_by, decided_at,"
                " imported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        d.cluster,
                        d.decision,
                        d.uri,
                        json.dumps(sorted(d.members), ensure_ascii=False),
                        d.decided_by,
                        d.decided_at,
                        _now(),
                    )
                    for d in decisions
                ],
            )

    def decisions(self) -> list[ReviewDecision]:
        """Every stored decision, oldest first."""
        found = []
        for row in self.conn.execute("SELECT * FROM review_decisions ORDER BY id"):
            members = frozenset((uri, sha) for uri, sha in json.loads(row["members"]))
            found.append(
                ReviewDecision(
                    row["cluster_id"], row["decision"], row["uri"], members, row["decided_by"], row["decided_at"]
                )
            )
        return found

    def cluster_contents(self) -> dict[str, frozenset[tuple[str, str]]]:
        """Every stored cluster's members as (URI, SHA-256) pairs, by cluster id."""
        contents: dict[str, set[tuple[str, str]]] = {}
        rows = self.conn.execute(
            "SELECT m.cluster_id, a.uri, f.sha256 FROM cluster_members m JOIN assets a ON a.id = m.asset_id"
            " JOIN fingerprints f ON f.asset_id = m.asset_id"
        )
        for row in rows:
            contents.setdefault(row[0], set()).add((row[1], row[2]))
        return {cluster: frozenset(hashes) for cluster, hashes in contents.items()}

    def standing_decisions(self) -> dict[str, list[ReviewDecision]]:
        """Decisions that still apply, by cluster id: the cluster has the same members with the same content."""
        contents = self.cluster_contents()
        standing: dict[str, list[ReviewDecision]] = {}
        for decision in self.decisions():
            if contents.get(decision.cluster) == decision.members:
                standing.setdefault(decision.cluster, []).append(decision)
        return standing

    # -- rows to records -----------------------------------------------------------------------

    # -- the DAM integration service (dam_dedupe.service) --------------------------------------

    def add_token(self, name: str, token_hash: str, scopes: Collection[str], created: str) -> None:
        """Store a new service token by the hash of its secret; a revoked token's name may be reused.

        Raises :class:`DamDedupeError` if a token of that name is in force.
        """
        with self.transaction():
            row = self.conn.execute("SELECT revoked FROM api_tokens WHERE name = ?", (name,)).fetchone()
            if row is not None and row["revoked"] is None:
                raise DamDedupeError(f"a token named {name!r} exists; revoke it first or choose another name")
            self.conn.execute(
                "INSERT INTO api_tokens (name, token_hash, scopes, created) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, scopes = excluded.scopes,"
                " created = excluded.created, last_used = NULL, revoked = NULL",
                (name, token_hash, json.dumps(sorted(scopes)), created),
            )

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token whose secret hashes to ``token_hash`` (revoked or not), or ``None``."""
        row = self.conn.execute("SELECT * FROM api_tokens WHERE token_hash = ?", (token_hash,)).fetchone()
        return self._token(row) if row is not None else None

    def tokens(self) -> list[ApiToken]:
        """Every token, by name."""
        return [self._token(row) for row in self.conn.execute("SELECT * FROM api_tokens ORDER BY name")]

    @staticmethod
    def _token(row: Row) -> ApiToken:
        scopes = frozenset(json.loads(row["scopes"]))
        return ApiToken(row["name"], scopes, row["created"], row["last_used"], row["revoked"])

    def revoke_token(self, name: str, when: str) -> bool:
        """Revoke a token at once; ``False`` if no token of that name is in force."""
        cur = self.conn.execute("UPDATE api_tokens SET revoked = ? WHERE name = ? AND revoked IS NULL", (when, name))
        return cur.rowcount > 0

    def touch_token(self, name: str, when: str) -> None:
        """Record when a token was last used."""
        self.conn.execute("UPDATE api_tokens SET last_used = ? WHERE name = ?", (when, name))

    def dam_ingest(self, dam_asset_id: str, version: str) -> DamIngest | None:
        """The record of a DAM asset version already ingested, or ``None``."""
        row = self.conn.execute(
            "SELECT * FROM dam_ingests WHERE dam_asset_id = ? AND version = ?", (dam_asset_id, version)
        ).fetchone()
        if row is None:
            return None
        return DamIngest(row["dam_asset_id"], row["version"], row["uri"], row["sha256"], row["ingested"])

    def record_dam_ingest(self, ingest: DamIngest) -> bool:
        """Record a DAM asset version as ingested; ``False`` if it already was (nothing is changed)."""
        cur = self.conn.execute(
            "INSERT INTO dam_ingests (dam_asset_id, version, uri, sha256, ingested) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (dam_asset_id, version) DO NOTHING",
            (ingest.dam_asset_id, ingest.version, ingest.uri, ingest.sha256, ingest.ingested),
        )
        return cur.rowcount > 0

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Keep an outgoing webhook event that could not be delivered."""
        self.conn.execute(
            "INSERT INTO webhook_dead_letters (subscriber, event, body, error, attempts, failed)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (letter.subscriber, letter.event, letter.body, letter.error, letter.attempts, letter.failed),
        )

    def dead_letters(self) -> list[DeadLetter]:
        """Every undelivered webhook event, oldest first."""
        rows = self.conn.execute("SELECT * FROM webhook_dead_letters ORDER BY id").fetchall()
        return [
            DeadLetter(row["subscriber"], row["event"], row["body"], row["error"], row["attempts"], row["failed"])
            for row in rows
        ]

    def clusters_of(self, asset_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """For those of ``asset_ids`` in a cluster: (cluster id, the canonical's URI)."""
        query = (
            "SELECT m.asset_id, c.id, a.uri FROM cluster_members m JOIN clusters c ON c.id = m.cluster_id"
            " JOIN assets a ON a.id = c.canonical_asset_id WHERE m.asset_id IN ({marks})"
        )
        return {row[0]: (row[1], row[2]) for row in self._rows_by_id(query, asset_ids)}

    def cluster_page(self, after: str, limit: int) -> list[StoredCluster]:
        """Up to ``limit`` stored clusters with ids after ``after``, in id order (a page of the service's list)."""
        rows = self.conn.execute("SELECT * FROM clusters WHERE id > ? ORDER BY id LIMIT ?", (after, limit)).fetchall()
        return [self._cluster(row) for row in rows]

    def cluster_by_id(self, cluster_id: str) -> StoredCluster | None:
        """One stored cluster with its members, or ``None``."""
        row = self.conn.execute("SELECT * FROM clusters WHERE id = ?", (cluster_id,)).fetchone()
        return self._cluster(row) if row is not None else None

    def _cluster(self, row: Row) -> StoredCluster:
        members = [
            (m["asset_id"], m["match"], json.loads(m["evidence"]))
            for m in self.conn.execute(
                "SELECT * FROM cluster_members WHERE cluster_id = ? ORDER BY asset_id", (row["id"],)
            )
        ]
        return StoredCluster(row["id"], row["canonical_asset_id"], row["canonical_reason"], row["preset"], members)

    def assets_page(self, uri: str, after: int, limit: int) -> list[CatalogAsset]:
        """Up to ``limit`` assets (present or gone) with this URI, or under it when it ends in ``/``, with ids
        after ``after``, in id order, without thumbnails."""
        # under a folder: a range on the indexed URI (every URI starting with ``uri`` sorts between it and
        # ``uri`` with its last ``/`` raised by one), with no LIKE pattern for a URI's ``%`` and ``_`` to upset
        where, values = "a.uri = ?", [uri]
        if uri.endswith("/"):
            where, values = "a.uri >= ? AND a.uri < ?", [uri, uri[:-1] + "0"]  # "0" follows "/"
        rows = self.conn.execute(
            "SELECT a.*, f.sha256, f.size AS fp_size, f.width, f.height, f.format, f.metadata_fields,"
            " f.perceptual, NULL AS thumbnail, f.version FROM assets a LEFT JOIN fingerprints f ON f.asset_id = a.id"
            f" WHERE {where} AND a.id > ? ORDER BY a.id LIMIT ?",
            (*values, after, limit),
        ).fetchall()
        return [self._asset(row) for row in rows]

    def change_marker(self) -> tuple[object, ...]:
        """A value that changes whenever the present, fingerprinted images change: their count, the
        newest fingerprint and the latest scan's end (a rescan replaces fingerprints in place)."""
        row = self.conn.execute(
            "SELECT (SELECT count(*) FROM fingerprints), (SELECT coalesce(max(asset_id), 0) FROM fingerprints),"
            " (SELECT count(*) FROM assets WHERE state = 'present' AND content = 'image'),"
            " (SELECT coalesce(max(id), 0) FROM scan_runs), (SELECT max(finished) FROM scan_runs)"
        ).fetchone()
        return tuple(row)

    # -- images inside documents (formats) -------------------------------------------------

    def record_parts(self, container_id: int, run_id: int, parts: Sequence[tuple[str, int]]) -> list[int]:
        """Record the images read from a document as assets of its source; return their ids, in order.

        ``parts`` holds each image's part name and size. An image is keyed ``<document key>#<part>``
        and named ``<document URI>#<part>``; its metadata names the document. Images the document
        held before and no longer holds are marked gone.
        """
        doc = self.conn.execute("SELECT * FROM assets WHERE id = ?", (container_id,)).fetchone()
        ids = []
        for part, size in parts:
            key, uri = f"{doc['key']}#{part}", f"{doc['uri']}#{part}"
            metadata = json.dumps({EMBEDDED_IN: doc["uri"], PART: part}, ensure_ascii=False)
            row = self.conn.execute(
                "SELECT id FROM assets WHERE source_id = ? AND key = ?", (doc["source_id"], key)
            ).fetchone()
            if row is None:
                cur = self.conn.execute(
                    "INSERT INTO assets (source_id, key, uri, name, size, modified, metadata, first_seen_run,"
                    " last_seen_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (doc["source_id"], key, uri, f"{doc['name']}#{part}", size, doc["modified"], metadata)
                    + (run_id, run_id),
                )
                asset_id = int(cur.fetchone()[0])
            else:
                asset_id = int(row["id"])
                self.conn.execute(
                    "UPDATE assets SET uri = ?, size = ?, modified = ?, metadata = ?, last_seen_run = ?,"
                    " state = 'present', gone_run = NULL, content = 'pending' WHERE id = ?",
                    (uri, size, doc["modified"], metadata, run_id, asset_id),
                )
            self.conn.execute(
                "INSERT INTO embedded (asset_id, container_id, part) VALUES (?, ?, ?)"
                " ON CONFLICT (asset_id) DO UPDATE SET container_id = excluded.container_id, part = excluded.part",
                (asset_id, container_id, part),
            )
            ids.append(asset_id)
        marks = ",".join("?" * len(ids)) or "-1"  # no asset has id -1 (NOT IN (NULL) would match nothing)
        self.conn.execute(
            "UPDATE assets SET state = 'gone', gone_run = ? WHERE state = 'present' AND id IN"
            f" (SELECT asset_id FROM embedded WHERE container_id = ? AND asset_id NOT IN ({marks}))",
            (run_id, container_id, *ids),
        )
        return ids

    def follow_documents(self, source_id: int, run_id: int) -> None:
        """After a source's listing: its documents' images share their document's presence.

        Images are never listed by an adapter, so each takes its document's last sighting (a
        listing that marks the document gone marks its images gone with it), images of a document
        already gone are gone, and a document one of whose images waits to be read again (a newer
        fingerprint kind, ``--reread``) is read again whole.
        """
        self.conn.execute(
            "UPDATE assets SET last_seen_run = (SELECT d.last_seen_run FROM embedded e JOIN assets d"
            " ON d.id = e.container_id WHERE e.asset_id = assets.id) WHERE source_id = ? AND state = 'present'"
            " AND id IN (SELECT asset_id FROM embedded)",
            (source_id,),
        )
        self.conn.execute(
            "UPDATE assets SET state = 'gone', gone_run = ? WHERE source_id = ? AND state = 'present' AND id IN"
            " (SELECT e.asset_id FROM embedded e JOIN assets d ON d.id = e.container_id WHERE d.state = 'gone')",
            (run_id, source_id),
        )
        self.conn.execute(
            "UPDATE assets SET content = 'pending' WHERE source_id = ? AND state = 'present' AND id IN"
            " (SELECT e.container_id FROM embedded e JOIN assets p ON p.id = e.asset_id"
            " WHERE p.content = 'pending' AND p.state = 'present')",
            (source_id,),
        )

    def store_frames(self, asset_id: int, frames: int) -> None:
        """Record how many pages, frames or layers a fingerprinted file holds."""
        self.conn.execute("UPDATE fingerprints SET frames = ? WHERE asset_id = ?", (frames, asset_id))

    def embedded_images(self) -> dict[int, str]:
        """Every present image inside a document, by asset id, with its document's URI."""
        rows = self.conn.execute(
            "SELECT e.asset_id, d.uri FROM embedded e JOIN assets d ON d.id = e.container_id"
            " JOIN assets a ON a.id = e.asset_id WHERE a.state = 'present'"
        ).fetchall()
        return {int(row[0]): str(row[1]) for row in rows}

    def _source_uri(self, source_id: int) -> str:
        if source_id not in self._source_uris:
            row = self.conn.execute("SELECT uri FROM sources WHERE id = ?", (source_id,)).fetchone()
            self._source_uris[source_id] = row[0]
        return self._source_uris[source_id]

    def _asset(self, row: Row) -> CatalogAsset:
        record = AssetRecord(
            source=self._source_uri(row["source_id"]),
            key=row["key"],
            uri=row["uri"],
            size=row["size"],
            modified=datetime.fromisoformat(row["modified"]) if row["modified"] else None,
            store_hash=row["store_hash"],
            etag=row["etag"],
            version_id=row["version_id"],
            name=row["name"],
            metadata=json.loads(row["metadata"]),
            object_id=row["object_id"],
        )
        fingerprint = None
        if "sha256" in row.keys() and row["sha256"] is not None:  # noqa: SIM118 (Row: in tests values)
            fingerprint = _fingerprint(row)
        state = AssetState(row["state"], row["content"], row["error"])
        return CatalogAsset(row["id"], row["source_id"], record, fingerprint, state)


def _fingerprint(row: Row) -> Fingerprint:
    """A fingerprint from a row with the fingerprint columns (``fp_size`` for its size)."""
    return Fingerprint(
        sha256=row["sha256"],
        size=row["fp_size"],
        width=row["width"],
        height=row["height"],
        format=row["format"],
        perceptual=json.loads(row["perceptual"]),
        thumbnail=row["thumbnail"],
        metadata_fields=row["metadata_fields"],
        version=row["version"],
    )
