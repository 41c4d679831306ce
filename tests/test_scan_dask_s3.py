"""A bucket scanned on a Dask cluster, with moto enforcing IAM: the scanning machine may only list, the
workers may only read, so each side can only have worked with its own credentials."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from distributed import LocalCluster

from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import Config
from dam_dedupe.dask_executor import DaskCluster
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.report import build_report
from dam_dedupe.scan import run_scan
from tests.servers.s3 import FaultProxy, iam_user, moto_endpoint, new_bucket, s3_admin, s3_env, s3_proxy  # noqa: F401
from tests.test_s3_scan import clusters_of, library, upload


def test_workers_read_with_their_own_credentials_and_the_scan_only_lists_with_its_own(
    s3_env: FaultProxy,
    s3_admin: Any,
    new_bucket: Callable[..., str],
    iam_user: Callable[[str, list[str]], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bucket = new_bucket()
    files = library()
    upload(s3_admin, bucket, "", files)
    spec = SourceSpec(f"s3://{bucket}")
    local = open_catalog(tmp_path / "local.sqlite")
    run_scan([spec], local, Host(), Config(), 1)  # moto's own test credentials, before IAM is enforced
    expected = clusters_of(build_report(local), spec.uri)
    local.close()
    reader = iam_user(bucket, ["s3:GetObject"])
    lister = iam_user(bucket, ["s3:ListBucket"])

    for name, value in reader.items():
        monkeypatch.setenv(name, value)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.WARNING
    )  # its workers start with the reader's credentials in their environment
    try:
        for name, value in lister.items():
            monkeypatch.setenv(name, value)
        s3_env.reset()
        catalog = open_catalog(tmp_path / "dask.sqlite")
        with DaskCluster(cluster.scheduler_address, 2) as on_dask:
            summary = run_scan([spec], catalog, Host(), Config(), on_dask.threads, on_dask, batch=on_dask.BATCH)
        report = build_report(catalog)
        catalog.close()
    finally:
        cluster.close()

    assert report["errors"] == []
    assert (summary.fingerprinted, summary.skipped) == (len(files) - 1, 1)  # all but the text file
    assert clusters_of(report, spec.uri) == expected
    assert sorted(get.removeprefix(f"/{bucket}/") for get in s3_env.object_gets) == sorted(
        key for key in files if key.endswith((".jpg", ".jpeg"))
    )


def test_a_bucket_listed_in_shards_has_its_folders_listed_by_the_workers(
    s3_env: FaultProxy,
    s3_admin: Any,
    new_bucket: Callable[..., str],
    iam_user: Callable[[str, list[str]], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bucket = new_bucket()
    files = library()
    upload(s3_admin, bucket, "", files)
    local = open_catalog(tmp_path / "local.sqlite")
    run_scan([SourceSpec(f"s3://{bucket}")], local, Host(), Config(), 1)
    expected = clusters_of(build_report(local), f"s3://{bucket}/")
    local.close()
    spec = SourceSpec(f"s3://{bucket}", options=(("list_in_shards", True),))
    reader = iam_user(bucket, ["s3:GetObject", "s3:ListBucket"])  # a worker lists its shards, then reads
    lister = iam_user(bucket, ["s3:ListBucket"])

    for name, value in reader.items():
        monkeypatch.setenv(name, value)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.WARNING
    )
    try:
        for name, value in lister.items():
            monkeypatch.setenv(name, value)
        s3_env.reset()
        catalog = open_catalog(tmp_path / "dask.sqlite")
        with DaskCluster(cluster.scheduler_address, 2) as on_dask:
            summary = run_scan(
                [spec], catalog, Host(), Config(), on_dask.threads, on_dask, batch=on_dask.BATCH, shard_listing=True
            )
        report = build_report(catalog)
        catalog.close()
    finally:
        cluster.close()

    listings = [
        (parse_qs(urlsplit(path).query).get("prefix", [""])[0], "delimiter" in path, signer)
        for (method, path), signer in zip(s3_env.requests, s3_env.signers, strict=True)
        if method == "GET" and "list-type=2" in path
    ]
    folders = {key.split("/")[0] + "/" for key in files if "/" in key}
    assert ("", True, lister["AWS_ACCESS_KEY_ID"]) in listings  # the scanning machine: the top level
    assert {prefix for prefix, _, signer in listings if signer == reader["AWS_ACCESS_KEY_ID"]} >= folders
    assert not any(prefix for prefix, _, signer in listings if signer == lister["AWS_ACCESS_KEY_ID"])
    assert report["errors"] == []
    assert (summary.listed, summary.fingerprinted) == (len(files), len(files) - 1)
    assert clusters_of(report, f"s3://{bucket}/") == expected
