"""Scanning a bucket end to end: the same clusters as on disk, no reads on a rescan, throttling survived."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from dam_dedupe.catalog import open_catalog
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.report import build_report
from dam_dedupe.scan import run_scan
from tests.conftest import picture, run_cli
from tests.servers.s3 import FaultProxy, moto_endpoint, new_bucket, s3_admin, s3_env, s3_proxy  # noqa: F401


def jpeg(seed: int, quality: int = 90, scale: float = 1.0) -> bytes:
    """A distinct JPEG per seed; ``scale`` < 1 makes a resized (near-duplicate) copy."""
    img = picture(seed)
    if scale != 1.0:
        img = img.resize((int(img.width * scale), int(img.height * scale)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def library() -> dict[str, bytes]:
    """Relative path -> bytes: originals, byte-identical copies, a resized copy, a re-encode, a text file."""
    files = {f"originals/photo{n}.jpg": jpeg(n) for n in range(5)}
    files["副本/海边 照片 0.jpg"] = files["originals/photo0.jpg"]
    files["copies deep/x/renamed 1.jpeg"] = files["originals/photo1.jpg"]
    files["副本/photo1 again.jpg"] = files["originals/photo1.jpg"]
    files["small/photo2 small.jpg"] = jpeg(2, scale=0.5)
    files["reencoded/photo3.jpg"] = jpeg(3, quality=60)
    files["notes.txt"] = b"not an image"
    return files


def upload(client: Any, bucket: str, prefix: str, files: dict[str, bytes]) -> None:
    """Put every file at ``prefix + path``."""
    for path, data in files.items():
        client.put_object(Bucket=bucket, Key=prefix + path, Body=data)


def clusters_of(report: dict[str, Any], root_uri: str) -> set[frozenset[str]]:
    """Each cluster as the set of its members' paths relative to the scanned root."""

    def relative(uri: str) -> str:
        if uri.startswith("file:"):
            return unquote(urlsplit(uri).path).removeprefix(unquote(urlsplit(root_uri).path))
        return uri.removeprefix(root_uri)

    return {frozenset(relative(m["uri"]) for m in c["members"]) for c in report["clusters"]}


@pytest.mark.parametrize("preset", ["exact", "balanced"])  # exact mode reads only store-hash candidates
def test_a_bucket_and_the_same_files_on_disk_give_the_same_clusters(
    preset: str, s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str], tmp_path: Path
) -> None:
    files = library()
    root = tmp_path / "library"
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    bucket = new_bucket()
    upload(s3_admin, bucket, "lib/", files)

    reports = {}
    for name, uri in (("disk", root.resolve().as_uri() + "/"), ("bucket", f"s3://{bucket}/lib/")):
        catalog = str(tmp_path / f"{name}.sqlite")
        run_cli("--catalog", catalog, "scan", "--workers", "2", "--preset", preset, uri, cwd=tmp_path)
        run_cli("--catalog", catalog, "report", "--format", "json", "-o", f"{name}.json", cwd=tmp_path)
        reports[name] = (json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8")), uri)

    on_disk, in_bucket = (clusters_of(*reports[n]) for n in ("disk", "bucket"))
    assert in_bucket == on_disk
    assert {"originals/photo0.jpg", "副本/海边 照片 0.jpg"} in [set(c) for c in in_bucket]
    assert reports["bucket"][0]["errors"] == []


def test_a_second_scan_of_an_unchanged_bucket_reads_no_object(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str], catalog_location: str
) -> None:
    bucket = new_bucket(versioned=True)
    upload(s3_admin, bucket, "", library())
    catalog = open_catalog(catalog_location)
    spec = SourceSpec(f"s3://{bucket}")

    first = run_scan([spec], catalog, Host(), workers=2)
    reads_first = len(s3_env.object_gets)
    s3_env.reset()
    second = run_scan([spec], catalog, Host(), workers=2)

    assert first.fingerprinted == 10 and reads_first == 10  # every image, once; not the text file
    assert s3_env.object_gets == []
    assert (second.listed, second.unchanged, second.fingerprinted) == (first.listed, first.listed, 0)


def test_the_scan_survives_20_percent_throttling_and_misses_nothing(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str], tmp_path: Path
) -> None:
    files = library()
    bucket = new_bucket()
    upload(s3_admin, bucket, "", files)
    spec = SourceSpec(f"s3://{bucket}/")

    calm = open_catalog(tmp_path / "calm.sqlite")
    run_scan([spec], calm, Host(), workers=1)
    s3_env.reset(fail_rate=0.2)
    stormy = open_catalog(tmp_path / "stormy.sqlite")
    summary = run_scan([spec], stormy, Host(), workers=2)

    report = build_report(stormy)
    assert s3_env.failed > 0
    assert report["errors"] == []
    assert summary.fingerprinted == 10
    assert clusters_of(report, spec.uri) == clusters_of(build_report(calm), spec.uri)


def test_an_object_deleted_after_listing_is_recorded_and_the_scan_goes_on(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str], catalog_location: str
) -> None:
    bucket = new_bucket()
    upload(s3_admin, bucket, "", library())

    def delete_then_read(workers: int) -> Executor:
        """Runs between listing and reading: the moment a user deletes an object."""
        s3_admin.delete_object(Bucket=bucket, Key="originals/photo4.jpg")
        return ThreadPoolExecutor(max_workers=1)

    catalog = open_catalog(catalog_location)
    summary = run_scan([SourceSpec(f"s3://{bucket}")], catalog, Host(), workers=1, executor_factory=delete_then_read)

    report = build_report(catalog)
    assert [(e["uri"], e["reason"].startswith("gone since it was listed")) for e in report["errors"]] == [
        (f"s3://{bucket}/originals/photo4.jpg", True)
    ]
    assert summary.fingerprinted == 9
    assert report["summary"]["clusters"] >= 2
