"""Scans on a real Dask cluster (``distributed.LocalCluster``, worker processes behind nannies):
the clusters of a local scan, a worker killed mid-scan, an asset that keeps killing its workers."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dask
import pytest
from distributed import Client, LocalCluster
from PIL import Image

from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import Config
from dam_dedupe.dask_executor import DaskCluster
from dam_dedupe.errors import DamDedupeError
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan
from tests.conftest import picture, run_cli, save
from tests.servers.dask import dask_processes

WORKERS = 2


@pytest.fixture(scope="module")
def cluster(test_plugin_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local Dask cluster of two worker processes that see the test plugin, and the file its
    adapters log each read to (from whichever worker). A task fails as ``KilledWorker`` after
    its second worker death (Dask's ``allowed-failures`` 1, so that a test need not wait for four)."""
    reads = tmp_path_factory.mktemp("dask-reads") / "reads.log"
    # For the whole module: the nannies spawn each worker (a restarted one too) with this process's
    # sys.path and environment as they are then.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(test_plugin_site))
        patch.setenv("DAM_TEST_READ_LOG", str(reads))
        patch.setenv("DAM_TEST_LIST_LOG", str(reads.parent / "listed.log"))
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
            local = LocalCluster(
                n_workers=WORKERS,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.WARNING,
            )
        try:
            yield local.scheduler_address, reads
        finally:
            local.close()


def library(root: Path, distinct: int = 8) -> int:
    """Pictures with re-saved copies (smaller, lower quality, PNG), some with Traditional Chinese names;
    returns the number of files."""
    files = 0
    for seed in range(distinct):
        original = picture(seed, (480, 360))
        save(original, root / "originals" / f"photo-{seed}.jpg", quality=92)
        files += 1
        for copy in range(seed % 3):
            smaller = original.resize((480 - 80 * (copy + 1), 360 - 60 * (copy + 1)), Image.Resampling.LANCZOS)
            if copy:
                save(smaller, root / "副本" / f"相片 {seed}-{copy}.png", "PNG")
            else:
                save(smaller, root / "copies" / f"resaved-{seed}.jpg", quality=70)
            files += 1
    return files


def clusters_of(catalog_path: Path) -> set[frozenset[str]]:
    """The catalog's clusters, each as the set of its members' keys."""
    catalog = open_catalog(catalog_path)
    try:
        found = set()
        for cluster in catalog.clusters():
            assets = catalog.assets_by_id([asset_id for asset_id, _, _ in cluster.members], thumbnails=False)
            found.add(frozenset(asset.record.key for asset in assets.values()))
        return found
    finally:
        catalog.close()


def fingerprinted_keys(catalog_path: Path) -> list[str]:
    """The key of every present asset with a fingerprint (a key twice would be an asset stored twice)."""
    catalog = open_catalog(catalog_path)
    try:
        return sorted(asset.record.key for asset in catalog.images(thumbnails=False))
    finally:
        catalog.close()


def worker_pids(scheduler: str) -> set[int]:
    with Client(scheduler) as client:
        return set(client.run(os.getpid).values())


def test_a_scan_on_a_dask_cluster_finds_the_clusters_a_local_scan_finds(
    tmp_path: Path, cluster: tuple[str, Path]
) -> None:
    scheduler, _ = cluster
    files = library(tmp_path / "library")
    config = tmp_path / "dam-dedupe.toml"
    config.write_text(f'[scan]\nexecutor = "dask"\nscheduler = "{scheduler}"\n', encoding="utf-8")

    run_cli("--catalog", "local.sqlite", "scan", "library", cwd=tmp_path)
    on_dask = run_cli("--catalog", "dask.sqlite", "--config", str(config), "scan", "library", cwd=tmp_path)

    assert f"fingerprinting on the Dask cluster at {scheduler} ({WORKERS} threads)" in on_dask.stderr
    assert f"fingerprinted {files}," in on_dask.stdout
    expected = clusters_of(tmp_path / "local.sqlite")
    assert len(expected) == 5  # the pictures with copies, each one cluster
    assert clusters_of(tmp_path / "dask.sqlite") == expected
    assert fingerprinted_keys(tmp_path / "dask.sqlite") == fingerprinted_keys(tmp_path / "local.sqlite")


def test_a_worker_killed_mid_scan_leaves_every_asset_fingerprinted_once(
    tmp_path: Path, cluster: tuple[str, Path], with_test_plugin: Path
) -> None:
    scheduler, reads = cluster
    reads.write_text("")
    files = library(tmp_path / "library", distinct=16)
    before = worker_pids(scheduler)
    killed: list[int] = []

    def kill_one_worker(label: str, done: int, total: int) -> None:
        if not killed and done >= 5:
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    catalog = open_catalog(tmp_path / "dask.sqlite")
    spec = SourceSpec(f"counting://{tmp_path / 'library'}")
    try:
        with DaskCluster(scheduler, WORKERS) as on_dask:
            summary = run_scan(
                [spec], catalog, Host(), Config(), on_dask.threads, on_dask, kill_one_worker, batch=on_dask.BATCH
            )
    finally:
        catalog.close()

    assert killed and killed[0] not in worker_pids(scheduler)  # it died, and its nanny started another
    assert (summary.fingerprinted, summary.errors) == (files, 0)
    keys = fingerprinted_keys(tmp_path / "dask.sqlite")
    assert len(keys) == len(set(keys)) == files
    assert set(reads.read_text(encoding="utf-8").split("\n")) - {""} == set(keys)  # read by the workers

    run_cli("--catalog", "local.sqlite", "scan", f"counting://{tmp_path / 'library'}", cwd=tmp_path)
    assert clusters_of(tmp_path / "dask.sqlite") == clusters_of(tmp_path / "local.sqlite")


def test_an_asset_that_keeps_killing_its_workers_is_an_error_against_it_and_the_scan_goes_on(
    tmp_path: Path, cluster: tuple[str, Path], with_test_plugin: Path
) -> None:
    scheduler, _ = cluster
    files = library(tmp_path / "library", distinct=4)
    save(picture(99), tmp_path / "library" / "crash-me.jpg")

    result = run_cli(
        "--catalog", "dask.sqlite", "scan", "--scheduler", scheduler, f"crashing://{tmp_path / 'library'}", cwd=tmp_path
    )

    assert f"fingerprinted {files}, unchanged 0, gone 0, skipped 0, errors 1" in result.stdout
    catalog = open_catalog(tmp_path / "dask.sqlite")
    try:
        (problem,) = [p for p in catalog.problems() if p.uri.endswith("crash-me.jpg")]
    finally:
        catalog.close()
    assert "the worker process reading it was killed (1 of 2 tries; KilledWorker" in problem.reason
    assert "read again by the next scan" in problem.reason


def test_a_scheduler_that_does_not_answer_is_one_message_not_a_traceback(tmp_path: Path) -> None:
    library(tmp_path / "library", distinct=1)
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}  # Dask's own setting

    result = run_cli("scan", "--scheduler", "tcp://127.0.0.1:9", "library", cwd=tmp_path, check=False, env=env)

    assert result.returncode == 1
    assert "cannot use the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_the_dask_extra_the_scan_names_the_install_command(tmp_path: Path) -> None:
    library(tmp_path / "library", distinct=1)
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from dam_dedupe.cli import main\n"
        "main(['scan', '--executor', 'dask', 'library'])\n"
    )

    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)

    assert result.returncode == 1
    assert "pip install 'dam-dedupe[dask]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_scheduler_lost_mid_scan_stops_the_scan_with_what_was_read_stored(tmp_path: Path) -> None:
    files = library(tmp_path / "library", distinct=40)
    spec = SourceSpec(str(tmp_path / "library"))
    catalog = open_catalog(tmp_path / "dask.sqlite")
    try:
        with dask_processes() as (address, scheduler):

            def kill_the_scheduler(label: str, done: int, total: int) -> None:
                if done >= 32 and scheduler.poll() is None:
                    scheduler.kill()

            with DaskCluster(address, WORKERS) as on_dask, pytest.raises(DamDedupeError) as lost:
                run_scan([spec], catalog, Host(), Config(), 2, on_dask, kill_the_scheduler, batch=on_dask.BATCH)
        read = len(catalog.images(thumbnails=False))
        assert "(was the Dask scheduler lost, or its cluster left without workers?)" in str(lost.value)
        assert f"the {read} images read so far are stored, and the next scan reads the rest" in str(lost.value)
        assert 32 <= read < files

        with dask_processes() as (address, _), DaskCluster(address, WORKERS) as on_dask:
            again = run_scan([spec], catalog, Host(), Config(), 2, on_dask, batch=on_dask.BATCH)
        assert (again.fingerprinted, again.unchanged, again.errors) == (files - read, read, 0)
        keys = [asset.record.key for asset in catalog.images(thumbnails=False)]
    finally:
        catalog.close()
    assert len(keys) == len(set(keys)) == files


def test_a_cluster_left_without_workers_stops_the_scan_with_what_was_read_stored(tmp_path: Path) -> None:
    files = library(tmp_path / "library", distinct=40)
    spec = SourceSpec(str(tmp_path / "library"))
    catalog = open_catalog(tmp_path / "dask.sqlite")
    try:
        with dask_processes() as (address, _), Client(address) as watcher:
            # the worker processes and the `dask worker` process whose nannies would start new ones
            doomed = {*watcher.run(os.getpid).values(), *watcher.run(os.getppid).values()}
            gone: list[int] = []

            def stop_every_worker(label: str, done: int, total: int) -> None:
                if done >= 32 and not gone:
                    for pid in doomed:
                        os.kill(pid, signal.SIGKILL)
                    gone.extend(doomed)

            with DaskCluster(address, WORKERS, no_worker_wait=3) as on_dask, pytest.raises(DamDedupeError) as lost:
                run_scan([spec], catalog, Host(), Config(), 2, on_dask, stop_every_worker, batch=on_dask.BATCH)
            assert on_dask.workerless
        read = len(catalog.images(thumbnails=False))
        assert "(was the Dask scheduler lost, or its cluster left without workers?)" in str(lost.value)
        assert f"the {read} images read so far are stored, and the next scan reads the rest" in str(lost.value)
        assert 32 <= read < files

        with dask_processes() as (address, _), DaskCluster(address, WORKERS) as on_dask:
            again = run_scan([spec], catalog, Host(), Config(), 2, on_dask, batch=on_dask.BATCH)
        assert (again.fingerprinted, again.unchanged, again.errors) == (files - read, read, 0)
    finally:
        catalog.close()


def test_without_a_scheduler_the_scan_starts_a_local_cluster_of_its_workers(tmp_path: Path) -> None:
    files = library(tmp_path / "library", distinct=4)

    run_cli("--catalog", "local.sqlite", "scan", "library", cwd=tmp_path)
    result = run_cli(
        "--catalog", "dask.sqlite", "scan", "--executor", "dask", "--workers", "2", "library", cwd=tmp_path
    )

    assert "fingerprinting on the Dask cluster at tcp://127.0.0.1:" in result.stderr
    assert f"fingerprinted {files}," in result.stdout
    assert clusters_of(tmp_path / "dask.sqlite") == clusters_of(tmp_path / "local.sqlite")


def test_a_cluster_whose_workers_run_another_version_is_refused_before_any_work(tmp_path: Path) -> None:
    # A worker machine with an older install, as importlib.metadata sees it: another dam-dedupe first on its path.
    elsewhere = tmp_path / "old-install"
    (elsewhere / "dam_dedupe-0.0.1.dist-info").mkdir(parents=True)
    (elsewhere / "dam_dedupe-0.0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: dam-dedupe\nVersion: 0.0.1\n", encoding="utf-8"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(elsewhere))
        old = LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.WARNING)
    try:
        with pytest.raises(DamDedupeError) as refused:
            DaskCluster(old.scheduler_address, 1)
    finally:
        old.close()

    ours = importlib.metadata.version("dam-dedupe")
    assert f"the Dask workers must run dam-dedupe {ours}, as this scan does; install it there" in str(refused.value)
    assert ": 0.0.1)" in str(refused.value)


def test_a_share_is_listed_a_top_level_folder_a_task_on_the_workers(
    tmp_path: Path, cluster: tuple[str, Path], with_test_plugin: Path
) -> None:
    scheduler, reads = cluster
    listed = reads.parent / "listed.log"
    listed.write_text("", encoding="utf-8")
    files = library(tmp_path / "library") + 1
    save(picture(90), tmp_path / "library" / "at the top.jpg")
    source = "counting://" + str(tmp_path / "library")
    run_cli("--catalog", "local.sqlite", "scan", source, cwd=tmp_path)
    config = tmp_path / "dam-dedupe.toml"  # written after: a dam-dedupe.toml where the scan runs is read
    config.write_text(f'[scan]\nexecutor = "dask"\nscheduler = "{scheduler}"\n', encoding="utf-8")

    on_dask = run_cli("--catalog", "dask.sqlite", "--config", str(config), "scan", source, cwd=tmp_path)

    assert f"listed {files}" in on_dask.stdout
    shards = [line.split(" ", 1) for line in listed.read_text(encoding="utf-8").splitlines()]
    assert sorted(shard for _, shard in shards) == ["", "copies", "originals", "副本"]
    assert {int(pid) for pid, _ in shards} <= worker_pids(scheduler)  # listed by the workers, not the scan
    assert fingerprinted_keys(tmp_path / "dask.sqlite") == fingerprinted_keys(tmp_path / "local.sqlite")
    assert clusters_of(tmp_path / "dask.sqlite") == clusters_of(tmp_path / "local.sqlite")


def test_a_shard_the_store_refuses_leaves_its_assets_present_and_the_rest_scanned(
    tmp_path: Path, cluster: tuple[str, Path], with_test_plugin: Path
) -> None:
    scheduler, _ = cluster
    library(tmp_path / "library", distinct=3)
    save(picture(91), tmp_path / "library" / "crash-dept" / "budget.jpg")  # the store refuses this folder
    source = "crashing://" + str(tmp_path / "library")
    run_cli("--catalog", "c.sqlite", "scan", source, cwd=tmp_path)  # listed here: nothing kills the scan
    save(picture(92), tmp_path / "library" / "originals" / "new.jpg")
    config = tmp_path / "dam-dedupe.toml"
    config.write_text(f'[scan]\nexecutor = "dask"\nscheduler = "{scheduler}"\n', encoding="utf-8")

    again = run_cli("--catalog", "c.sqlite", "--config", str(config), "scan", source, cwd=tmp_path, check=False)

    assert again.returncode == 3  # the source could not be listed completely
    keys = fingerprinted_keys(tmp_path / "c.sqlite")
    assert "crash-dept/budget.jpg" in keys  # not listed this time, and not marked gone for it
    assert "originals/new.jpg" in keys  # the other shards were listed and read
    report = run_cli("--catalog", "c.sqlite", "report", "--format", "json", "-o", "r.json", cwd=tmp_path)
    assert report.returncode == 0
    reasons = [e["reason"] for e in json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["errors"]]
    expected = "the listing of shard 'crash-dept' failed on the cluster: the store refused to list crash-dept"
    assert expected in reasons


def test_a_named_cluster_in_the_configuration_is_used_by_scan_and_match(tmp_path: Path) -> None:
    library(tmp_path / "library", distinct=4)
    run_cli("--catalog", "local.sqlite", "scan", "library", cwd=tmp_path)
    with dask_processes() as (address, _):
        (tmp_path / "dam-dedupe.toml").write_text(
            f'[clusters.hk-dc]\nscheduler = "{address}"\nindex_shards = 2\nno_worker_wait = 30\n', encoding="utf-8"
        )
        scanned = run_cli("--catalog", "dask.sqlite", "scan", "--cluster", "hk-dc", "library", cwd=tmp_path)
        (tmp_path / "dam-dedupe.toml").write_text(
            f'[scan]\ncluster = "hk-dc"\n\n[clusters.hk-dc]\nscheduler = "{address}"\n', encoding="utf-8"
        )
        matched = run_cli("--catalog", "dask.sqlite", "match", cwd=tmp_path)

    assert f"fingerprinting on the Dask cluster at {address}" in scanned.stderr
    assert "matching with the index in 2 shards and verification on the Dask cluster" in scanned.stderr
    assert f"matching with verification on the Dask cluster at {address}" in matched.stderr
    assert clusters_of(tmp_path / "dask.sqlite") == clusters_of(tmp_path / "local.sqlite")


def test_a_cluster_name_nothing_defines_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "library").mkdir()
    (tmp_path / "dam-dedupe.toml").write_text('[clusters.hk-dc]\nscheduler = "tcp://10.0.0.5:8786"\n', encoding="utf-8")
    unknown = run_cli("scan", "--cluster", "hk", "library", cwd=tmp_path, check=False)
    assert (
        unknown.returncode == 2 and "no [clusters.hk] table in the configuration (defined: ['hk-dc'])" in unknown.stderr
    )

    (tmp_path / "dam-dedupe.toml").write_text('[scan]\ncluster = "hk"\n', encoding="utf-8")
    configured = run_cli("match", cwd=tmp_path, check=False)
    assert configured.returncode == 2 and "[scan] cluster = 'hk' names no [clusters.hk] table" in configured.stderr
    assert not (tmp_path / "dam-dedupe.sqlite").exists()
