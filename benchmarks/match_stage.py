"""The match stage of a scan on a labelled corpus, apart from fingerprinting.

The corpus is one that ``benchmarks/corpus.py`` writes (``labels.json`` beside the files). Its
files are fingerprinted once, as the scan does, and the fingerprints cached under
``benchmarks/out/match_stage/``; each run then stores them in a fresh SQLite catalog and times
:func:`~dam_dedupe.clustering.build_clusters` (grouping, canonicals and every member's
evidence, as ``dam-dedupe match`` runs it) with cold caches, in a fresh process. It prints the
wall and processor time of each run, and with ``--profile`` a pyinstrument profile of one more
run (``pip install pyinstrument``). ``--clusters FILE`` writes every cluster member's canonical,
match and evidence, sorted, so that two versions of the matcher can be compared byte for byte.

Run from the repository root::

    .venv/bin/python -m benchmarks.match_stage CORPUS [--runs 3] [--profile] [--clusters FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import pickle
import sqlite3
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from dam_dedupe.catalog import open_catalog
from dam_dedupe.clustering import build_clusters
from dam_dedupe.config import Config
from dam_dedupe.fingerprint import FINGERPRINT_VERSION, fingerprint_stream
from dam_dedupe.host import Host
from dam_dedupe.records import AssetRecord, Fingerprint, SourceSpec

OUT = Path(__file__).parent / "out" / "match_stage"
ROOT = "file:///srv/corpus"
MODIFIED = datetime(2024, 1, 1, tzinfo=UTC)


def _fingerprint(path: str) -> Fingerprint:
    with open(path, "rb") as stream:
        return fingerprint_stream(stream)


def fingerprints(corpus: Path, workers: int) -> list[tuple[str, Fingerprint]]:
    """(file name, fingerprint) of every file the corpus labels, made once and cached."""
    names = [entry["file"] for entry in json.loads((corpus / "labels.json").read_text())["files"]]
    cache = OUT / f"{corpus.name}-{len(names)}-v{FINGERPRINT_VERSION}.pickle"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    with ProcessPoolExecutor(workers) as pool:
        made = list(pool.map(_fingerprint, [str(corpus / name) for name in names], chunksize=8))
    OUT.mkdir(parents=True, exist_ok=True)
    files = list(zip(names, made, strict=True))
    cache.write_bytes(pickle.dumps(files))
    return files


def run(files: list[tuple[str, Fingerprint]], profile: bool, clusters: str | None) -> tuple[float, float, str]:
    """Time one match of ``files`` in this (fresh) process: (wall s, processor s, profile text)."""
    folder = Path(tempfile.mkdtemp())
    catalog = open_catalog(folder / "catalog.db")
    source = catalog.source_id(SourceSpec(ROOT, "corpus"))
    scan = catalog.begin_run([ROOT])
    with catalog.transaction():
        for name, fp in files:
            record = AssetRecord(ROOT, name, f"{ROOT}/{name}", fp.size, MODIFIED, name=name)
            catalog.record_listed(source, record, scan)
            asset = catalog.asset_by_uri(record.uri)
            assert asset is not None
            catalog.store_fingerprint(asset.id, fp)
    host = Host()
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002)
        profiler.start()
    wall, processor = time.perf_counter(), time.process_time()
    build_clusters(catalog, Config(), host)
    wall, processor = time.perf_counter() - wall, time.process_time() - processor
    text = ""
    if profiler is not None:
        profiler.stop()
        text = profiler.output_text(unicode=False, color=False)
    if clusters:
        with sqlite3.connect(folder / "catalog.db") as db:
            rows = db.execute(
                "SELECT c.canonical_asset_id, m.asset_id, m.match, m.evidence"
                " FROM cluster_members m JOIN clusters c ON c.id = m.cluster_id"
            ).fetchall()
        Path(clusters).write_text("\n".join(json.dumps(row) for row in sorted(rows)) + "\n")
    return wall, processor, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile one more run with pyinstrument")
    parser.add_argument("--clusters", help="write the clusters found (sorted, one member a line) to this file")
    parser.add_argument("--workers", type=int, default=2, help="processes that fingerprint the corpus once")
    args = parser.parse_args()
    if args.profile and importlib.util.find_spec("pyinstrument") is None:
        parser.exit(2, "--profile needs pyinstrument: .venv/bin/pip install pyinstrument\n")
    files = fingerprints(args.corpus, args.workers)
    spawn = multiprocessing.get_context("spawn")
    for number in range(args.runs + args.profile):
        profile = args.profile and number == args.runs
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            wall, processor, text = pool.submit(run, files, profile, args.clusters if number == 0 else None).result()
        print(f"files {len(files):,}  match {wall:6.2f} s  (cpu {processor:6.2f} s){'  profiled' if profile else ''}")
        if text:
            print(text)


if __name__ == "__main__":
    main()
