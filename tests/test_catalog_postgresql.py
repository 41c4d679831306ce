"""The shared catalog on a real PostgreSQL server: scans side by side, locks, snapshots, secrets."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from dam_dedupe.catalog import StoredCluster, open_catalog
from dam_dedupe.catalog.migrations import SCHEMA_VERSION
from dam_dedupe.cli import main
from dam_dedupe.config import parse_config
from dam_dedupe.governance import Selection, apply_plan, approve, make_plan, undo_run
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan
from tests.conftest import picture, save
from tests.governance_library import make_library
from tests.servers.postgres import PostgresServer, count_rows, postgres_bin, schema_version

IMAGES = 150
"""Pictures per department: enough that two scans of 1 worker each overlap for seconds."""


def department(root: Path, first: int) -> None:
    """Pictures ``first`` to ``first + IMAGES``; a renamed copy and a smaller re-encoding of every tenth."""
    for n in range(first, first + IMAGES):
        original = save(picture(n, (640, 480)), root / f"photo-{n}.png", "PNG")
        if n % 10 == 0:
            (root / "copies").mkdir(exist_ok=True)
            (root / "copies" / f"複本 {n}.png").write_bytes(original.read_bytes())
            save(picture(n, (640, 480)).resize((320, 240)), root / "small" / f"{n}.jpg", quality=85)


def clusters_by_uri(location: str) -> set[frozenset[str]]:
    """Every stored cluster as the set of its members' URIs."""
    catalog = open_catalog(location)
    try:
        found = set()
        for cluster in catalog.clusters():
            assets = catalog.assets_by_id(asset_id for asset_id, _m, _e in cluster.members)
            found.add(frozenset(asset.record.uri for asset in assets.values()))
        return found
    finally:
        catalog.close()


def scan_command(location: str, source: Path) -> list[str]:
    return [sys.executable, "-m", "dam_dedupe", "--catalog", location, "scan", "--workers", "1", str(source)]


def test_two_scans_of_different_sources_at_once_lose_nothing(tmp_path: Path, postgres_server: PostgresServer) -> None:
    hr, marketing = tmp_path / "hr", tmp_path / "marketing"
    department(hr, 0)
    department(marketing, 100)  # pictures 100..149 are in both departments: copies across sources
    shared = postgres_server.new_database()

    scans = [
        subprocess.Popen(scan_command(shared, source), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for source in (hr, marketing)
    ]
    outcomes = [(scan.wait(timeout=600), scan.stderr.read().decode() if scan.stderr else "") for scan in scans]

    assert [code for code, _ in outcomes] == [0, 0], outcomes
    with psycopg.connect(shared) as conn:
        runs = conn.execute("SELECT started, finished FROM scan_runs ORDER BY id").fetchall()
        uris = [row[0] for row in conn.execute("SELECT uri FROM assets WHERE state = 'present'")]
    (started_a, finished_a), (started_b, finished_b) = runs
    assert started_b <= finished_a and started_a <= finished_b, "the two scans must have run at the same time"
    files = [p.resolve().as_uri() for root in (hr, marketing) for p in root.rglob("*") if p.is_file()]
    assert sorted(uris) == sorted(files)  # every file once: none lost, none twice

    alone = str(tmp_path / "alone.sqlite")  # the same sources in one scan, one after the other, into SQLite
    subprocess.run([*scan_command(alone, hr)[:-1], str(hr), str(marketing)], cwd=tmp_path, check=True)
    expected = clusters_by_uri(alone)
    assert any(any("/hr/" in uri for uri in c) and any("/marketing/" in uri for uri in c) for c in expected)
    assert clusters_by_uri(shared) == expected


def test_a_second_scan_of_a_source_being_scanned_is_refused_and_other_sources_go_on(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    hr, marketing = tmp_path / "hr", tmp_path / "marketing"
    save(picture(1), hr / "a.jpg")
    save(picture(2), marketing / "b.jpg")
    shared = postgres_server.new_database()
    running = open_catalog(shared)

    with running.scan_lock([hr.resolve().as_uri()]):  # what a scan of hr holds while it runs
        refused = CliRunner().invoke(main, ["--catalog", shared, "scan", "--workers", "1", str(hr)])
        other = CliRunner().invoke(main, ["--catalog", shared, "scan", "--workers", "1", str(marketing)])
    again = CliRunner().invoke(main, ["--catalog", shared, "scan", "--workers", "1", str(hr)])
    running.close()

    assert refused.exit_code == 1
    assert f"another scan of {hr.resolve().as_uri()} is running on this catalog (dam-dedupe " in refused.output
    assert "connected since" in refused.output
    assert other.exit_code == 0, other.output
    assert again.exit_code == 0, again.output  # the lock went with the scan that held it


def test_a_plan_reads_one_snapshot_while_another_process_replaces_the_clusters(
    tmp_path: Path, catalog_location: str
) -> None:
    root = tmp_path / "lib"
    data = save(picture(3), root / "a.jpg").read_bytes()
    (root / "b.jpg").write_bytes(data)
    config = parse_config({"matching": {"preset": "exact"}})
    reader = open_catalog(catalog_location)
    run_scan([SourceSpec(root.as_uri())], reader, Host(), config, workers=1)
    writer = open_catalog(catalog_location)
    [stored] = reader.clusters()

    with reader.snapshot():
        before = reader.clusters()
        writer.replace_clusters([StoredCluster("other", stored.canonical_asset_id, "by hand", "exact", [])])
        during = reader.clusters()
        members = reader.assets_by_id(asset_id for asset_id, _m, _e in stored.members)

    assert before == during == [stored] and len(members) == 2
    assert [c.id for c in reader.clusters()] == ["other"]  # once the snapshot ends, the new clusters show
    reader.close()
    writer.close()


def test_processes_opening_a_new_database_at_once_migrate_it_once(postgres_server: PostgresServer) -> None:
    fresh = postgres_server.new_database()
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            open_catalog(fresh).close()
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert schema_version(fresh) == SCHEMA_VERSION


def test_messages_never_show_the_password_in_the_catalog_url(postgres_server: PostgresServer) -> None:
    secret = f"postgresql://dd:s3cret-pw@127.0.0.1:{postgres_server.port}/no_such_database"
    empty = postgres_server.new_database().replace("dd@", "dd:s3cret-pw@")

    missing = CliRunner().invoke(main, ["--catalog", secret, "report", "-o", "r.html"])
    not_scanned = CliRunner().invoke(main, ["--catalog", empty, "report", "-o", "r.html"])

    assert missing.exit_code == 1 and "cannot open the catalog postgresql://dd:***@127.0.0.1" in missing.output
    assert "no_such_database" in missing.output
    assert not_scanned.exit_code == 1 and "there is no catalog at postgresql://dd:***@" in not_scanned.output
    assert "s3cret" not in missing.output + not_scanned.output


def test_without_the_postgresql_extra_the_command_names_the_install_command(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from dam_dedupe.cli import main\n"
        "main(['--catalog', 'postgresql://dd@127.0.0.1:1/x', 'scan', '.'])\n"
    )

    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)

    assert result.returncode == 1
    assert "pip install 'dam-dedupe[postgresql]'" in result.stderr
    assert "Traceback" not in result.stderr


def application_role(owner: str) -> str:
    """A role of its own for the catalog at ``owner`` (which the owner creates), granted what the workflow
    needs and no more: no DDL, and only SELECT and INSERT on the audit log. Returns its URL."""
    open_catalog(owner).close()
    role = f"dam_app_{owner.rsplit('_', 1)[1]}"
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
        conn.execute(f"REVOKE UPDATE, DELETE ON audit_log FROM {role}")
    return owner.replace("dd@", f"{role}@")


def test_a_scan_refused_by_another_roles_scan_names_what_postgresql_shows_of_it(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    save(picture(1), tmp_path / "hr" / "a.jpg")
    owner = postgres_server.new_database()
    app = application_role(owner)
    running = open_catalog(owner)  # an admin's scan as the owner; the scheduled job runs as the app's role

    with running.scan_lock([(tmp_path / "hr").resolve().as_uri()]):
        refused = CliRunner().invoke(main, ["--catalog", app, "scan", "--workers", "1", str(tmp_path / "hr")])
    running.close()

    assert refused.exit_code == 1, refused.output
    assert "is running on this catalog (dam-dedupe " in refused.output  # its name, though not its start
    assert "internal error" not in refused.output


def test_a_role_that_may_only_append_to_the_audit_log_runs_the_workflow_and_cannot_rewrite_it(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    owner = postgres_server.new_database()
    app = application_role(owner)

    lib = make_library(tmp_path, app)  # scanned by the application's role
    plan = make_plan(lib.catalog, lib.host, lib.config, "quarantine", {}, Selection(), by="ana")
    approve(lib.catalog, lib.config, plan, by="lee", role="legal")
    run = apply_plan(lib.catalog, lib.host, lib.config, plan, by="ana", out_dir=tmp_path)
    undo_run(lib.catalog, lib.host, lib.config, run.run_id, by="kim")
    lib.catalog.close()

    with psycopg.connect(app, autocommit=True) as conn:
        for sql in ("DROP TRIGGER audit_log_no_update ON audit_log", "UPDATE audit_log SET actor = 'mallory'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
    verified = CliRunner().invoke(main, ["--catalog", app, "audit", "verify"])
    assert verified.exit_code == 0, verified.output


def test_a_catalog_server_lost_mid_scan_fails_in_one_line_and_the_next_scan_completes(tmp_path: Path) -> None:
    folder = postgres_bin()
    assert folder is not None
    server = PostgresServer(folder)  # a server of its own: this test stops it
    server.start()
    try:
        location = server.new_database()
        for first in (0, 200, 400):  # 540 files: the scan commits 200 results at a time
            department(tmp_path / "hr" / str(first), first)
        files = sum(1 for p in (tmp_path / "hr").rglob("*") if p.is_file())
        scan = subprocess.Popen(scan_command(location, tmp_path / "hr"), cwd=tmp_path, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not count_rows(location, "fingerprints") and time.monotonic() < deadline:
            time.sleep(0.05)
        server.halt()  # the database server crashes mid-scan, once a first batch is committed
        code, err = scan.wait(timeout=120), scan.stderr.read().decode() if scan.stderr else ""
        server.resume()
        again = subprocess.run(
            [*scan_command(location, tmp_path / "hr"), "--json"], cwd=tmp_path, capture_output=True, text=True
        )
        stored = count_rows(location, "fingerprints")
    finally:
        server.stop()

    assert code == 1, err
    assert "the catalog's PostgreSQL server failed:" in err and "run the command again" in err
    assert "Traceback" not in err
    assert again.returncode == 0, again.stderr
    assert stored == files
    assert 0 < json.loads(again.stdout)["fingerprinted"] <= files - 200  # what the lost scan committed is kept
