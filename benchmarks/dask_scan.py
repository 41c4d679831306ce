"""Images/s of the whole ``dam-dedupe scan`` on a local Dask cluster of 1, 2 and 4 workers, against the local pool.

    python -m benchmarks.dask_scan --images 2000 --dask-workers 1 2 4 --pool-workers 1 2 --repeat 3

The library is ``benchmarks/scan_library.py``'s (photo-like JPEGs of 1024x768, one in ten copied).
Each scan is the real command in a child process, into a new catalog, with every installed
analyser on; each figure is the median of ``--repeat`` scans (the range after it). The Dask runs
use ``--scheduler`` with a ``LocalCluster`` started here (one thread per worker process), whose
workers have already imported the scan's modules, as those of a long-running cluster have; the
pool runs start their own workers, as a scan always does.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.scan_library import HERE, generate


def scan(library: Path, *options: str) -> tuple[float, str]:
    """(wall seconds, summary line) of one scan of ``library`` into a new catalog."""
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "dam_dedupe", "--catalog", f"{work}/c.sqlite", "scan", *options, str(library)],
            capture_output=True,
            text=True,
            check=True,
        )
        return time.perf_counter() - started, result.stdout.strip().splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--dask-workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--pool-workers", type=int, nargs="+", default=[2])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    library = HERE / "out" / f"library-{args.images}"
    generate(library, args.images)
    images = sum(1 for _ in library.rglob("*.jpg"))
    print(f"library: {library}, {images} images")
    rows = []
    for workers in args.pool_workers:
        runs = [scan(library, "--workers", str(workers)) for _ in range(args.repeat)]
        rows.append((f"local pool, {workers} processes", runs))
    for workers in args.dask_workers:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.WARNING
        )
        try:
            with Client(cluster) as client:
                client.run(importlib.import_module, "dam_dedupe.scan")
            runs = [scan(library, "--scheduler", cluster.scheduler_address) for _ in range(args.repeat)]
        finally:
            cluster.close()
        rows.append((f"Dask, {workers} workers", runs))
    for label, runs in rows:
        times = sorted(elapsed for elapsed, _ in runs)
        middle = statistics.median(times)
        print(
            f"{label}: {middle:.1f} s ({times[0]:.1f}-{times[-1]:.1f}), {images / middle:.0f} images/s  [{runs[0][1]}]"
        )


if __name__ == "__main__":
    main()
