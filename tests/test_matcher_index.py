"""The multi-index Hamming index finds exactly what a linear scan finds."""

from __future__ import annotations

import numpy as np
import pytest

from dam_dedupe.matcher.index import choose_chunks, pairs_within, pairs_within_linear
from dam_dedupe.matcher.perceptual import DIHEDRAL, dct_dihedral, dct_dihedral_array, dct_hash_of


def planted(size: int, radius: int, seed: int) -> np.ndarray:
    """Random 63-bit codes with some copies that differ in up to ``radius`` + 2 bits."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, size, dtype=np.uint64)
    for i in range(0, size // 2, 7):
        bits = rng.choice(63, size=int(rng.integers(0, radius + 3)), replace=False)
        codes[size // 2 + i] = codes[i] ^ np.uint64(sum(1 << int(b) for b in bits))
    return codes


@pytest.mark.parametrize(("size", "radius"), [(1500, 0), (1500, 3), (2000, 5), (1200, 8), (800, 12)])
def test_self_join_equals_linear_scan(size: int, radius: int) -> None:
    codes = planted(size, radius, seed=size + radius)
    fast = pairs_within(codes, radius)
    assert len(fast) > 0
    assert np.array_equal(fast, pairs_within_linear(codes, radius))


@pytest.mark.parametrize("radius", [2, 5, 9])
def test_cross_join_equals_linear_scan(radius: int) -> None:
    codes = planted(1500, radius, seed=radius)
    queries = codes[::5] ^ np.uint64(0b1011)
    fast = pairs_within(codes, radius, queries=queries)
    assert np.array_equal(fast, pairs_within_linear(codes, radius, queries=queries))


def test_duplicates_and_clustered_codes() -> None:
    # Real hashes cluster: many equal codes and codes sharing chunks.
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, 20, dtype=np.uint64)
    codes = np.concatenate(
        [base[rng.integers(0, 20, 600)], base ^ np.uint64(1), rng.integers(0, 2**20, 300).astype(np.uint64)]
    )
    assert np.array_equal(pairs_within(codes, 4), pairs_within_linear(codes, 4))


def test_chunk_count_grows_with_the_database() -> None:
    assert choose_chunks(1_000_000, 8) <= choose_chunks(1_000, 8)
    assert choose_chunks(10, 0) >= 1


def test_hash_symmetries_are_exact_bit_permutations() -> None:
    picture = np.random.default_rng(5).random((32, 32)) * 255
    value = dct_hash_of(picture)
    for name, op in DIHEDRAL.items():
        turned = dct_hash_of(np.ascontiguousarray(op(picture)))  # type: ignore[operator]
        assert dct_dihedral(value, name) == turned
        assert int(dct_dihedral_array(np.array([value], dtype=np.uint64), name)[0]) == turned


def test_the_wider_low_radius_nominates_only_what_the_dct_hash_confirms() -> None:
    from dam_dedupe.matcher import PRESETS
    from dam_dedupe.matcher.neighbours import CONFIRM_RADIUS, candidate_pairs

    settings = PRESETS["balanced"]
    rng = np.random.default_rng(9)
    base = rng.integers(0, 2**63, 3, dtype=np.uint64)

    def flipped(value: np.uint64, bits: int, offset: int = 0) -> np.uint64:
        return value ^ np.uint64(sum(1 << (offset + b) for b in range(bits)))

    # 0 and 1: low 7 bits apart (beyond candidate_radius), dct within CONFIRM_RADIUS: a crop.
    # 0 and 2: low 7 bits apart too, but dct unrelated: the low hash alone is not enough.
    low = np.array([base[0], flipped(base[0], settings.crop_radius), flipped(base[0], settings.crop_radius, 20)])
    dct = np.array([base[1], flipped(base[1], CONFIRM_RADIUS), ~base[1] & np.uint64(2**63 - 1)])
    centre = rng.integers(0, 2**63, 3, dtype=np.uint64)
    found = {
        (min(i, j), max(i, j))
        for i, j, symmetry in candidate_pairs({"dct": dct, "low": low, "centre": centre}, settings)
    }
    assert found == {(0, 1)}


def test_a_crop_is_nominated_across_the_inner_and_dct_hashes_from_either_end() -> None:
    from dam_dedupe.matcher import PRESETS
    from dam_dedupe.matcher.neighbours import candidate_pairs

    settings = PRESETS["balanced"]
    rng = np.random.default_rng(11)
    middle, low_code = rng.integers(0, 2**62, 2, dtype=np.uint64)

    def flipped(value: np.uint64, bits: int, offset: int = 0) -> np.uint64:
        return value ^ np.uint64(sum(1 << (offset + b) for b in range(bits)))

    def far(count: int) -> np.ndarray:
        return rng.integers(0, 2**63, count, dtype=np.uint64)

    # Image 0's inner hash is near the dct hash of 1 (5 bits), 2 (7 bits, low hashes 7 apart)
    # and 3 (7 bits, low hashes unrelated: not enough); 1, 2 and 3 differ in 12 bits or more.
    # Every other code is unrelated.
    dct = np.array(
        [
            far(1)[0],
            flipped(middle, settings.candidate_radius),
            flipped(middle, settings.crop_radius, 20),
            flipped(middle, settings.crop_radius, 40),
        ]
    )
    inner = np.concatenate([[middle], far(3)])
    low = np.array([low_code, far(1)[0], flipped(low_code, settings.crop_radius, 30), ~low_code & np.uint64(2**63 - 1)])
    codes = {"dct": dct, "low": low, "centre": far(4), "inner": inner}
    found = {(i, j) for i, j, _ in candidate_pairs(codes, settings)}
    assert found == {(0, 1), (1, 0), (0, 2), (2, 0)}
