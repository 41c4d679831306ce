"""All-pairs near-duplicate search time on synthetic fingerprints with planted copies.

For each size N, makes N random 63-bit hashes of each indexed family (``dct``, ``low``,
``centre``), plants copies of 1% of them (hashes with up to the family's radius,
``candidate_radius`` or ``crop_radius``, bits flipped, and rotated or mirrored ``dct``
hashes with up to ``transform_radius`` flipped), runs the same candidate search that
:func:`dam_dedupe.matcher.find_groups` runs, for every image at once
(:func:`~dam_dedupe.matcher.neighbours.candidate_pairs`; cluster formation asks a batch at a time),
checks that every planted pair is found, and fits the growth exponent of time against N.

Run: ``python benchmarks/scalability.py [--sizes 10000 100000 1000000] [--preset balanced]``
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from dam_dedupe.matcher import PRESETS, MatchSettings
from dam_dedupe.matcher.neighbours import INDEXED_FAMILIES, SYMMETRIES, candidate_pairs, radius_of
from dam_dedupe.matcher.perceptual import dct_dihedral_array

PLANTED_SHARE = 0.01


def synthetic(size: int, settings: MatchSettings, seed: int) -> tuple[dict[str, np.ndarray], set[tuple[int, int, str]]]:
    """Random hashes of each indexed family with about 1% planted copies, and the planted
    (i, j, symmetry) triples. A planted ``identity`` copy is near in every family; a
    planted rotated or mirrored copy is near in ``dct`` after the symmetry."""
    rng = np.random.default_rng(seed)
    codes = {family: rng.integers(0, 2**63, size, dtype=np.uint64) for family in INDEXED_FAMILIES}
    planted: set[tuple[int, int, str]] = set()
    count = int(size * PLANTED_SHARE)
    sources = rng.choice(size // 2, count, replace=False)
    targets = size // 2 + rng.choice(size - size // 2, count, replace=False)
    symmetries = ["identity", *SYMMETRIES]
    for n, (i, j) in enumerate(zip(sources.tolist(), targets.tolist(), strict=True)):
        symmetry = symmetries[n % len(symmetries)]
        families = INDEXED_FAMILIES if symmetry == "identity" else ("dct",)
        for family in families:
            radius = radius_of(family, settings) if symmetry == "identity" else settings.transform_radius
            bits = rng.choice(63, size=int(rng.integers(0, radius + 1)), replace=False)
            base = codes[family][i : i + 1]
            if symmetry != "identity":
                base = dct_dihedral_array(base, symmetry)
            codes[family][j] = base[0] ^ np.uint64(sum(1 << int(b) for b in bits))
        planted.add((i, j, symmetry))
    return codes, planted


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--preset", default="balanced", choices=[p for p in PRESETS if p != "exact"])
    args = parser.parse_args()
    settings = PRESETS[args.preset]
    print(
        f"preset {args.preset}: candidate_radius {settings.candidate_radius}, crop_radius {settings.crop_radius}, "
        f"transform_radius {settings.transform_radius}, transforms {settings.transforms}"
    )
    times = []
    for size in args.sizes:
        codes, planted = synthetic(size, settings, seed=size)
        started = time.perf_counter()
        found = candidate_pairs(codes, settings)
        elapsed = time.perf_counter() - started
        got = set(found) | {(j, i, s) for i, j, s in found}
        missed = [p for p in planted if p not in got]
        times.append(elapsed)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"N={size:>9,d}  search {elapsed:7.2f} s  candidate pairs {len(found):>9,d}  "
            f"planted {len(planted):>7,d}  missed {len(missed)}  peak {peak:.0f} MiB",
            flush=True,
        )
    if len(args.sizes) > 1:
        slope = np.polyfit(np.log(args.sizes), np.log(times), 1)[0]
        print(f"fitted growth exponent (time ~ N^k): k = {slope:.2f}")


if __name__ == "__main__":
    main()
