"""Measure the Azure Blob adapter against a local Azurite: blobs listed/s and images fingerprinted/s.

    python benchmarks/azure_scan.py --images 1000 --list-blobs 20000 --workers 2

Needs Azurite installed in tests/servers (``npm ci`` there). It starts Azurite on a free
loopback port with its data in a temporary folder, uploads ``--list-blobs`` small blobs
and times listing them through the adapter (pages of 5,000), then uploads the benchmark
library (photo-like 1024x768 JPEGs, one in ten copied, the same generator as
``scan_library.py``) into a second container and times ``dam-dedupe scan`` over it, a
first scan and an unchanged rescan, in a child process as a user runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from azure.storage.blob import BlobServiceClient, ContainerClient  # noqa: E402

from benchmarks.scan_library import generate  # noqa: E402
from dam_dedupe.adapters.azure_blob import AzureBlobAdapter  # noqa: E402
from dam_dedupe.records import AssetRecord, SourceSpec  # noqa: E402
from tests.servers.azurite import ACCOUNT, running_azurite  # noqa: E402


def upload(container: ContainerClient, items: list[tuple[str, bytes]], threads: int = 16) -> float:
    """Upload ``(name, bytes)`` pairs in parallel; return the seconds taken."""
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: container.upload_blob(item[0], item[1]), items))
    return time.perf_counter() - started


def time_listing(container: ContainerClient) -> tuple[int, float]:
    """List the container through the adapter; return (records, seconds)."""
    adapter = AzureBlobAdapter(SourceSpec(f"azure://{ACCOUNT}/{container.container_name}"))
    started = time.perf_counter()
    count = sum(1 for item in adapter.list_assets() if isinstance(item, AssetRecord))
    elapsed = time.perf_counter() - started
    adapter.close()
    return count, elapsed


def time_scans(uri: str, workers: int, preset: str, workdir: Path) -> list[tuple[str, float, str]]:
    """Run a first scan and an unchanged rescan with the CLI; return (label, seconds, summary line)."""
    catalog = workdir / "bench.sqlite"
    runs = []
    for label in ("first scan", "rescan (unchanged)"):
        started = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "dam_dedupe",
                "--catalog",
                str(catalog),
                "scan",
                "--workers",
                str(workers),
                "--preset",
                preset,
                uri,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append((label, time.perf_counter() - started, result.stdout.strip().splitlines()[0]))
    return runs


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--list-blobs", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--preset", default="balanced")
    args = parser.parse_args()

    library = HERE / "out" / f"library-{args.images}"
    generate(library, args.images)
    files = sorted(p for p in library.rglob("*") if p.is_file())

    with tempfile.TemporaryDirectory() as tmp, running_azurite(Path(tmp) / "azurite") as azurite:
        os.environ["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
        service = BlobServiceClient.from_connection_string(azurite.connection_string)

        listing = service.create_container("listing")
        names = [(f"dept-{i % 50:02d}/IMG_{i:06d}.jpg", b"%d" % i) for i in range(args.list_blobs)]
        uploaded = upload(listing, names)
        listed, list_seconds = time_listing(listing)

        images = service.create_container("images")
        image_upload = upload(images, [(p.relative_to(library).as_posix(), p.read_bytes()) for p in files])
        runs = time_scans(f"azure://{ACCOUNT}/images", args.workers, args.preset, Path(tmp))

    print(json.dumps({"list_blobs": listed, "images": len(files), "workers": args.workers, "preset": args.preset}))
    print(f"setup: uploaded {len(names)} blobs in {uploaded:.1f}s, {len(files)} images in {image_upload:.1f}s")
    print(f"listing: {listed} blobs in {list_seconds:.2f}s, {listed / list_seconds:.0f} blobs/s")
    for label, elapsed, summary in runs:
        print(f"{label}: {elapsed:.1f}s, {len(files) / elapsed:.1f} images/s  [{summary}]")


if __name__ == "__main__":
    main()
