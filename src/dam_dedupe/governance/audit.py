"""The audit log: who planned, approved, applied and undid what, when, chained by hash.

Each entry carries the hash of the one before it, and its own hash covers every field
and that link. Editing an entry breaks its own hash; deleting one breaks the link of the
next (and leaves a gap in the sequence). Deleting the newest entries leaves a valid but
shorter chain: that is caught by keeping the head hash that ``dam-dedupe audit verify``
prints somewhere else (a ticket, an email) and passing it back with ``--head``.
The catalog also refuses ``UPDATE`` and ``DELETE`` on the table, so only a deliberate
edit of the file can change it, and that edit is what ``verify`` detects.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from dam_dedupe.catalog import AuditEntry, Catalog

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""

CSV_COLUMNS = ("seq", "at", "actor", "event", "plan_id", "run_id", "detail", "prev_hash", "hash")


def now() -> str:
    """The current time as the log writes it: ISO 8601, UTC, microseconds."""
    return datetime.now(UTC).isoformat()


def entry_hash(seq: int, at: str, actor: str, event: str, plan_id: str, run_id: str, detail: dict[str, object],
               prev_hash: str) -> str:  # fmt: skip
    """The SHA-256 an entry must carry: over its fields, in a fixed JSON form, and the previous hash."""
    body = [seq, at, actor, event, plan_id, run_id, detail, prev_hash]
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record(catalog: Catalog, actor: str, event: str, plan_id: str = "", run_id: str = "",
           detail: Mapping[str, object] | None = None) -> AuditEntry:  # fmt: skip
    """Append one entry chained to the newest; call inside ``catalog.transaction()`` with the change it records."""
    last = catalog.last_audit_entry()
    seq = last.seq + 1 if last else 1
    prev = last.hash if last else GENESIS
    at = now()
    stored: dict[str, object] = json.loads(json.dumps(dict(detail or {}), ensure_ascii=False))  # as read back
    entry = AuditEntry(seq, at, actor, event, plan_id, run_id, stored, prev,
                       entry_hash(seq, at, actor, event, plan_id, run_id, stored, prev))  # fmt: skip
    catalog.add_audit_entry(entry)
    return entry


def verify(entries: list[AuditEntry], head: str | None = None) -> list[str]:
    """Check the chain; return one line per problem found (empty when intact).

    ``head`` is a hash taken from an earlier ``verify``: the log must still hold that entry.
    """
    problems: list[str] = []
    prev, expected_seq = GENESIS, 1
    for entry in entries:
        if entry.seq != expected_seq:
            problems.append(f"entries {expected_seq}..{entry.seq - 1} are missing (deleted)")
        if entry.prev_hash != prev:
            problems.append(f"entry {entry.seq} does not follow the entry before it: an entry was deleted or edited")
        recomputed = entry_hash(entry.seq, entry.at, entry.actor, entry.event, entry.plan_id, entry.run_id,
                                entry.detail, entry.prev_hash)  # fmt: skip
        if recomputed != entry.hash:
            problems.append(f"entry {entry.seq} ({entry.event} by {entry.actor} at {entry.at}) was edited")
        prev, expected_seq = entry.hash, entry.seq + 1
    if head is not None and head not in {entry.hash for entry in entries}:
        problems.append(f"the log no longer holds the entry with hash {head}: it was truncated or rewritten")
    return problems


def export_csv(entries: list[AuditEntry], path: Path) -> None:
    """Write the log as CSV (UTF-8 with BOM so spreadsheet programs read non-ASCII names), one row per entry."""
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for e in entries:
            detail = json.dumps(e.detail, ensure_ascii=False, sort_keys=True)
            writer.writerow([e.seq, e.at, e.actor, e.event, e.plan_id, e.run_id, detail, e.prev_hash, e.hash])
