"""The same workflow on S3 (moto on loopback): the actions work through the adapter contract alone.

This is also the template for other stores' round-trip tests: build a library in the store,
scan it, then ``make_plan`` / ``approve`` / ``apply_plan`` / ``undo_run`` and compare the
store's objects (bytes and tags) before and after.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import parse_config
from dam_dedupe.governance import Selection, apply_plan, approve, make_plan, undo_run
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan
from tests.governance_library import QUARANTINE, build_library
from tests.servers.s3 import moto_endpoint, new_bucket, s3_admin, s3_env, s3_proxy  # noqa: F401


def bucket_state(client: Any, bucket: str) -> dict[str, tuple[str, dict[str, str], dict[str, str]]]:
    """Every object: SHA-256 of its bytes, its S3 tags and its user metadata."""
    state = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            got = client.get_object(Bucket=bucket, Key=key)
            tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
            state[key] = (
                hashlib.sha256(got["Body"].read()).hexdigest(),
                {t["Key"]: t["Value"] for t in tags},
                got.get("Metadata", {}),
            )
    return state


@pytest.mark.parametrize(
    ("action", "params", "versioned"),
    [("tag", {}, False), ("quarantine", {"merge": "yes"}, False), ("quarantine", {}, True), ("redirect", {}, False)],
)
def test_round_trip_on_s3_leaves_every_object_as_it_was(
    s3_env: Any, s3_admin: Any, new_bucket: Any, tmp_path: Path, action: str, params: dict[str, str], versioned: bool
) -> None:
    bucket = new_bucket(versioned=versioned)
    build_library(tmp_path / "lib")
    for path in sorted((tmp_path / "lib").rglob("*")):
        if path.is_file():  # every object carries a tag: moto fails a PutObjectTagging with an empty set
            s3_admin.put_object(
                Bucket=bucket,
                Key=f"lib/{path.relative_to(tmp_path / 'lib')}",
                Body=path.read_bytes(),
                Tagging="department=communications",
            )
    s3_admin.put_object_tagging(
        Bucket=bucket,
        Key="lib/Marketing 2026/IMG_4000.JPG",
        Tagging={
            "TagSet": [
                {"Key": "department", "Value": "communications"},
                {"Key": "photographer", "Value": "Chan Tai Man"},
            ]
        },
    )
    root = f"s3://{bucket}/lib"
    config = parse_config({"matching": {"preset": "exact"}, "policy": {"authoritative": [f"{root}/品牌"]}})
    catalog, host = open_catalog(tmp_path / "catalog.sqlite"), Host()
    run_scan([SourceSpec(root)], catalog, host, config, workers=1)
    start = bucket_state(s3_admin, bucket)

    plan = make_plan(catalog, host, config, action, params, Selection(), by="ana")
    approve(catalog, config, plan, by="lee", role="legal")
    report = apply_plan(catalog, host, config, plan, by="ana", out_dir=tmp_path)

    assert report.count("applied") == len(plan.steps) and len(plan.steps) >= 6, [r.reason for r in report.results]
    after = bucket_state(s3_admin, bucket)
    duplicates = [s.target.key for s in plan.steps if s.role == "duplicate"]
    if action == "tag":
        assert all(after[f"lib/{key}"][0] == start[f"lib/{key}"][0] for key in duplicates)
    elif action == "quarantine":
        assert not any(f"lib/{key}" in after for key in duplicates)
        held = [k for k in after if k.startswith(f"lib/{QUARANTINE}/c-")]
        assert sorted(k.split("/", 3)[3] for k in held) == sorted(duplicates)
        assert any(k.startswith(f"lib/{QUARANTINE}/manifests/") for k in after)
        if params.get("merge") == "yes":
            assert after["lib/品牌/master_0.jpg"][1]["photographer"] == "Chan Tai Man"
    else:
        for key in duplicates:  # a stub naming the canonical, in metadata or tags, where the copy was
            assert after[f"lib/{key}"][0] != start[f"lib/{key}"][0]
            assert f"{root}/品牌/" in str(after[f"lib/{key}"][1:])

    undone = undo_run(catalog, host, config, report.run_id, by="ana")

    assert undone.count("undone") == len(plan.steps), [r.reason for r in undone.results]
    assert bucket_state(s3_admin, bucket) == start
    catalog.close()
