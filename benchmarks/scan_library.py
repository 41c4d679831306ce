"""Time a scan of a generated library and print images/s and peak memory.

    python benchmarks/scan_library.py --images 5000 --workers 2

The library (photo-like JPEGs of 1024x768, one in ten with a byte-identical copy
elsewhere) is generated once into benchmarks/out/ and reused. The scan runs in a
child process, as a user runs it; peak memory is the largest resident set of the
scanning process and of any one worker (on Linux this script reaps the fork server the
workers are forked from, which the scan leaves to exit after it, so that its workers count).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
PR_SET_CHILD_SUBREAPER = 36  # prctl(2)


def generate(root: Path, count: int) -> None:
    """Write ``count`` distinct pictures and copies of one in ten, unless already there."""
    marker = root.parent / f"{root.name}.complete"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    sys.path.insert(0, str(HERE.parent / "src"))
    from dam_dedupe.sample import _picture  # the sample library's picture maker

    for n in range(count):
        folder = root / f"dept-{n % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"IMG_{n:05d}.jpg"
        _picture(n, (1024, 768)).save(path, "JPEG", quality=85)
        if n % 10 == 0:
            copy = root / "copies" / f"copy of {n}.jpg"
            copy.parent.mkdir(exist_ok=True)
            copy.write_bytes(path.read_bytes())
    marker.touch()


def reap_orphans() -> None:
    """Wait for every orphan left to this process, so that its resource usage (and its workers') counts."""
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--config", help='a dam-dedupe.toml, e.g. one with [analysis] disabled = ["faces"]')
    args = parser.parse_args()
    out = HERE / "out"
    library = out / f"library-{args.images}"
    started = time.perf_counter()
    generate(library, args.images)
    print(f"library: {library} (ready in {time.perf_counter() - started:.1f}s)")
    catalog = out / "bench.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(catalog) + suffix).unlink(missing_ok=True)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans (the fork server) are left to us
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
                *(["--config", args.config] if args.config else []),
                "scan",
                "--workers",
                str(args.workers),
                "--preset",
                args.preset,
                str(library),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - started
        reap_orphans()
        runs.append((label, elapsed, result.stdout.strip().splitlines()[0]))
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    images = sum(1 for p in library.rglob("*.jpg"))
    print(json.dumps({"images": images, "workers": args.workers, "preset": args.preset}))
    for label, elapsed, summary in runs:
        print(f"{label}: {elapsed:.1f}s, {images / elapsed:.0f} images/s  [{summary}]")
    print(f"peak memory of any one process: {peak_kib / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
