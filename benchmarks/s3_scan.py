"""Measure the S3 adapter against a local moto server: objects listed per second, images fingerprinted per second.

    python benchmarks/s3_scan.py --images 2000 --workers 2

Starts moto in server mode on 127.0.0.1, uploads ``--images`` small generated JPEGs
(one in ten with a byte-identical copy under another key), then times:

* listing: the adapter's ``list_assets`` over the whole bucket (pages of 1,000 keys);
* a first scan and an unchanged rescan, each with the CLI in a child process, as a user runs it.

moto is a Python server sharing these CPUs, so the figures are a floor for the adapter,
not a forecast for Amazon S3. Needs the ``s3`` and ``test`` extras (boto3, moto[server]).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer
from PIL import Image, ImageDraw

BUCKET = "dam-dedupe-bench"


def jpeg(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A distinct small picture per seed, as JPEG bytes."""
    img = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 29) % 256))
    draw = ImageDraw.Draw(img)
    for i in range(0, size[0], 12 + seed % 9):
        draw.line([(i, 0), (i + seed % 60, size[1])], fill=((seed * 11 + i) % 256, 40, 200), width=3)
    r = 20 + seed % 40
    cx, cy = (seed * 37) % size[0], (seed * 61) % size[1]
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, 250 - seed % 200, 10))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def upload(client: object, count: int) -> int:
    """Put ``count`` pictures and a copy of one in ten; return the number of objects."""

    def put(n: int) -> int:
        data = jpeg(n)
        client.put_object(Bucket=BUCKET, Key=f"dept-{n % 20:02d}/IMG_{n:05d}.jpg", Body=data)  # type: ignore[attr-defined]
        if n % 10 == 0:
            client.put_object(Bucket=BUCKET, Key=f"copies/copy of {n}.jpg", Body=data)  # type: ignore[attr-defined]
            return 2
        return 1

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(put, range(count)))


def time_listing() -> tuple[int, float]:
    """List the bucket with the adapter; return (objects, seconds)."""
    from dam_dedupe.host import Host
    from dam_dedupe.records import SourceSpec

    adapter = Host().open_source(SourceSpec(f"s3://{BUCKET}"))
    started = time.perf_counter()
    listed = sum(1 for _ in adapter.list_assets())
    elapsed = time.perf_counter() - started
    adapter.close()
    return listed, elapsed


def time_scan(catalog: Path, workers: int, env: dict[str, str]) -> tuple[float, str]:
    """Run ``dam-dedupe scan`` in a child process; return (seconds, its summary line)."""
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
            f"s3://{BUCKET}",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return time.perf_counter() - started, result.stdout.strip().splitlines()[0]


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
    )
    os.environ.update(env)
    try:
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        started = time.perf_counter()
        objects = upload(client, args.images)
        print(f"uploaded {objects} objects in {time.perf_counter() - started:.1f}s")

        listed, list_seconds = time_listing()
        with tempfile.TemporaryDirectory() as tmp:
            catalog = Path(tmp) / "bench.sqlite"
            first = time_scan(catalog, args.workers, env)
            again = time_scan(catalog, args.workers, env)
    finally:
        server.stop()

    print(json.dumps({"objects": objects, "workers": args.workers, "cpus": os.cpu_count()}))
    print(f"listing: {listed} objects in {list_seconds:.2f}s, {listed / list_seconds:.0f} objects/s")
    for label, (seconds, summary) in (("first scan", first), ("rescan (unchanged)", again)):
        print(f"{label}: {seconds:.1f}s, {objects / seconds:.0f} objects/s  [{summary}]")


if __name__ == "__main__":
    main()
