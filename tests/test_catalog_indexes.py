"""The catalog answers the plan's and report's lookups through indexes, also after an upgrade."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from dam_dedupe.catalog import SqliteCatalog, open_catalog
from dam_dedupe.catalog.migrations import MIGRATIONS, SCHEMA_VERSION


def version_3_catalog(path: Path) -> None:
    """A catalog as dam-dedupe left it before migration 4: one source, a run, two assets, problems of two runs."""
    conn = sqlite3.connect(path)
    for number in range(3):
        conn.executescript(f"BEGIN; {MIGRATIONS[number]} PRAGMA user_version = {number + 1}; COMMIT;")
    conn.execute("INSERT INTO sources (id, uri) VALUES (1, 'file:///lib')")
    conn.executemany(
        "INSERT INTO scan_runs (id, started, status, sources) VALUES (?, 't', 'finished', '[]')", [(1,), (2,)]
    )
    conn.executemany(
        "INSERT INTO assets (source_id, key, uri, name, size, first_seen_run, last_seen_run)"
        " VALUES (1, ?, ?, ?, 1, 1, 2)",
        [(f"{n}.jpg", f"file:///lib/{n}.jpg", f"{n}.jpg") for n in ("a", "b")],
    )
    conn.executemany(
        "INSERT INTO problems (run_id, source_id, uri, reason) VALUES (?, 1, ?, 'denied')",
        [(1, "file:///lib/old"), (2, "file:///lib/new")],
    )
    conn.commit()
    conn.close()


def query_plans(catalog: SqliteCatalog, call: Callable[[], object]) -> list[str]:
    """The steps of SQLite's query plan for every SELECT that ``call`` makes on the catalog."""
    statements: list[str] = []
    catalog.conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        catalog.conn.set_trace_callback(None)
    steps = []
    for sql in statements:
        if sql.lstrip().upper().startswith("SELECT"):
            steps += [row[3] for row in catalog.conn.execute("EXPLAIN QUERY PLAN " + sql)]
    return steps


def test_an_upgraded_catalog_finds_assets_by_uri_and_latest_problems_through_indexes(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    version_3_catalog(path)

    catalog = open_catalog(path)
    try:
        assert catalog.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        found = catalog.asset_by_uri("file:///lib/b.jpg")
        assert found is not None and found.record.key == "b.jpg"
        assert [p.uri for p in catalog.problems()] == ["file:///lib/new"]

        by_uri = query_plans(catalog, lambda: catalog.asset_by_uri("file:///lib/b.jpg"))
        assert by_uri and not any(step.startswith("SCAN") for step in by_uri), by_uri
        problems = query_plans(catalog, catalog.problems)
        # each problem row finds its source's latest run in an index, not by building one per query
        assert not any("AUTOMATIC" in step or step == "SCAN q" for step in problems), problems
    finally:
        catalog.close()
