"""A check and a scan agree: the check index finds, for each catalogued image, the other members of its cluster."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import ImageOps

from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import Config
from dam_dedupe.host import Host
from dam_dedupe.matcher import PRESETS
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan
from dam_dedupe.service.lookup import CatalogIndex
from dam_dedupe.service.upload import fingerprint_upload
from tests.conftest import picture, save
from tests.test_matcher_groups import scene, window


def test_checking_each_catalogued_image_finds_exactly_its_cluster(tmp_path: Path, catalog_location: str) -> None:
    library = tmp_path / "lib"
    for seed in (21, 22, 23, 24):
        original = picture(seed, (600, 400))
        save(original, library / f"{seed}.jpg", quality=92)
        save(original.resize((300, 200)), library / "small" / f"{seed}.jpg", quality=80)
        save(original.rotate(90, expand=True), library / "turned" / f"{seed}.png", "PNG")
        save(ImageOps.mirror(original), library / "mirrored" / f"{seed}.webp", "WEBP", quality=90)
        save(ImageOps.grayscale(original), library / "grey" / f"{seed}.jpg")
    save(picture(31, (600, 400)), library / "alone.jpg")
    (library / "copies").mkdir()
    (library / "copies" / "21.jpg").write_bytes((library / "21.jpg").read_bytes())
    catalog = open_catalog(catalog_location)
    run_scan([SourceSpec(library.as_uri())], catalog, Host(), Config(), workers=1, executor_factory=_inline)
    members: dict[int, set[int]] = {}
    for cluster in catalog.clusters():
        ids = {asset_id for asset_id, _, _ in cluster.members}
        for asset_id in ids:
            members[asset_id] = ids - {asset_id}
    index = CatalogIndex(PRESETS["balanced"])
    index.replace(catalog.images_streamed())
    images = catalog.images(thumbnails=False)
    assert len(images) == 22 and len(members) == 21  # four clusters (21's has its byte copy too); one alone
    kinds: dict[str, dict[str, str]] = {}
    for asset in images:
        body = Path(asset.record.uri.removeprefix("file://")).read_bytes()
        found = index.matches(fingerprint_upload(body, 10**9), catalog.assets_by_id, catalog.clusters_of, asset.id)
        assert {m.asset_id for m in found} == members.get(asset.id, set()), asset.record.uri
        kinds[asset.record.uri.split("/lib/")[1]] = {m.uri.split("/lib/")[1]: m.match for m in found}
    assert kinds["21.jpg"] == {
        "copies/21.jpg": "exact",
        "small/21.jpg": "near",
        "grey/21.jpg": "near",
        "turned/21.png": "transformed",
        "mirrored/21.webp": "transformed",
    }
    assert kinds["alone.jpg"] == {}
    catalog.close()


def _inline(workers: int) -> ThreadPoolExecutor:
    """Fingerprint in this process (a thread): the test reads the catalog right after."""
    return ThreadPoolExecutor(1)


def test_a_check_finds_the_original_of_a_crop_of_four_to_five_percent_a_side(
    tmp_path: Path, catalog_location: str
) -> None:
    # As the scan finds it (tests/test_matcher_accuracy.py): every hash of the crop but the one
    # compared with the original's inner hash is beyond its radius.
    original = window(scene(0), 0.05, 0.05, 0.9, 0.9)
    save(original, tmp_path / "lib" / "original.jpg", quality=92)
    crop = io.BytesIO()
    window(original, 0.045, 0.042, 0.907, 0.912).save(crop, "JPEG", quality=85)
    catalog = open_catalog(catalog_location)
    run_scan([SourceSpec((tmp_path / "lib").as_uri())], catalog, Host(), Config(), workers=1, executor_factory=_inline)
    index = CatalogIndex(PRESETS["balanced"])
    index.replace(catalog.images_streamed())
    found = index.matches(fingerprint_upload(crop.getvalue(), 10**9), catalog.assets_by_id, catalog.clusters_of)
    assert [m.uri.rsplit("/", 1)[1] for m in found] == ["original.jpg"]
    assert "cropped" in found[0].evidence["relation"]  # type: ignore[operator]
    catalog.close()
