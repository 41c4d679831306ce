"""Time the SharePoint adapter against the Graph emulator: items listed/s and images fingerprinted/s.

    python benchmarks/sharepoint_scan.py --items 20000 --images 300 --workers 2

Three measurements, each against the emulator of tests/servers/graph.py over HTTPS on
localhost (so they time the adapter, msal, TLS and JSON, not a real tenant's latency):

1. listing: a full delta round over ``--items`` small files in nested folders, pages of
   ``--page-size`` items (Graph's own pages hold up to a few hundred), then a rescan round
   with nothing changed; also the size of the cursor the catalog keeps.
2. fingerprinting: a full scan (balanced preset, so every image is read) of ``--images``
   photo-like JPEGs of 1024x768 through the core scanner with ``--workers`` processes,
   beside the same images on local disk for reference.
3. the unchanged rescan of that library through the scanner.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))


def start_emulator(workdir: Path):
    """Start the emulator over HTTPS and point the adapter's environment at it."""
    import trustme
    from pytest_httpserver import HTTPServer

    from tests.servers.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphEmulator

    ca = trustme.CA()
    ca_pem = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = HTTPServer(host="localhost", port=0, ssl_context=context, threaded=True)
    server.start()
    emulator = GraphEmulator(server, str(ca_pem))
    os.environ.update(
        AZURE_TENANT_ID=TENANT,
        AZURE_CLIENT_ID=CLIENT_ID,
        AZURE_CLIENT_SECRET=CLIENT_SECRET,
        AZURE_AUTHORITY_HOST=emulator.base,
        DAM_DEDUPE_GRAPH_ENDPOINT=emulator.base,
        DAM_DEDUPE_CA_BUNDLE=str(ca_pem),
    )
    return server, emulator


def bench_listing(emulator, items: int, page_size: int) -> dict[str, object]:
    """Time a full delta round and an unchanged one over ``items`` files."""
    from dam_dedupe.host import Host
    from dam_dedupe.records import AssetRecord, DeltaCursor, SourceSpec
    from tests.servers.graph import library_uri

    emulator.reset()
    emulator.page_size = page_size
    for n in range(items):
        emulator.library.put(f"Dept {n % 25:02d}/项目 {n % 200:03d}/IMG_{n:06d}.jpg", n.to_bytes(4, "big"))
    adapter = Host().open_source(SourceSpec(library_uri()))
    started = time.perf_counter()
    entries = list(adapter.list_changes(None))
    full = time.perf_counter() - started
    cursor = entries[-1]
    assert isinstance(cursor, DeltaCursor)
    listed = sum(isinstance(e, AssetRecord) for e in entries)
    started = time.perf_counter()
    again = list(Host().open_source(SourceSpec(library_uri())).list_changes(cursor.value))
    rescan = time.perf_counter() - started
    return {
        "items listed": listed,
        "delta pages": len(emulator.requests("/root/delta")) - 1,
        "full round s": round(full, 2),
        "items listed/s": round(listed / full),
        "unchanged round s": round(rescan, 3),
        "unchanged round entries": len(again),
        "cursor bytes": len(cursor.value),
    }


def bench_fingerprinting(emulator, images: int, workers: int, workdir: Path) -> dict[str, object]:
    """Time full scans of the same images in the emulated library and on disk, and the unchanged rescan."""
    from dam_dedupe.catalog import open_catalog
    from dam_dedupe.config import Config
    from dam_dedupe.host import Host
    from dam_dedupe.records import SourceSpec
    from dam_dedupe.sample import _picture
    from dam_dedupe.scan import run_scan
    from tests.servers.graph import library_uri

    emulator.reset()
    emulator.page_size = 200
    local = workdir / "images"
    for n in range(images):
        path = local / f"dept-{n % 10}" / f"IMG_{n:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        _picture(n, (1024, 768)).save(path, "JPEG", quality=85)
        emulator.library.put(f"Photos/{path.relative_to(local).as_posix()}", path.read_bytes())
    results: dict[str, object] = {"images": images, "workers": workers}
    for label, uri in (("sharepoint", library_uri("Photos")), ("local disk", local.as_uri())):
        catalog = open_catalog(workdir / f"{label}.sqlite")
        started = time.perf_counter()
        summary = run_scan([SourceSpec(uri)], catalog, Host(), Config(), workers=workers)
        elapsed = time.perf_counter() - started
        assert summary.fingerprinted == images and summary.errors == 0, summary
        results[f"{label}: images fingerprinted/s"] = round(images / elapsed, 1)
        if label == "sharepoint":
            emulator.log.clear()
            started = time.perf_counter()
            summary = run_scan([SourceSpec(uri)], catalog, Host(), Config(), workers=workers)
            results["sharepoint: unchanged rescan s"] = round(time.perf_counter() - started, 2)
            results["sharepoint: unchanged rescan Graph requests"] = len(emulator.graph_requests())
            results["sharepoint: unchanged rescan downloads"] = len(emulator.requests("/download/"))
    return results


def main() -> None:
    """Run the benchmarks and print their figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20000, help="files in the listing benchmark")
    parser.add_argument("--page-size", type=int, default=200, help="delta page size of the emulator")
    parser.add_argument("--images", type=int, default=300, help="images in the fingerprinting benchmark")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per emulated request otherwise
    with tempfile.TemporaryDirectory(prefix="dam-dedupe-sharepoint-bench-") as tmp:
        workdir = Path(tmp)
        server, emulator = start_emulator(workdir)
        try:
            print(json.dumps({"listing": bench_listing(emulator, args.items, args.page_size)}, ensure_ascii=False))
            figures = bench_fingerprinting(emulator, args.images, args.workers, workdir)
            print(json.dumps({"fingerprinting": figures}, ensure_ascii=False))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
