"""Matching at the shape of real archives: one image re-saved hundreds or thousands of times.

Libraries made from the photographs the corpus uses (scikit-image's, see ``benchmarks/corpus.py``;
nothing is downloaded):

- ``copies-N``: one photograph re-saved N times (random size 30-100%, JPEG quality 50-95,
  one in ten PNG and one in ten WebP);
- ``distinct-N``: N distinct pictures, each a mosaic of four random windows of random
  photographs (the baseline the copies are compared with);
- ``zipf-N``: N images where image i of the distinct pictures has about A / i copies (a few
  copied thousands of times, most once).

Each file is fingerprinted once, as the scan does, and the fingerprints are cached under
``benchmarks/out/big_clusters/``. Matching then runs as ``dam-dedupe match`` runs it
(:func:`~dam_dedupe.clustering.build_clusters` on a SQLite catalog: grouping, canonicals and
every member's evidence), and the benchmark prints its time, the peak memory the matching
step's process reached and its floor (the process's resident memory just before matching:
interpreter, numpy, plugins), the bytes an image above that floor, whether every image's copies
form exactly one cluster, and, over the libraries of one kind, the growth exponent of time
against library size and how much the peak grew for each image added (flat memory: close to
nothing). Matching runs in a fresh process, so its peak resident memory is the matching step's own.

Run from the repository root::

    .venv/bin/python -m benchmarks.big_clusters [--copies 100 1000 5000] [--distinct 1000] [--zipf 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import pickle
import random
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.corpus import SKIMAGE_PHOTOS
from dam_dedupe.catalog import open_catalog
from dam_dedupe.clustering import build_clusters
from dam_dedupe.config import Config
from dam_dedupe.fingerprint import FINGERPRINT_VERSION, fingerprint_stream
from dam_dedupe.host import Host
from dam_dedupe.records import AssetRecord, Fingerprint, SourceSpec

OUT = Path(__file__).parent / "out" / "big_clusters"
ROOT = "file:///srv/archive"
MOSAIC_SIDE = 480
COPY_SIDE = 640
"""Long side of the photograph before it is re-saved (30-100% of it)."""
MODIFIED = datetime(2024, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=1)
def photographs() -> list[Image.Image]:
    """scikit-image's sample photographs (those of :data:`~benchmarks.corpus.SKIMAGE_PHOTOS`), as RGB."""
    import skimage

    data = Path(skimage.__file__).parent / "data"
    found = []
    for name in SKIMAGE_PHOTOS:
        if (data / name).exists():
            with Image.open(data / name) as img:
                rgb = img.convert("RGB")
            rgb.thumbnail((COPY_SIDE, COPY_SIDE), Image.Resampling.LANCZOS)
            found.append(rgb)
    return found


def mosaic(photos: list[Image.Image], seed: int) -> Image.Image:
    """A distinct picture: four random windows of random photographs, side by side two by two."""
    rng = random.Random(seed)
    half = MOSAIC_SIDE // 2
    out = Image.new("RGB", (MOSAIC_SIDE, round(MOSAIC_SIDE * 0.75)))
    for n in range(4):
        photo = rng.choice(photos)
        side = rng.randint(min(photo.size) // 4, min(photo.size) * 3 // 4)
        left, top = rng.randint(0, photo.width - side), rng.randint(0, photo.height - side)
        tile = photo.crop((left, top, left + side, top + side)).resize((half, out.height // 2))
        if rng.random() < 0.5:
            tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.paste(tile, ((n % 2) * half, (n // 2) * (out.height // 2)))
    return out


def resaved(img: Image.Image, rng: random.Random) -> bytes:
    """``img`` re-saved as a department would: random size 30-100%, JPEG quality 50-95, or PNG or WebP."""
    scale = rng.uniform(0.3, 1.0)
    small = img.resize(
        (max(16, round(img.width * scale)), max(16, round(img.height * scale))), Image.Resampling.LANCZOS
    )
    out = io.BytesIO()
    kind = rng.random()
    if kind < 0.8:
        small.save(out, "JPEG", quality=rng.randint(50, 95))
    elif kind < 0.9:
        small.save(out, "PNG", compress_level=1)
    else:
        small.save(out, "WEBP", quality=rng.randint(50, 95))
    return out.getvalue()


def zipf_counts(total: int) -> list[int]:
    """Copies per image, about A / i for image i (at least one), summing to ``total``."""
    scale = 1
    while sum(max(1, scale // i) for i in range(1, scale + 1)) < total:
        scale += max(1, scale // 50)
    counts = [max(1, scale // i) for i in range(1, scale + 1)]
    counts[0] -= sum(counts) - total
    return counts


def _make(job: tuple[str, int, int, int]) -> list[tuple[int, Fingerprint]]:
    """Fingerprints of the files of one image: (image number, fingerprint) for each of its ``count`` files."""
    kind, image, count, seed = job
    photos = photographs()
    picture = photos[image % len(photos)] if kind == "copies" else mosaic(photos, image)
    rng = random.Random(seed)
    return [(image, fingerprint_stream(io.BytesIO(resaved(picture, rng)))) for _ in range(count)]


def library(kind: str, size: int, workers: int) -> list[tuple[int, Fingerprint]]:
    """(image number, fingerprint) of every file of a library, fingerprinted once and cached."""
    OUT.mkdir(parents=True, exist_ok=True)
    cache = OUT / f"{kind}-{size}-v{FINGERPRINT_VERSION}.pickle"  # a new kind of fingerprint makes them again
    if cache.exists():
        files: list[tuple[int, Fingerprint]] = pickle.loads(cache.read_bytes())
        return files
    if kind == "copies":
        jobs = [("copies", 0, min(50, size - n), n) for n in range(0, size, 50)]
    elif kind == "distinct":
        jobs = [("distinct", n, 1, n) for n in range(size)]
    else:
        jobs = [("distinct", n, count, n) for n, count in enumerate(zipf_counts(size))]
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        files = [item for part in pool.map(_make, jobs, chunksize=4) for item in part]
    print(f"  fingerprinted {len(files):,d} files once in {time.perf_counter() - started:.0f} s", flush=True)
    cache.write_bytes(pickle.dumps(files))
    return files


@dataclass(frozen=True)
class Measured:
    """One match: seconds, processor seconds, and the matching process's resident MiB before and at its peak."""

    elapsed: float
    processor: float
    floor: float
    peak: float


def match(files: list[tuple[int, Fingerprint]]) -> tuple[Measured, dict[str, int]]:
    """Match a library as ``dam-dedupe match`` does, in a fresh process: what it cost, and the outcome."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "catalog.db"
        catalog = open_catalog(path)
        source = catalog.source_id(SourceSpec(ROOT, "archive"))
        run = catalog.begin_run([ROOT])
        image_of: dict[str, int] = {}
        with catalog.transaction():
            for number, (image, fp) in enumerate(files):
                key = f"dept-{number % 20:02d}/IMG_{number:06d}.{fp.format.lower()}"
                record = AssetRecord(ROOT, key, f"{ROOT}/{key}", fp.size, MODIFIED, name=key.rsplit("/", 1)[1])
                catalog.record_listed(source, record, run)
                asset = catalog.asset_by_uri(record.uri)
                assert asset is not None
                catalog.store_fingerprint(asset.id, fp)
                image_of[record.uri] = image
        catalog.close()
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            measured, clusters = pool.submit(_match_catalog, str(path)).result()
    as_images = [[image_of[uri] for uri in cluster] for cluster in clusters]
    return measured, outcome(as_images, [image for image, _ in files])


def _match_catalog(path: str) -> tuple[Measured, list[list[str]]]:
    """In the child process: what matching cost, and each cluster's member URIs.

    Processor time is printed beside the wall time: on a shared machine it is the steadier of the two.
    """
    catalog = open_catalog(path)
    host = Host()
    floor = _resident_mib("VmRSS")
    started, processor = time.perf_counter(), time.process_time()
    build_clusters(catalog, Config(), host)
    elapsed, processor = time.perf_counter() - started, time.process_time() - processor
    measured = Measured(elapsed, processor, floor, _resident_mib("VmHWM"))
    clusters = catalog.clusters()  # read back after the peak is taken: the outcome is not matching's memory
    uris = {asset.id: asset.record.uri for asset in catalog.images(thumbnails=False)}
    catalog.close()
    return measured, [[uris[asset_id] for asset_id, _, _ in cluster.members] for cluster in clusters]


def _resident_mib(field: str) -> float:
    """This process's resident memory in MiB, now (``VmRSS``) or at its peak (``VmHWM``, Linux's
    high-water mark of its own address space: ``ru_maxrss`` survives the exec of a spawned child and
    so reports the parent's peak when the parent was larger, and here the parent holds every
    library's fingerprints). Where there is no ``/proc``, ``ru_maxrss`` for both."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def outcome(clusters: list[list[int]], images: list[int]) -> dict[str, int]:
    """How the clusters match the truth: images copied (2+ files), images whose files form exactly
    one cluster and nothing else, clusters that mix images, and files left out of their image's cluster."""
    files_of: dict[int, int] = {}
    for image in images:
        files_of[image] = files_of.get(image, 0) + 1
    copied = {image for image, count in files_of.items() if count > 1}
    clusters_of: dict[int, list[list[int]]] = {}
    mixed = 0
    for cluster in clusters:
        if len(set(cluster)) > 1:
            mixed += 1
        for image in set(cluster):
            clusters_of.setdefault(image, []).append(cluster)
    whole = sum(
        1 for image in copied if len(clusters_of.get(image, [])) == 1 and len(clusters_of[image][0]) == files_of[image]
    )
    left_out = sum(files_of[image] - sum(c.count(image) for c in clusters_of.get(image, [])) for image in copied)
    return {"copied": len(copied), "whole": whole, "mixed": mixed, "clusters": len(clusters), "left_out": left_out}


def report(name: str, files: list[tuple[int, Fingerprint]], runs: list[tuple[Measured, dict[str, int]]]) -> Measured:
    """Print one library's line from its matches (the median times, the largest peak); return that."""
    found = runs[0][1]
    measured = Measured(
        statistics.median(run.elapsed for run, _ in runs),
        statistics.median(run.processor for run, _ in runs),
        max(run.floor for run, _ in runs),
        max(run.peak for run, _ in runs),
    )
    verdict = "yes" if found["whole"] == found["copied"] and not found["mixed"] else "NO"
    above = (measured.peak - measured.floor) * 2**20 / len(files)
    print(
        f"{name:<16} files {len(files):>6,d}  match {measured.elapsed:7.2f} s (cpu {measured.processor:6.2f} s)  "
        f"peak {measured.peak:6.1f} MiB (floor {measured.floor:5.1f}, {above:,.0f} B an image above it)  "
        f"clusters {found['clusters']:>5,d}  images copied {found['copied']:>5,d}  one cluster each: {verdict} "
        f"(whole {found['whole']}, mixed {found['mixed']}, files left out {found['left_out']})",
        flush=True,
    )
    return measured


def fitted_exponent(sizes: list[int], times: list[float]) -> float:
    """k in time ~ size^k, by least squares on the logarithms."""
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def print_growth(kind: str, sizes: list[int], runs: list[Measured]) -> None:
    """The fitted growth exponents of wall and processor time (the steadier on a shared machine),
    and how much the peak memory grew per file from the smallest library to the largest."""
    wall = fitted_exponent(sizes, [run.elapsed for run in runs])
    processor = fitted_exponent(sizes, [run.processor for run in runs])
    grown = runs[-1].peak - runs[0].peak
    per_file = grown * 2**20 / (sizes[-1] - sizes[0])
    print(
        f"{kind}: fitted growth exponent (time ~ N^k): k = {wall:.2f} (processor time: {processor:.2f}); "
        f"peak memory {runs[0].peak:.1f} -> {runs[-1].peak:.1f} MiB ({grown:+.1f} MiB for "
        f"{sizes[-1] - sizes[0]:+,d} files, {per_file:,.0f} B a file)",
        flush=True,
    )


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="*", default=[100, 1000, 5000])
    parser.add_argument("--distinct", type=int, nargs="*", default=[1000])
    parser.add_argument("--zipf", type=int, nargs="*", default=[20000])
    parser.add_argument("--workers", type=int, default=2, help="processes that fingerprint the libraries once")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of matching every library (medians printed)")
    args = parser.parse_args()
    kinds: list[tuple[str, list[int], list[tuple[str, list[tuple[int, Fingerprint]]]]]] = []
    for kind, sizes in (("distinct", args.distinct), ("copies", args.copies)):
        kinds.append((kind, sizes, [(f"{kind}-{size}", library(kind, size, args.workers)) for size in sizes]))
    for size in args.zipf:
        # Growth within one shape: a random quarter, half and all of the Zipf library's files.
        files = library("zipf", size, args.workers)
        random.Random(0).shuffle(files)
        parts = [len(files) // 4, len(files) // 2, len(files)]
        kinds.append((f"zipf {size:,d}", parts, [(f"zipf-{part}", files[:part]) for part in parts]))
    # Round by round, every library once a round: this machine's speed drifts by a fifth over minutes,
    # and libraries compared with one another (copies with distinct) should share its slow spells.
    runs: dict[str, list[tuple[Measured, dict[str, int]]]] = {}
    for _ in range(args.repeat):
        for _, _, libraries in kinds:
            for name, files in libraries:
                runs.setdefault(name, []).append(match(files))
    for kind, sizes, libraries in kinds:
        measured = [report(name, files, runs[name]) for name, files in libraries]
        if len(sizes) > 1:
            print_growth(kind, sizes, measured)


if __name__ == "__main__":
    main()
