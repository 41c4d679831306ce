"""The whole ``dam-dedupe scan`` into a SQLite file and into a PostgreSQL database, side by side.

    .venv/bin/python benchmarks/corpus.py /tmp/c20 --limit 20
    .venv/bin/python -m benchmarks.catalog_backends /tmp/c20 --postgres postgresql://dd@127.0.0.1:55432/postgres
    .venv/bin/python -m benchmarks.catalog_backends --notes 20000 --postgres postgresql://dd@127.0.0.1:55432/postgres

Each round scans the library into a new catalog of each kind (the command a user runs, in a
subprocess, every extra installed), then scans it again unchanged (a rescan, which is almost all
catalog work), alternating the back ends so that the machine's drift falls on both. Printed: the
median and range of each, and whether both catalogs hold the same clusters. ``--notes N`` scans
N small text files in folders of 200 instead (never read: a scan of them is all listing and catalog).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

DATABASE = "dam_bench_backends"


def timed(catalog: str, library: Path, workers: int) -> float:
    """Seconds one ``dam-dedupe scan`` took."""
    command = [sys.executable, "-m", "dam_dedupe", "--catalog", catalog, "scan", str(library)]
    started = time.perf_counter()
    subprocess.run([*command, "--workers", str(workers)], check=True, capture_output=True)
    return time.perf_counter() - started


def clusters(catalog: str, folder: Path) -> list[list[str]]:
    """The catalog's clusters, each as its members' URIs, sorted."""
    out = folder / "report.json"
    subprocess.run(
        [sys.executable, "-m", "dam_dedupe", "--catalog", catalog, "report", "--format", "json", "-o", str(out)],
        check=True,
        capture_output=True,
    )
    found = json.loads(out.read_text(encoding="utf-8"))["clusters"]
    return sorted(sorted(member["uri"] for member in cluster["members"]) for cluster in found)


def fresh_database(server: str) -> str:
    """An empty database on ``server``; its URL."""
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    return server.rsplit("/", 1)[0] + "/" + DATABASE


def notes(root: Path, count: int) -> Path:
    """``count`` small text files, 200 a folder: what a scan lists and records but never reads."""
    for n in range(count):
        folder = root / f"dept-{n // 200:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"note-{n}.txt").write_text(f"note {n}\n", encoding="utf-8")
    return root


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("library", type=Path, nargs="?", help="the folder to scan (or --notes)")
    parser.add_argument("--notes", type=int, default=0, help="scan this many generated text files instead")
    parser.add_argument("--postgres", required=True, help="a PostgreSQL server's URL (a database is created)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"sqlite": [], "postgresql": [], "sqlite rescan": [], "postgresql rescan": []}
    with tempfile.TemporaryDirectory() as folder:
        library = args.library or notes(Path(folder) / "notes", args.notes)
        file = str(Path(folder) / "c.sqlite")
        for _ in range(args.repeat):
            for leftover in Path(folder).glob("c.sqlite*"):
                leftover.unlink()
            database = fresh_database(args.postgres)
            for kind, catalog in (("sqlite", file), ("postgresql", database)):
                times[kind].append(timed(catalog, library, args.workers))
                times[f"{kind} rescan"].append(timed(catalog, library, args.workers))
        same = clusters(file, Path(folder)) == clusters(database, Path(folder))
    for kind, values in times.items():
        print(f"{kind:>18}: {summary(values)}")
    print(f"same clusters in both catalogs: {same}")


if __name__ == "__main__":
    main()
