"""The matcher's index sharded over a real Dask cluster gives the candidates, and clusters, of one process."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster, get_task_stream
from PIL import Image, ImageEnhance, ImageOps

from dam_dedupe.catalog import open_catalog
from dam_dedupe.dask_executor import DaskCluster
from dam_dedupe.dask_index import ShardedIndex
from dam_dedupe.dask_verify import DaskVerifier
from dam_dedupe.errors import DamDedupeError
from dam_dedupe.matcher.compare import judge_many
from dam_dedupe.matcher.neighbours import CODE_FAMILIES, SYMMETRIES, CandidateIndex
from dam_dedupe.matcher.perceptual import DIHEDRAL, dct_dihedral_array
from dam_dedupe.matcher.settings import PRESETS
from tests.conftest import picture, run_cli, save
from tests.servers.dask import dask_processes
from tests.test_matcher_batch import library


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskCluster]:
    """A local cluster of two worker processes."""
    with DaskCluster(None, 2) as local:
        yield local


def codes_with_copies(size: int, seed: int) -> dict[str, np.ndarray]:
    """Every family's codes for ``size`` images: random, with every fifth image a near copy of another
    (a few bits flipped in each family), so that every kind of search finds something."""
    rng = np.random.default_rng(seed)
    codes = {family: rng.integers(0, 2**63, size, dtype=np.uint64) for family in CODE_FAMILIES}
    for copy in range(0, size, 5):
        original = int(rng.integers(0, size))
        for family in CODE_FAMILIES:
            bits = rng.choice(63, size=int(rng.integers(0, 14)), replace=False)
            codes[family][copy] = codes[family][original] ^ np.uint64(sum(1 << int(b) for b in bits))
        codes["inner"][copy] = codes["dct"][original] ^ np.uint64(0b101)  # a crop of the original
    for copy in range(2, size, 25):  # turned and mirrored copies
        symmetry = SYMMETRIES[copy % len(SYMMETRIES)]
        codes["dct"][copy] = dct_dihedral_array(codes["dct"][copy - 1 : copy], symmetry)[0] ^ np.uint64(0b11)
    return codes


@pytest.mark.parametrize("shards", [2, 3])
def test_a_sharded_index_nominates_exactly_the_candidates_of_one_index(cluster: DaskCluster, shards: int) -> None:
    codes = codes_with_copies(3000, seed=shards)
    settings = PRESETS["balanced"]
    asked = np.arange(3000)

    alone = CandidateIndex(codes, settings).neighbours(asked)
    sharded = ShardedIndex(cluster, codes, settings, shards).neighbours(asked)

    assert sum(len(found) for found in alone) > 1000  # the planted copies are found, from both ends
    assert {symmetry for found in alone for _, symmetry in found} > {"identity"}  # turned copies too
    assert sharded == alone


def variants(root: Path) -> None:
    """Pictures, each with copies of every kind (smaller, re-compressed, turned, mirrored, cropped, lighter),
    a light and a dark version of one design, and a picture alone."""
    for seed in range(6):
        original = picture(seed, (640, 480))
        save(original, root / f"{seed}" / "original.png", "PNG")
        save(original.resize((320, 240), Image.Resampling.LANCZOS), root / f"{seed}" / "small.jpg", quality=80)
        save(original, root / f"{seed}" / "low quality.jpg", quality=35)
        save(original.rotate(90, expand=True), root / f"{seed}" / "turned.png", "PNG")
        save(ImageOps.mirror(original), root / f"{seed}" / "mirrored.webp", "WEBP", quality=90)
        save(original.crop((26, 19, 614, 461)), root / f"{seed}" / "cropped.jpg", quality=90)
        save(ImageEnhance.Brightness(original).enhance(1.05), root / f"{seed}" / "lighter.jpg", quality=90)
    design = picture(40, (640, 480))
    save(design, root / "design" / "light.png", "PNG")
    save(ImageEnhance.Brightness(design).enhance(0.45), root / "design" / "dark.png", "PNG")
    save(picture(50, (640, 480)), root / "alone.png", "PNG")


def clusters_of(location: Path) -> list[tuple[str, frozenset[str]]]:
    """Every stored cluster: its id (which names its members) and its members' keys with their match kind."""
    catalog = open_catalog(location)
    try:
        found = []
        for cluster in catalog.clusters():
            assets = catalog.assets_by_id([asset_id for asset_id, _, _ in cluster.members], thumbnails=False)
            found.append((cluster.id, frozenset(f"{assets[a].record.key} {m}" for a, m, _ in cluster.members)))
        return sorted(found)
    finally:
        catalog.close()


def test_match_with_the_index_in_shards_stores_the_clusters_of_one_process(tmp_path: Path) -> None:
    variants(tmp_path / "library")
    run_cli("--catalog", "c.sqlite", "scan", "--workers", "2", "library", cwd=tmp_path)
    alone = clusters_of(tmp_path / "c.sqlite")

    sharded = run_cli("--catalog", "c.sqlite", "match", "--index-shards", "2", cwd=tmp_path)
    assert clusters_of(tmp_path / "c.sqlite") == alone
    verified_here = run_cli("--catalog", "c.sqlite", "match", "--index-shards", "2", "--verify-here", cwd=tmp_path)

    assert "matching with the index in 2 shards and verification on the Dask cluster at tcp://" in sharded.stderr
    assert "matching with the index in 2 shards on the Dask cluster at tcp://" in verified_here.stderr
    assert len(alone) >= 6 and any("turned" in member for _, members in alone for member in members)
    assert clusters_of(tmp_path / "c.sqlite") == alone


def copies_of_many(root: Path, pictures: int) -> None:
    """``pictures`` pictures with four copies each (smaller, re-compressed, lighter, cropped): enough
    candidate pairs at once for the matcher to send them to a cluster."""
    for seed in range(pictures):
        original = picture(100 + seed, (400, 300))
        save(original, root / f"{seed}" / "original.png", "PNG")
        save(original.resize((200, 150), Image.Resampling.LANCZOS), root / f"{seed}" / "small.jpg", quality=80)
        save(original, root / f"{seed}" / "low quality.jpg", quality=35)
        save(ImageEnhance.Brightness(original).enhance(1.05), root / f"{seed}" / "lighter.jpg", quality=90)
        save(original.crop((16, 12, 384, 288)), root / f"{seed}" / "cropped.jpg", quality=90)


def test_match_on_a_cluster_verifies_there_and_stores_the_clusters_of_one_process(tmp_path: Path) -> None:
    copies_of_many(tmp_path / "library", 40)
    variants(tmp_path / "library" / "variants")
    run_cli("--catalog", "c.sqlite", "scan", "--workers", "2", "library", cwd=tmp_path)
    alone = clusters_of(tmp_path / "c.sqlite")

    with dask_processes() as (address, _), Client(address) as client, get_task_stream(client) as tasks:
        on_dask = run_cli("--catalog", "c.sqlite", "match", "--scheduler", address, cwd=tmp_path)

    assert f"matching with verification on the Dask cluster at {address}" in on_dask.stderr
    assert "MALLOC_TRIM_THRESHOLD_" not in on_dask.stderr  # `dask worker` processes do not trim
    verified = [task for task in tasks.data if str(task["key"]).startswith("verify-")]
    assert len({task["worker"] for task in verified}) == 2  # both workers verified pairs
    assert len(alone) == 40 + 6 and sum(len(members) for _, members in alone) >= 40 * 4 + 6 * 5
    assert clusters_of(tmp_path / "c.sqlite") == alone


def test_workers_of_a_default_local_cluster_are_named_as_slow_to_verify(tmp_path: Path) -> None:
    variants(tmp_path / "library")
    run_cli("--catalog", "c.sqlite", "scan", "--workers", "2", "library", cwd=tmp_path)
    alone = clusters_of(tmp_path / "c.sqlite")

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as defaults:  # as Dask starts it
        address = defaults.scheduler_address
        on_dask = run_cli("--catalog", "c.sqlite", "match", "--scheduler", address, cwd=tmp_path)

    assert f"the Dask workers at {address} run with MALLOC_TRIM_THRESHOLD_ set" in on_dask.stderr
    assert "docs/scale.md" in on_dask.stderr
    assert clusters_of(tmp_path / "c.sqlite") == alone  # a warning: the match goes on


def test_a_scan_may_hold_the_index_on_its_dask_cluster(tmp_path: Path) -> None:
    variants(tmp_path / "library")
    run_cli("--catalog", "alone.sqlite", "scan", "--workers", "2", "library", cwd=tmp_path)

    on_dask = run_cli(
        "--catalog", "dask.sqlite", "scan", "--executor", "dask", "--index-shards", "2", "library", cwd=tmp_path
    )

    assert "matching with the index in 2 shards" in on_dask.stderr
    assert clusters_of(tmp_path / "dask.sqlite") == clusters_of(tmp_path / "alone.sqlite")


def test_index_shards_without_a_dask_executor_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "library").mkdir()
    refused = run_cli("scan", "--index-shards", "2", "library", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "--index-shards needs --executor dask" in refused.stderr


def test_a_worker_holding_a_shard_lost_stops_the_match_with_a_message(tmp_path: Path) -> None:
    codes = codes_with_copies(500, seed=7)
    with dask_processes() as (address, _), DaskCluster(address, 2) as on_dask:
        index = ShardedIndex(on_dask, codes, PRESETS["balanced"], 2)
        with Client(address) as client:
            victim = next(iter(client.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)  # the worker process dies, and the shard it held with it

        with pytest.raises(DamDedupeError) as lost:
            index.neighbours(np.arange(500))

    assert "a Dask worker holding part of the matching index" in str(lost.value)
    assert "nothing was stored: run the match again" in str(lost.value)


def test_verdicts_a_dying_worker_cannot_give_are_judged_in_the_matching_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES", "0")  # Dask gives up at the first death
    fingerprints = library()
    pairs = [(a, b, symmetry) for a, b in itertools.permutations(fingerprints, 2) for symmetry in DIHEDRAL]
    with dask_processes() as (address, _), DaskCluster(address, 2) as on_dask, Client(address) as watcher:
        process_of = watcher.run(os.getpid)

        def kill_a_worker_verifying() -> None:
            while True:
                for worker, keys in watcher.processing().items():
                    if any(str(key).startswith("verify-") for key in keys):
                        os.kill(process_of[worker], signal.SIGKILL)
                        return
                time.sleep(0.002)

        killer = threading.Thread(target=kill_a_worker_verifying, daemon=True)
        killer.start()
        verdicts = DaskVerifier(on_dask).judge(pairs, PRESETS["balanced"])
        killer.join(timeout=60)

    assert "verifying on the Dask cluster at" in caplog.text and "KilledWorker" in caplog.text
    assert verdicts == judge_many(pairs, PRESETS["balanced"])
    assert 10 < sum(verdict is not None for verdict in verdicts) < len(pairs) - 10
