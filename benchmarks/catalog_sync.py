"""What ``PRAGMA synchronous = FULL`` (every commit fsynced) costs a scan, against ``NORMAL``.

    python benchmarks/catalog_sync.py --files 20000 --rounds 2

A tree of small files that are not images (listed, recorded, never decoded) makes the
catalog's commits the scan's main cost: a first scan (every asset new) and a rescan
(every asset unchanged), each timed with both settings back to back, ``rounds`` times,
so that load from other processes falls on both alike. Prints seconds per scan.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import Config
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan


def make_tree(root: Path, count: int) -> None:
    """``count`` small text files in 50 folders."""
    for n in range(count):
        folder = root / f"dept-{n % 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"note-{n:06d}.txt").write_bytes(b"x" * (n % 997))


def timed_scans(root: Path, catalog_path: Path, synchronous: str) -> tuple[float, float]:
    """Seconds for a first scan and for a rescan of ``root`` into a new catalog with this setting."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(catalog_path) + suffix).unlink(missing_ok=True)
    catalog = open_catalog(catalog_path)
    catalog.conn.execute(f"PRAGMA synchronous = {synchronous}")
    spec, host, config = SourceSpec(root.as_uri()), Host(), Config()
    started = time.perf_counter()
    run_scan([spec], catalog, host, config, workers=1)
    first = time.perf_counter() - started
    started = time.perf_counter()
    run_scan([spec], catalog, host, config, workers=1)
    again = time.perf_counter() - started
    catalog.close()
    return first, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        root, catalog_path = Path(tmp) / "tree", Path(tmp) / "bench.sqlite"
        make_tree(root, args.files)
        results: dict[str, list[tuple[float, float]]] = {"NORMAL": [], "FULL": []}
        for _ in range(args.rounds):
            for setting in results:
                results[setting].append(timed_scans(root, catalog_path, setting))
        for setting, runs in results.items():
            first = min(r[0] for r in runs)
            again = min(r[1] for r in runs)
            print(f"synchronous={setting:6s} first scan {first:6.2f} s  rescan {again:6.2f} s  ({args.files} files)")


if __name__ == "__main__":
    main()
