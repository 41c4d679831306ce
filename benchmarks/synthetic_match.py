"""Matching at hundreds of thousands of images: time and peak memory of ``dam-dedupe match``'s work.

    .venv/bin/python -m benchmarks.synthetic_match --sizes 100000 200000 400000

Decoding and fingerprinting real files at this size would take hours, and the matcher needs
only fingerprints, so these are made directly: each distinct picture is a small mosaic of the
corpus's photographs (as ``benchmarks/big_clusters.py``'s, at 160 pixels), and each of its copies
that picture resized to 60-100% and made up to 6% lighter or darker, described by the
fingerprint's own :func:`~dam_dedupe.matcher.perceptual.describe` (the hashes and the thumbnail
the matcher verifies with). Copies per picture follow the same Zipf-like shape as
``big_clusters --zipf`` (a few pictures copied thousands of times, most once). The catalogs are
kept under ``benchmarks/out/synthetic/`` and reused.

Matching runs in a fresh process on the SQLite catalog, as ``dam-dedupe match`` does (grouping,
canonicals, every member's evidence); the benchmark prints its time, the process's floor and peak
resident memory, the bytes each image added to the peak between sizes, the fitted growth
exponent, and whether every picture's copies form exactly one cluster.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import random
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageEnhance

from benchmarks.big_clusters import (
    MODIFIED,
    ROOT,
    Measured,
    _match_catalog,
    fitted_exponent,
    outcome,
    photographs,
    zipf_counts,
)
from dam_dedupe.catalog import open_catalog
from dam_dedupe.fingerprint import FINGERPRINT_VERSION
from dam_dedupe.matcher.perceptual import describe
from dam_dedupe.records import AssetRecord, Fingerprint, SourceSpec

OUT = Path(__file__).parent / "out" / "synthetic"
SIDE = 160
IMAGES_A_JOB = 500


@lru_cache(maxsize=1)
def small_photographs() -> list[Image.Image]:
    """The corpus's photographs with their long side at ``2 x SIDE``."""
    found = []
    for photo in photographs():
        small = photo.copy()
        small.thumbnail((2 * SIDE, 2 * SIDE), Image.Resampling.BOX)
        found.append(small)
    return found


def picture(seed: int) -> Image.Image:
    """A distinct picture: four random windows of random photographs, two by two."""
    rng = random.Random(seed)
    photos = small_photographs()
    half = SIDE // 2
    out = Image.new("RGB", (SIDE, SIDE * 3 // 4))
    for n in range(4):
        photo = rng.choice(photos)
        side = rng.randint(min(photo.size) // 4, min(photo.size) * 3 // 4)
        left, top = rng.randint(0, photo.width - side), rng.randint(0, photo.height - side)
        tile = photo.crop((left, top, left + side, top + side)).resize((half, out.height // 2), Image.Resampling.BOX)
        out.paste(tile, ((n % 2) * half, (n // 2) * (out.height // 2)))
    return out


def _fingerprints(job: tuple[int, list[int]]) -> list[tuple[int, Fingerprint]]:
    """(picture number, fingerprint) of every copy of the pictures from ``first``, ``counts`` copies each."""
    first, counts = job
    found = []
    for image, count in enumerate(counts, start=first):
        original = picture(image)
        rng = random.Random(image)
        for copy in range(count):
            scale = rng.uniform(0.6, 1.0)
            size = (round(original.width * scale), round(original.height * scale))
            resized = original.resize(size, Image.Resampling.LANCZOS)
            toned = ImageEnhance.Brightness(resized).enhance(rng.uniform(0.94, 1.06))
            perceptual, thumbnail = describe(toned)
            digest = hashlib.sha256(f"{image}/{copy}".encode()).hexdigest()
            width, height = round(1600 * scale), round(1200 * scale)
            size_in_bytes = width * height // 4
            found.append((image, Fingerprint(digest, size_in_bytes, width, height, "JPEG", perceptual, thumbnail)))
    return found


def catalog_of(size: int, workers: int) -> tuple[Path, dict[str, int]]:
    """The catalog of a library of ``size`` files (made once), and the picture number of each URI."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"zipf-{size}-v{FINGERPRINT_VERSION}.sqlite"
    counts = zipf_counts(size)
    image_of = {}
    for image, count in enumerate(counts):
        for copy in range(count):
            image_of[f"{ROOT}/{image % 100:02d}/pic-{image:07d}-{copy}.jpg"] = image
    if path.exists():
        return path, image_of
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    catalog = open_catalog(partial)
    source = catalog.source_id(SourceSpec(ROOT, "archive"))
    run = catalog.begin_run([ROOT])
    jobs = [(first, counts[first : first + IMAGES_A_JOB]) for first in range(0, len(counts), IMAGES_A_JOB)]
    started, copies = time.perf_counter(), dict[int, int]()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for part in pool.map(_fingerprints, jobs):
            with catalog.transaction():
                for image, fingerprint in part:
                    copy = copies[image] = copies.get(image, -1) + 1
                    key = f"{image % 100:02d}/pic-{image:07d}-{copy}.jpg"
                    record = AssetRecord(ROOT, key, f"{ROOT}/{key}", fingerprint.size, MODIFIED, name=key)
                    catalog.record_listed(source, record, run)
                    asset = catalog.asset_by_uri(record.uri)
                    assert asset is not None
                    catalog.store_fingerprint(asset.id, fingerprint)
    catalog.close()
    partial.rename(path)
    print(f"  made {size:,d} fingerprints in {time.perf_counter() - started:.0f} s", flush=True)
    return path, image_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000, 400_000])
    parser.add_argument("--workers", type=int, default=2, help="processes that make the fingerprints")
    args = parser.parse_args()
    runs: list[Measured] = []
    for size in args.sizes:
        path, image_of = catalog_of(size, args.workers)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            measured, clusters = pool.submit(_match_catalog, str(path)).result()
        found = outcome([[image_of[uri] for uri in cluster] for cluster in clusters], list(image_of.values()))
        runs.append(measured)
        print(
            f"zipf {size:>9,d} files: match {measured.elapsed:7.1f} s (CPU {measured.processor:7.1f} s), "
            f"resident {measured.floor:.0f} -> {measured.peak:.0f} MiB "
            f"({(measured.peak - measured.floor) * 2**20 / size:,.0f} B a file above the floor); "
            f"{found['whole']} of {found['copied']} copied pictures one cluster each, {found['mixed']} mixed, "
            f"{found['left_out']} files left out",
            flush=True,
        )
    for (small, low), (large, high) in zip(
        zip(args.sizes, runs, strict=True), list(zip(args.sizes, runs, strict=True))[1:], strict=False
    ):
        grown = (high.peak - low.peak) * 2**20 / (large - small)
        print(f"  {small:,d} -> {large:,d} files: peak grew {grown:,.0f} B a file added")
    if len(runs) > 1:
        print(f"  growth exponent of match time: {fitted_exponent(args.sizes, [r.elapsed for r in runs]):.2f}")


if __name__ == "__main__":
    main()
