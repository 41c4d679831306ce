"""The audit log: who planned, approved, applied and undid what, when, chained by hash.

Each entry carries the hash of the one before it, and its own hash covers every field
and that link. Editing an entry breaks its own hash; deleting one breaks the link of the
next (and leaves a gap in the sequence). Deleting the newest entries leaves a valid but
shorter chain: that is caught by the *anchor*, a file outside the catalog to which the
chain's head (``SEQ HASH``) is appended after every committed entry
(``[governance] audit_anchor``, by default ``CATALOG.anchor``; keep it on another machine
or a write-once store), and by ``dam-dedupe audit verify --anchor FILE``.

The plans, sign-offs and journal tables are caches of what the chain says: ``verify``
checks that each of their rows has its chained entry, so a row inserted by hand (a forged
sign-off) is found, and that the triggers that make the log append-only are in place.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from dam_dedupe.catalog import AuditEntry, Catalog, GovernanceRecords
from dam_dedupe.governance.signatures import person

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""

CSV_COLUMNS = ("seq", "at", "actor", "event", "plan_id", "run_id", "detail", "prev_hash", "hash")


def now() -> str:
    """The current time as the log writes it: ISO 8601, UTC, microseconds."""
    return datetime.now(UTC).isoformat()


def entry_hash(
    seq: int, at: str, actor: str, event: str, plan_id: str, run_id: str, detail: dict[str, object], prev_hash: str
) -> str:
    """The SHA-256 an entry must carry: over its fields, in a fixed JSON form, and the previous hash."""
    body = [seq, at, actor, event, plan_id, run_id, detail, prev_hash]
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record(
    catalog: Catalog,
    actor: str,
    event: str,
    plan_id: str = "",
    run_id: str = "",
    detail: Mapping[str, object] | None = None,
) -> AuditEntry:
    """Append one entry chained to the newest; call inside ``catalog.transaction()`` with the change it records."""
    last = catalog.last_audit_entry()
    seq = last.seq + 1 if last else 1
    prev = last.hash if last else GENESIS
    at = now()
    stored: dict[str, object] = json.loads(json.dumps(dict(detail or {}), ensure_ascii=False))  # as read back
    entry = AuditEntry(
        seq,
        at,
        actor,
        event,
        plan_id,
        run_id,
        stored,
        prev,
        entry_hash(seq, at, actor, event, plan_id, run_id, stored, prev),
    )
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
        recomputed = entry_hash(
            entry.seq, entry.at, entry.actor, entry.event, entry.plan_id, entry.run_id, entry.detail, entry.prev_hash
        )
        if recomputed != entry.hash:
            problems.append(f"entry {entry.seq} ({entry.event} by {entry.actor} at {entry.at}) was edited")
        prev, expected_seq = entry.hash, entry.seq + 1
    if head is not None and head not in {entry.hash for entry in entries}:
        problems.append(f"the log no longer holds the entry with hash {head}: it was truncated or rewritten")
    return problems


def verify_anchor(entries: list[AuditEntry], anchor: str) -> list[str]:
    """Check the log against an anchor file's lines (``SEQ HASH``): every anchored head must still be in it."""
    by_seq = {entry.seq: entry.hash for entry in entries}
    problems = []
    for number, line in enumerate(anchor.splitlines(), start=1):
        seq_text, _, head = line.strip().partition(" ")
        if not seq_text.isdigit() or len(head) != 64:
            problems.append(f"anchor line {number} is not 'SEQ HASH': {line!r}")
        elif by_seq.get(int(seq_text)) != head:
            state = "is missing (the log was cut)" if int(seq_text) not in by_seq else "was rewritten"
            problems.append(f"anchored entry {seq_text} {state}")
    return problems


def cross_check(entries: list[AuditEntry], records: GovernanceRecords) -> list[str]:
    """Check the governance tables against the chain: every row needs the entry that recorded it."""
    problems = [] if records.guards else ["the triggers that keep the audit log append-only were removed"]
    planned = {e.plan_id for e in entries if e.event == "plan"}
    problems += [f"plan {plan} has no 'plan' entry in the audit log" for plan in records.plans if plan not in planned]
    approved = {
        (e.plan_id, str(e.detail.get("identity") or person(e.actor)), e.detail.get("role"))
        for e in entries
        if e.event == "approve"
    }
    problems += [
        f"the sign-off of plan {s.plan_id} by {s.signed_by} as {s.role} is not in the audit log (inserted by hand)"
        for s in records.signoffs
        if (s.plan_id, person(s.signed_by), s.role) not in approved
    ]
    started = {(e.run_id, e.event.removesuffix("_started")) for e in entries if e.event.endswith("_started")}
    problems += [
        f"{kind} run {run} has no '{kind}_started' entry in the audit log"
        for run, kind in records.runs
        if (run, kind) not in started
    ]
    stepped = {(e.run_id, e.detail.get("step")) for e in entries if e.event == "step"}
    problems += [
        f"step {step} of run {run} has no 'step' entry in the audit log"
        for run, step in records.steps
        if (run, step) not in stepped
    ]
    return problems


def export_csv(entries: list[AuditEntry], path: Path) -> None:
    """Write the log as CSV (UTF-8 with BOM so spreadsheet programs read non-ASCII names), one row per entry."""
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for e in entries:
            detail = json.dumps(e.detail, ensure_ascii=False, sort_keys=True)
            writer.writerow([e.seq, e.at, e.actor, e.event, e.plan_id, e.run_id, detail, e.prev_hash, e.hash])
