"""Time the catalog lookups a plan and a report make, on a synthetic catalog of many assets.

    .venv/bin/python -m benchmarks.catalog_queries --assets 100000 --problems 20000

Fills a fresh catalog (in a temporary folder) with ``--assets`` assets, one in fifty failed
or skipped, the rest fingerprinted and grouped three or two to a cluster; ``--problems``
listing problems spread over 20 scan runs; a rights analysis on one image in twenty and
1,000 stored decisions. Prints seconds per lookup and for ``build_report`` as a whole.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dam_dedupe.catalog import SqliteCatalog, open_catalog
from dam_dedupe.report import build_report

RUNS = 20


def fill(catalog: SqliteCatalog, assets: int, problems: int) -> None:
    """Write the synthetic catalog with plain SQL (the scan would take hours to make as much)."""
    conn = catalog.conn
    with catalog.transaction():
        conn.execute("INSERT INTO sources (id, uri, name) VALUES (1, 'file:///lib', 'lib')")
        conn.executemany("INSERT INTO scan_runs (started, status, sources) VALUES ('t', 'finished', '[]')", [()] * RUNS)
        conn.executemany(
            "INSERT INTO assets (id, source_id, key, uri, name, size, content, first_seen_run, last_seen_run)"
            " VALUES (?, 1, ?, ?, ?, ?, ?, 1, ?)",
            [
                (
                    i,
                    f"k/{i}.jpg",
                    f"file:///lib/k/{i}.jpg",
                    f"{i}.jpg",
                    1000 + i % 5000,
                    "image" if i % 50 else ("error", "not_image", "skipped")[i % 3],
                    RUNS,
                )
                for i in range(1, assets + 1)
            ],
        )
        conn.executemany(
            "INSERT INTO fingerprints (asset_id, sha256, size, width, height, format)"
            " VALUES (?, ?, 1000, 10, 10, 'JPEG')",
            [(i, f"{i // 3:064x}") for i in range(1, assets + 1) if i % 50],
        )
        clusters = range(1, assets // 3)
        conn.executemany(
            "INSERT INTO clusters VALUES (?, ?, 'oldest copy', 'exact')", [(f"c-{g:016x}", 3 * g) for g in clusters]
        )
        conn.executemany(
            "INSERT INTO cluster_members VALUES (?, ?, 'exact', '{}')",
            [(f"c-{g:016x}", i) for g in clusters for i in (3 * g, 3 * g + 1, 3 * g + 2)[: 2 + g % 2]],
        )
        conn.executemany(
            "INSERT INTO problems (run_id, source_id, uri, reason) VALUES (?, 1, ?, 'access denied')",
            [(1 + i % RUNS, f"file:///lib/denied/{i}") for i in range(problems)],
        )
        conn.executemany(
            "INSERT INTO analyses (asset_id, analyser, sha256) VALUES (?, 'rights', ?)",
            [(i, f"{i // 3:064x}") for i in range(1, assets, 20)],
        )
        conn.executemany(
            "INSERT INTO review_decisions (cluster_id, decision, members, decided_by, decided_at, imported_at)"
            " VALUES (?, 'keep_all', '[]', 'reviewer', 't', 't')",
            [(f"c-{g:016x}",) for g in range(1, 1001)],
        )
    conn.execute("ANALYZE")


def timed(label: str, call: Callable[[], object]) -> None:
    """Run ``call`` once and print how long it took."""
    start = time.perf_counter()
    call()
    print(f"{label:32} {time.perf_counter() - start:8.3f} s")


def main() -> None:
    """Build the catalog and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--problems", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        catalog = open_catalog(Path(folder) / "catalog.sqlite")
        try:
            fill(catalog, args.assets, args.problems)
            step = max(1, args.assets // 100)
            uris = [f"file:///lib/k/{i}.jpg" for i in range(1, args.assets + 1, step)]
            timed(f"asset_by_uri x{len(uris)}", lambda: [catalog.asset_by_uri(uri) for uri in uris])
            timed("clusters", catalog.clusters)
            timed("standing_decisions", catalog.standing_decisions)
            timed("problems", catalog.problems)
            timed("analyses", catalog.analyses)
            timed("name_size_rows", catalog.name_size_rows)
            timed("build_report", lambda: build_report(catalog))
        finally:
            catalog.close()


if __name__ == "__main__":
    main()
