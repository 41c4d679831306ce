"""The audit log: every plan, sign-off, run and step recorded, chained, and tampering detected."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from dam_dedupe.cli import main
from dam_dedupe.governance import Selection, apply_plan, approve, make_plan, undo_run
from tests.governance_library import make_library
from tests.servers.postgres import drop_audit_guards
from tests.servers.postgres import tamper as run_sql


@pytest.fixture
def catalog_path(tmp_path: Path, catalog_location: str) -> str:
    """A catalog after a plan, a sign-off, an apply and an undo of the quarantine action."""
    lib = make_library(tmp_path, catalog_location)
    plan = make_plan(lib.catalog, lib.host, lib.config, "quarantine", {}, Selection(), by="ana")
    approve(lib.catalog, lib.config, plan, by="lee", role="legal", note="checked with the brand team")
    run = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)
    undo_run(lib.catalog, lib.host, lib.config, run.run_id, by="kim")
    lib.catalog.close()
    return lib.catalog.location


def audit(catalog_path: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--catalog", catalog_path, "audit", *args])
    return result.exit_code, result.output


def tamper(catalog_path: str, sql: str) -> None:
    """What someone with the catalog file (or the database's owner) can do: drop the append-only guard, change rows."""
    run_sql(catalog_path, *drop_audit_guards(catalog_path), sql)


def test_log_records_who_did_what_with_hashes_and_exports_as_csv(catalog_path: str, tmp_path: Path) -> None:
    code, out = audit(catalog_path, "export", "-o", str(tmp_path / "audit.csv"))
    assert code == 0
    with (tmp_path / "audit.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    events = [(r["event"], r["actor"]) for r in rows]
    assert events[:3] == [("plan", "ana"), ("approve", "lee"), ("apply_started", "ana")]
    assert ("undo_finished", "kim") in events
    steps = [r for r in rows if r["event"] == "step"]
    assert len(steps) == 12  # six duplicates quarantined, six restored
    assert all('"expected_sha256"' in r["detail"] or '"restored"' in r["detail"] for r in steps)
    assert "checked with the brand team" in rows[1]["detail"]
    assert all(rows[n]["prev_hash"] == rows[n - 1]["hash"] for n in range(1, len(rows)))


def test_the_catalog_refuses_to_change_the_log(catalog_path: str) -> None:
    refused = (sqlite3.IntegrityError, psycopg.IntegrityError)
    with pytest.raises(refused, match="append-only"):
        run_sql(catalog_path, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(refused, match="append-only"):
        run_sql(catalog_path, "DELETE FROM audit_log WHERE seq = 2")
    if catalog_path.startswith("postgresql://"):  # SQLite has no TRUNCATE; PostgreSQL's skips row triggers
        with pytest.raises(refused, match="append-only"):
            run_sql(catalog_path, "TRUNCATE audit_log")
    assert audit(catalog_path, "verify")[0] == 0


def test_an_edited_entry_is_detected(catalog_path: str) -> None:
    assert audit(catalog_path, "verify")[0] == 0
    tamper(catalog_path, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2;")

    code, out = audit(catalog_path, "verify")

    assert code == 1 and "entry 2 (approve by mallory" in out and "was edited" in out


def test_a_deleted_entry_is_detected(catalog_path: str) -> None:
    tamper(catalog_path, "DELETE FROM audit_log WHERE seq = 3;")

    code, out = audit(catalog_path, "verify")

    assert code == 1 and "entries 3..3 are missing" in out and "entry 4 does not follow" in out


def test_a_deleted_entry_rechained_by_hand_still_breaks_the_hash_of_the_next(catalog_path: str) -> None:
    rechain = "UPDATE audit_log SET prev_hash = (SELECT hash FROM audit_log WHERE seq = 2) WHERE seq = 4;"
    tamper(catalog_path, "DELETE FROM audit_log WHERE seq = 3; " + rechain)

    code, out = audit(catalog_path, "verify")

    assert code == 1 and "entry 4 (" in out and "was edited" in out


def test_a_truncated_log_is_detected_with_the_head_kept_from_an_earlier_verify(catalog_path: str) -> None:
    code, out = audit(catalog_path, "verify")
    head = out.split("head ")[1].split()[0]
    tamper(catalog_path, "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log);")

    code, out = audit(catalog_path, "verify", "--head", head)

    assert code == 1 and f"no longer holds the entry with hash {head}" in out
