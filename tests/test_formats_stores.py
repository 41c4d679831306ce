"""Documents in a bucket: a real S3 protocol server (moto), exact matching, rescans that read nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import Config
from dam_dedupe.host import Host
from dam_dedupe.matcher import PRESETS
from dam_dedupe.records import SourceSpec
from dam_dedupe.report import build_report
from dam_dedupe.scan import run_scan
from tests.formats_library import encoded, library_image, make_pptx, other_image
from tests.servers.s3 import FaultProxy, moto_endpoint, new_bucket, s3_admin, s3_env, s3_proxy  # noqa: F401


def test_exact_matching_in_a_bucket_finds_a_library_file_copied_byte_for_byte_into_a_deck(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str], tmp_path: Path
) -> None:
    brand = encoded(library_image(), "JPEG", (400, 400))
    deck = make_pptx(tmp_path / "deck.pptx", [brand, encoded(other_image(0), "PNG")])
    bucket = new_bucket()
    s3_admin.put_object(Bucket=bucket, Key="library/brand.jpg", Body=brand)
    s3_admin.put_object(Bucket=bucket, Key="sales/季度 deck.pptx", Body=deck.read_bytes())
    catalog = open_catalog(tmp_path / "c.sqlite")
    spec, exact = SourceSpec(f"s3://{bucket}"), Config(matching=PRESETS["exact"])

    first = run_scan([spec], catalog, Host(), exact, workers=2)
    reads = len(s3_env.object_gets)
    s3_env.reset()
    second = run_scan([spec], catalog, Host(), exact, workers=2)

    assert first.errors == 0 and reads == 2  # the deck is read once, for both of its pictures
    [cluster] = build_report(catalog)["clusters"]
    members = {m["uri"]: m for m in cluster["members"]}
    part = f"s3://{bucket}/sales/季度 deck.pptx#ppt/media/image1.jpg"
    assert set(members) == {f"s3://{bucket}/library/brand.jpg", part}
    assert members[part]["match"] == "exact" and members[part]["embedded_in"] == f"s3://{bucket}/sales/季度 deck.pptx"
    assert s3_env.object_gets == [] and second.fingerprinted == 0
