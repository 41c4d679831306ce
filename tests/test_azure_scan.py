"""End to end: scanning an Azure container (Azurite) finds what scanning the same images on disk finds."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from azure.storage.blob import BlobBlock, BlobServiceClient, ContainerClient

from dam_dedupe.adapters.azure_blob import AzureBlobAdapter
from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import Config
from dam_dedupe.host import Host
from dam_dedupe.matcher import PRESETS
from dam_dedupe.records import SourceSpec
from dam_dedupe.report import build_report
from dam_dedupe.scan import run_scan
from tests.conftest import picture, run_cli, save
from tests.servers.azurite import ACCOUNT, Azurite, FaultProxy, azurite, connection_string, fault_proxy  # noqa: F401

EXACT = Config(matching=PRESETS["exact"])


def build_library(root: Path) -> None:
    """Five pictures with exact copies, a re-encoded copy, a resized copy and Chinese names with spaces."""
    for n in range(5):
        save(picture(n), root / "originals" / f"photo{n}.jpg", quality=90)
    for n in (0, 1, 2):
        (root / "shared" / "copies").mkdir(parents=True, exist_ok=True)
        (root / "shared" / "copies" / f"copy of photo{n}.jpg").write_bytes(
            (root / "originals" / f"photo{n}.jpg").read_bytes()
        )
    (root / "市场部 图片").mkdir()
    (root / "市场部 图片" / "海报 1.jpg").write_bytes((root / "originals" / "photo1.jpg").read_bytes())
    save(picture(3), root / "web" / "photo3 small.jpg", quality=60)
    save(picture(4).resize((160, 120)), root / "web" / "photo4 thumb.png", "PNG")
    (root / "notes.txt").write_text("not an image", encoding="utf-8")


def upload_tree(root: Path, container: ContainerClient) -> int:
    """Upload every file under ``root`` with its relative path as the blob name; return how many."""
    files = [p for p in root.rglob("*") if p.is_file()]
    for path in files:
        container.upload_blob(path.relative_to(root).as_posix(), path.read_bytes())
    return len(files)


def clusters_by_relative_path(report: dict, prefix: str) -> set[frozenset[str]]:
    """Each cluster as the set of its members' paths relative to the scanned root."""
    return {
        frozenset(unquote(member["uri"]).removeprefix(prefix) for member in cluster["members"])
        for cluster in report["clusters"]
    }


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image library on local disk."""
    root = tmp_path_factory.mktemp("library")
    build_library(root)
    return root


@pytest.fixture
def loaded_container(azurite: Azurite, library: Path) -> Iterator[ContainerClient]:
    """A fresh container holding the library."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.create_container(f"e2e{uuid.uuid4().hex[:16]}")
    upload_tree(library, client)
    yield client
    client.delete_container()


@pytest.fixture
def proxy(fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> FaultProxy:
    """The fault proxy, reset, named by the connection string the adapter (and its workers) read."""
    for name in ("AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_KEY", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    fault_proxy.reset()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(fault_proxy.endpoint))
    return fault_proxy


def test_a_container_and_the_same_images_on_disk_give_the_same_clusters(
    library: Path, loaded_container: ContainerClient, proxy: FaultProxy, tmp_path: Path
) -> None:
    container_uri = f"azure://{ACCOUNT}/{loaded_container.container_name}"
    env = dict(os.environ)
    reports = {}
    for label, uri in (("local", library.as_uri()), ("azure", container_uri)):
        catalog = str(tmp_path / f"{label}.sqlite")
        run_cli("--catalog", catalog, "scan", "--workers", "2", uri, cwd=tmp_path, env=env)
        run_cli("--catalog", catalog, "report", "--format", "json", "-o", f"{label}.json", cwd=tmp_path, env=env)
        reports[label] = json.loads((tmp_path / f"{label}.json").read_text(encoding="utf-8"))

    local = clusters_by_relative_path(reports["local"], unquote(library.as_uri()) + "/")
    remote = clusters_by_relative_path(reports["azure"], container_uri + "/")
    assert remote == local
    assert frozenset({"originals/photo1.jpg", "shared/copies/copy of photo1.jpg", "市场部 图片/海报 1.jpg"}) in remote
    assert reports["azure"]["errors"] == []
    assert reports["azure"]["summary"]["images"] == reports["local"]["summary"]["images"] == 11


def test_exact_mode_uses_content_md5_and_reads_only_what_it_cannot_settle(
    library: Path, azurite: Azurite, proxy: FaultProxy, tmp_path: Path
) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(f"md5{uuid.uuid4().hex[:16]}")
    for path in (p for p in library.rglob("*") if p.is_file()):
        name = path.relative_to(library).as_posix()
        if name.startswith("shared/"):  # committed from blocks: no Content-MD5, must be read
            blob = container.get_blob_client(name)
            blob.stage_block("YmxvY2sx", path.read_bytes())
            blob.commit_block_list([BlobBlock("YmxvY2sx")])
        else:
            container.upload_blob(name, path.read_bytes())
    uri = f"azure://{ACCOUNT}/{container.container_name}"

    remote = open_catalog(tmp_path / "remote.sqlite")
    run_scan([SourceSpec(uri)], remote, Host(), EXACT, workers=1)
    local = open_catalog(tmp_path / "local.sqlite")
    run_scan([SourceSpec(library.as_uri())], local, Host(), EXACT, workers=1)

    assert clusters_by_relative_path(build_report(remote), uri + "/") == clusters_by_relative_path(
        build_report(local), unquote(library.as_uri()) + "/"
    )
    downloaded = {
        unquote(target.split("/", 3)[3])
        for method, target in proxy.requests
        if method == "GET" and "comp=" not in target
    }
    assert "originals/photo4.jpg" not in downloaded  # its MD5 and size are unique: settled without a read
    assert {"shared/copies/copy of photo1.jpg", "originals/photo1.jpg"} <= downloaded
    container.delete_container()


def test_a_second_scan_of_an_unchanged_container_downloads_nothing(
    loaded_container: ContainerClient, proxy: FaultProxy, catalog_location: str
) -> None:
    spec = SourceSpec(f"azure://{ACCOUNT}/{loaded_container.container_name}")
    catalog = open_catalog(catalog_location)
    first = run_scan([spec], catalog, Host(), Config(), workers=1)
    assert first.fingerprinted == 11 and proxy.content_gets == 11

    proxy.content_gets = 0
    second = run_scan([spec], catalog, Host(), Config(), workers=1)

    assert proxy.content_gets == 0
    assert (second.fingerprinted, second.unchanged, second.errors) == (0, first.listed, 0)


def test_tags_in_the_metadata_fallback_do_not_make_the_next_scan_download(
    loaded_container: ContainerClient, proxy: FaultProxy, catalog_location: str
) -> None:
    spec = SourceSpec(f"azure://{ACCOUNT}/{loaded_container.container_name}")
    catalog = open_catalog(catalog_location)
    first = run_scan([spec], catalog, Host(), Config(), workers=1)
    adapter = AzureBlobAdapter(spec)
    record = adapter.stat("originals/photo0.jpg")
    assert record is not None
    adapter.set_tags(record, {f"dam-dedupe-{i}": "x" for i in range(12)})  # two tags go to metadata
    assert adapter.stat(record.key) != record  # new ETag and Last-Modified, same Content-MD5

    proxy.content_gets = 0
    second = run_scan([spec], catalog, Host(), Config(), workers=1)

    assert proxy.content_gets == 0
    assert (second.fingerprinted, second.unchanged) == (0, first.listed)


def test_a_scan_under_20_percent_server_busy_misses_nothing(
    loaded_container: ContainerClient, proxy: FaultProxy, tmp_path: Path
) -> None:
    spec = SourceSpec(f"azure://{ACCOUNT}/{loaded_container.container_name}", options=(("page_size", 4),))
    clean = open_catalog(tmp_path / "clean.sqlite")
    run_scan([spec], clean, Host(), Config(), workers=1)
    expected = clusters_by_relative_path(build_report(clean), spec.uri + "/")

    proxy.reset()
    proxy.fault_rate = 0.2
    faulty = open_catalog(tmp_path / "faulty.sqlite")
    summary = run_scan([spec], faulty, Host(), Config(), workers=2)

    report = build_report(faulty)
    assert proxy.faults > 0
    assert summary.errors == 0 and report["errors"] == []
    assert summary.fingerprinted == 11
    assert clusters_by_relative_path(report, spec.uri + "/") == expected
