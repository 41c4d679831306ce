"""Matching from a PostgreSQL catalog with the index in 1, 2 and 4 shards on a Dask cluster, verifying there.

    .venv/bin/python -m benchmarks.sharded_match --postgres postgresql://dd@127.0.0.1:5432/postgres \\
        --sizes 100000 200000 --shards 1 2 4

The synthetic libraries are ``benchmarks/synthetic_match.py``'s (made once into SQLite under
``benchmarks/out/synthetic/``), copied into a database of their own on the server ``--postgres``
names (``dam_bench_zipf_SIZE``, kept and reused). For each shard count, the match runs in a fresh
process on that database, as ``dam-dedupe match --index-shards N --scheduler ...`` does; the Dask
scheduler and workers (one a shard, one thread each) are started for it as ``dask scheduler`` and
``dask worker`` processes. On the cluster the candidates are verified on the workers too, as the
command does (``--verify-here``: in the matching process, as before that was built). Printed: wall and
CPU time of the matching process, its floor and peak resident memory, each worker's peak, and whether
the clusters are those of the unsharded match.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psycopg

from benchmarks.big_clusters import Measured, _resident_mib
from benchmarks.synthetic_match import catalog_of
from dam_dedupe.catalog import open_catalog
from dam_dedupe.clustering import build_clusters
from dam_dedupe.config import Config
from dam_dedupe.host import Host

COPIED = {
    "sources": ["id", "uri", "name", "cursor", "forgotten"],
    "scan_runs": ["id", "started", "finished", "status", "sources"],
    "assets": [
        "id",
        "source_id",
        "key",
        "uri",
        "name",
        "size",
        "modified",
        "metadata",
        "state",
        "content",
        "first_seen_run",
        "last_seen_run",
    ],
    "fingerprints": [
        "asset_id",
        "sha256",
        "size",
        "width",
        "height",
        "format",
        "metadata_fields",
        "perceptual",
        "thumbnail",
        "version",
        "preview",
        "frames",
    ],
}
"""The columns copied from the SQLite catalog, table by table (the others keep their defaults)."""


def database_of(server: str, size: int, workers: int) -> str:
    """The URL of the PostgreSQL copy of the synthetic catalog of ``size`` files (made once)."""
    name = f"dam_bench_zipf_{size}"
    url = server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(server, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return url
        path, _ = catalog_of(size, workers)
        admin.execute(f"CREATE DATABASE {name}_partial")
    partial = url + "_partial"
    open_catalog(partial).close()  # the schema
    started = time.perf_counter()
    source = sqlite3.connect(path)
    with psycopg.connect(partial) as target:
        for table, columns in COPIED.items():
            listed = ", ".join(columns)
            with target.cursor().copy(f"COPY {table} ({listed}) FROM STDIN") as copy:
                for row in source.execute(f"SELECT {listed} FROM {table}"):
                    copy.write_row(row)
            if table != "fingerprints":
                target.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        target.execute("ANALYZE")
    source.close()
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {name}_partial RENAME TO {name}")
    print(f"  copied {size:,d} fingerprints into PostgreSQL in {time.perf_counter() - started:.0f} s", flush=True)
    return url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _match(
    location: str, scheduler: str | None, shards: int, verify_here: bool
) -> tuple[Measured, list[frozenset[int]]]:
    """In the child process: what matching cost, and the clusters (as sets of asset ids)."""
    catalog = open_catalog(location)
    floor = _resident_mib("VmRSS")
    started, processor = time.perf_counter(), time.process_time()
    if scheduler is None:
        build_clusters(catalog, Config(), Host())
    else:
        from dam_dedupe.dask_executor import DaskCluster
        from dam_dedupe.dask_index import DaskIndex
        from dam_dedupe.dask_verify import DaskVerifier

        with DaskCluster(scheduler, shards) as cluster:
            verifier = None if verify_here else DaskVerifier(cluster)
            build_clusters(catalog, Config(), Host(), index=DaskIndex(cluster, shards), verifier=verifier)
    elapsed, processor = time.perf_counter() - started, time.process_time() - processor
    measured = Measured(elapsed, processor, floor, _resident_mib("VmHWM"))
    clusters = [frozenset(asset_id for asset_id, _, _ in cluster.members) for cluster in catalog.clusters()]
    catalog.close()
    return measured, clusters


def _worker_peak() -> float:
    """A worker's peak resident memory in MiB (run on the workers, which cannot import ``benchmarks``:
    this module is sent to them by value)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(location: str, shards: int, verify_here: bool) -> tuple[Measured, list[float], list[frozenset[int]]]:
    """Match ``location`` with ``shards`` index shards (1: no cluster) in a fresh process, verifying on
    the cluster unless ``verify_here``."""
    context = multiprocessing.get_context("spawn")
    if shards == 1:
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            measured, clusters = pool.submit(_match, location, None, 1, True).result()
        return measured, [], clusters
    import cloudpickle
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    null = subprocess.DEVNULL
    scheduler = subprocess.Popen([dask, "scheduler", "--port", str(port), "--no-dashboard"], stdout=null, stderr=null)
    workers = subprocess.Popen(
        [
            dask,
            "worker",
            address,
            "--nworkers",
            str(shards),
            "--nthreads",
            "1",
            "--no-dashboard",
            "--memory-limit",
            "0",
        ],
        stdout=null,
        stderr=null,
    )
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(shards, timeout=60)
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                measured, clusters = pool.submit(_match, location, address, shards, verify_here).result()
            peaks = sorted(client.run(_worker_peak).values())
        return measured, peaks, clusters
    finally:
        for process in (workers, scheduler):
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", required=True, help="a PostgreSQL server's URL (its databases are created)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--workers", type=int, default=2, help="processes that make the fingerprints")
    parser.add_argument(
        "--verify-here", action="store_true", help="verify candidates in the matching process, not on the workers"
    )
    args = parser.parse_args()
    for size in args.sizes:
        location = database_of(args.postgres, size, args.workers)
        alone: set[frozenset[int]] | None = None
        for shards in args.shards:
            measured, peaks, clusters = measure(location, shards, args.verify_here)
            same = "" if alone is None else f"; clusters {'the same as' if set(clusters) == alone else 'NOT'} unsharded"
            alone = set(clusters) if alone is None else alone
            workers = ", ".join(f"{peak:.0f}" for peak in peaks) or "none"
            where = "in this process" if shards == 1 else f"in {shards} shards"
            if shards > 1:
                where += ", verified " + ("in this process" if args.verify_here else "on the workers")
            print(
                f"zipf {size:>9,d} files, index {where}: match {measured.elapsed:7.1f} s "
                f"(CPU {measured.processor:7.1f} s), matching process {measured.floor:.0f} -> {measured.peak:.0f} MiB, "
                f"workers' peaks {workers} MiB; {len(clusters):,d} clusters{same}",
                flush=True,
            )


if __name__ == "__main__":
    main()
