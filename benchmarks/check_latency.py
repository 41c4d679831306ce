"""``/v1/check`` latency (p50, p95) and throughput for a 2 MP JPEG against catalogs of many fingerprints.

    .venv/bin/python -m benchmarks.check_latency --sizes 1000 100000 --requests 200 --copies 2

For each size, fills a fresh catalog (in a temporary folder) through the catalog API with that many
fingerprints: synthetic ones (random hash codes, no thumbnail: the index holds only codes, and random
codes are never candidates) plus ``--copies`` real copies of the test picture (resized, re-encoded), which
each check verifies as the scan would: that verification, not the index, is most of a check's time.
Then starts ``dam-dedupe serve`` as its own process on a free loopback port and, from this process,
sends the 2 MP JPEG ``--requests`` times one after another (latency) and for ``--seconds`` from
``--clients`` threads at once (throughput).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image, ImageDraw

from dam_dedupe.catalog import RunCounts, open_catalog
from dam_dedupe.fingerprint import fingerprint_stream
from dam_dedupe.records import AssetRecord, Fingerprint, SourceSpec


def two_megapixel_jpeg() -> bytes:
    """A 1632x1224 (2.0 MP) photograph-like JPEG."""
    rng = np.random.default_rng(7)
    base = rng.normal(128, 50, (12, 16, 3)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(base).resize((1632, 1224), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for i in range(12):
        draw.ellipse([100 * i, 80 * i, 100 * i + 300, 80 * i + 200], fill=(20 * i, 200 - 10 * i, 90))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=88)
    return out.getvalue()


def variants(body: bytes, copies: int) -> list[bytes]:
    """Real copies of the picture: resized and re-encoded."""
    img = Image.open(io.BytesIO(body))
    found = []
    for k in range(copies):
        out = io.BytesIO()
        img.resize((1632 - 100 * k, 1224 - 75 * k)).save(out, "JPEG", quality=70 + k)
        found.append(out.getvalue())
    return found


def fill(path: Path, size: int, body: bytes, copies: int) -> None:
    """Write ``size`` fingerprints through the catalog API."""
    catalog = open_catalog(path)
    rng = np.random.default_rng(size)
    codes = rng.integers(0, 2**63, size=(size, 4), dtype=np.int64)
    real = [fingerprint_stream(io.BytesIO(v)) for v in variants(body, copies)]
    with catalog.transaction():
        run_id = catalog.begin_run(["file:///bench"])
        source = catalog.source_id(SourceSpec("file:///bench"))
        for i in range(size):
            record = AssetRecord("file:///bench", f"{i}.jpg", f"file:///bench/{i}.jpg", 100_000 + i, None)
            catalog.record_listed(source, record, run_id)
            if i < len(real):
                fp = real[i]
            else:
                dct, low, centre, grad = (int(c) for c in codes[i])
                fp = Fingerprint(
                    sha256=f"{i:064x}",
                    size=100_000 + i,
                    width=1600,
                    height=1200,
                    format="JPEG",
                    perceptual={
                        "dct": f"{dct:016x}",
                        "low": f"{low:016x}",
                        "centre": f"{centre:016x}",
                        "grad": f"{grad:032x}",
                        "chroma": "00" * 32,
                        "tone": "120.00,40.00",
                    },
                    thumbnail=None,
                )
            catalog.store_fingerprint(i + 1, fp)
        catalog.finish_run(run_id, RunCounts(), "finished")
    catalog.close()


def server_time(header: str) -> float:
    """Milliseconds the service says it spent (the sum of its ``Server-Timing`` durations)."""
    return sum(float(part.split("dur=")[1]) for part in header.split(","))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(size: int, body: bytes, copies: int, count: int, clients: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "catalog.sqlite"
        started = time.perf_counter()
        fill(path, size, body, copies)
        filled = time.perf_counter() - started
        cli = [sys.executable, "-m", "dam_dedupe", "--catalog", str(path)]
        made = subprocess.run([*cli, "tokens", "create", "bench", "--scope", "check"], capture_output=True, text=True)
        token = made.stdout.strip().splitlines()[-1]
        port = free_port()
        server = subprocess.Popen([*cli, "serve", "--port", str(port)], stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    if requests.get(url + "/v1/health", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    time.sleep(0.2)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
            session = requests.Session()
            matches = len(session.post(url + "/v1/check", data=body, headers=headers).json()["matches"])
            times, inside = [], []
            for _ in range(count):
                t = time.perf_counter()
                answer = session.post(url + "/v1/check", data=body, headers=headers)
                answer.raise_for_status()
                times.append((time.perf_counter() - t) * 1000)
                inside.append(server_time(answer.headers["Server-Timing"]))
            done = [0]
            stop = time.perf_counter() + seconds

            def client() -> None:
                own = requests.Session()
                while time.perf_counter() < stop:
                    own.post(url + "/v1/check", data=body, headers=headers).raise_for_status()
                    done[0] += 1

            threads = [threading.Thread(target=client) for _ in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            server.terminate()
            server.wait(10)
    times.sort()
    inside.sort()
    return {
        "fingerprints": size,
        "fill_seconds": round(filled, 1),
        "matches": matches,
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
        "server_p50_ms": round(statistics.median(inside), 1),
        "server_p95_ms": round(inside[int(0.95 * (len(inside) - 1))], 1),
        "requests_per_second": round(done[0] / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--copies", type=int, default=2, help="Real copies of the picture in the catalog (<= 10).")
    args = parser.parse_args()
    body = two_megapixel_jpeg()
    print(f"body: {len(body):,} bytes, 1632x1224; load average {os.getloadavg()}")
    for size in args.sizes:
        print(json.dumps(measure(size, body, args.copies, args.requests, args.clients, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
