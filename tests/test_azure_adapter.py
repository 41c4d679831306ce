"""The Azure Blob adapter against Azurite, through a fault-injecting proxy where it matters."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote

import pytest
from azure.storage.blob import (
    BlobBlock,
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_container_sas,
)

from dam_dedupe.adapters.azure_blob import AzureBlobAdapter
from dam_dedupe.adapters.azure_tags import FALLBACK_METADATA_KEY
from dam_dedupe.errors import AssetError, AssetGone, ConfigError, SourceError, TransientError
from dam_dedupe.host import Host
from dam_dedupe.records import AssetRecord, ListingProblem, SourceSpec
from tests.servers.azurite import (  # noqa: F401
    ACCOUNT,
    ACCOUNT_KEY,
    Azurite,
    FaultProxy,
    azurite,
    connection_string,
    fault_proxy,
    free_port,
)

AZURE_ENV = (
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ENDPOINT_SUFFIX",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_AUTHORITY_HOST",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Azure credentials from the machine running the tests."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy(fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> FaultProxy:
    """The proxy, reset, with the adapter's connection string pointing through it."""
    fault_proxy.reset()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(fault_proxy.endpoint))
    return fault_proxy


@pytest.fixture
def container(azurite: Azurite) -> Iterator[ContainerClient]:
    """A fresh container, written to directly (not through the proxy)."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.create_container(f"t{uuid.uuid4().hex[:20]}")
    yield client
    client.delete_container()


def adapter_for(client: ContainerClient, prefix: str = "", **options: object) -> AzureBlobAdapter:
    """An adapter for the container (through whatever endpoint the environment names)."""
    uri = f"azure://{ACCOUNT}/{client.container_name}/{prefix}".rstrip("/")
    return AzureBlobAdapter(SourceSpec(uri, options=tuple(options.items())))


def records(adapter: AzureBlobAdapter) -> dict[str, AssetRecord]:
    """The listing by key; fails on listing problems."""
    found: dict[str, AssetRecord] = {}
    for item in adapter.list_assets():
        assert isinstance(item, AssetRecord), item
        assert item.key not in found, f"listed twice: {item.key}"
        found[item.key] = item
    return found


def upload_without_md5(client: ContainerClient, name: str, data: bytes) -> None:
    """A blob committed from blocks: the service stores no Content-MD5 for it."""
    blob = client.get_blob_client(name)
    blob.stage_block("YmxvY2sx", data)
    blob.commit_block_list([BlobBlock("YmxvY2sx")])


# -- discovery ---------------------------------------------------------------------------------


def test_the_azure_scheme_is_served_through_the_entry_point() -> None:
    assert Host().adapter_class("azure://acct/container") is AzureBlobAdapter


def test_a_uri_without_a_container_or_a_bad_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="azure://ACCOUNT/CONTAINER/PREFIX"):
        AzureBlobAdapter(SourceSpec("azure://contosomedia"))
    with pytest.raises(ConfigError, match="page_size option must be a whole number from 1 to 5000"):
        AzureBlobAdapter(SourceSpec("azure://contosomedia/photos", options=(("page_size", 10000),)))


def test_without_the_sdk_the_module_imports_and_names_the_extra() -> None:
    hide_sdk = (
        "import sys; sys.modules['azure.storage.blob'] = None\n"
        "from dam_dedupe.adapters.azure_blob import AzureBlobAdapter\n"
        "from dam_dedupe.errors import MissingExtra\n"
        "try:\n    AzureBlobAdapter.check_available()\nexcept MissingExtra as exc:\n    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", hide_sdk], capture_output=True, text=True, check=True)
    assert "pip install 'dam-dedupe[azure]'" in result.stdout


# -- listing ---------------------------------------------------------------------------------------


def test_records_carry_size_times_etag_md5_metadata_and_tags(container: ContainerClient, proxy: FaultProxy) -> None:
    data = b"\x89PNG fake image bytes"
    container.upload_blob("相册/春节 合影.png", data, metadata={"owner": "comms"}, tags={"project": "lny"})
    upload_without_md5(container, "blocks/no md5.jpg", b"block content")

    found = records(adapter_for(container))

    assert set(found) == {"相册/春节 合影.png", "blocks/no md5.jpg"}
    photo = found["相册/春节 合影.png"]
    assert photo.name == "春节 合影.png"
    assert (
        photo.uri
        == f"azure://{ACCOUNT}/{container.container_name}/%E7%9B%B8%E5%86%8C/%E6%98%A5%E8%8A%82%20%E5%90%88%E5%BD%B1.png"
    )
    assert photo.size == len(data)
    assert photo.store_hash == f"md5:{hashlib.md5(data).hexdigest()}"
    assert photo.etag and photo.etag.startswith('"')
    assert photo.modified is not None and photo.modified.utcoffset() is not None
    assert photo.metadata["meta:owner"] == "comms"
    assert photo.metadata["tag:project"] == "lny"
    assert found["blocks/no md5.jpg"].store_hash is None


def test_names_with_url_characters_round_trip(container: ContainerClient, proxy: FaultProxy) -> None:
    names = ["100% #1?.jpg", "a+b=c&d.jpg", "emoji 📷.jpg", "繁體 中文/照片 (1).JPG"]
    for name in names:
        container.upload_blob(name, name.encode())
    adapter = adapter_for(container)
    found = records(adapter)
    assert sorted(found) == sorted(names)
    for key, record in found.items():
        with adapter.open(record) as stream:
            assert stream.read() == key.encode()
        assert adapter.stat(key) == record
    assert found["100% #1?.jpg"].uri.endswith("/100%25%20%231%3F.jpg")


def test_a_prefix_scopes_the_listing_to_that_folder(container: ContainerClient, proxy: FaultProxy) -> None:
    for name in ("photos/a.jpg", "photos/sub/b.jpg", "photos-old/c.jpg", "other.jpg"):
        container.upload_blob(name, b"x")
    assert set(records(adapter_for(container, "photos"))) == {"photos/a.jpg", "photos/sub/b.jpg"}


def test_a_listing_in_shards_is_the_whole_listing_each_blob_in_one_shard(
    container: ContainerClient, proxy: FaultProxy
) -> None:
    names = ["photos/a.jpg", "photos/z.jpg", "photos/hr/1.jpg", "photos/hr/sub/2.jpg", "photos/營銷部/3.jpg"]
    names += [f"photos/{i:02d}.jpg" for i in range(8)] + [f"photos/f{i}/x.jpg" for i in range(5)]
    for name in [*names, "photos-old/c.jpg", "other.jpg"]:
        container.upload_blob(name, name.encode())
    container.upload_blob("photos/empty", b"", metadata={"hdi_isfolder": "true"})  # a Data Lake folder
    whole = records(adapter_for(container, "photos"))
    sharded = adapter_for(container, "photos", list_in_shards=True, page_size=3)  # folders over several pages

    shards = sharded.listing_shards()
    listed = [record for shard in shards or [] for record in sharded.list_shard(shard)]

    assert shards == ["", *(f"f{i}/" for i in range(5)), "hr/", "營銷部/"]
    assert sorted(whole) == sorted(names)
    assert sorted(r.key for r in listed if isinstance(r, AssetRecord)) == sorted(whole)  # each blob once
    assert {r.key: r for r in listed if isinstance(r, AssetRecord)} == whole
    assert records(sharded) == whole  # listed here, shard after shard
    assert adapter_for(container, "photos").listing_shards() is None  # the option is off by default


def test_small_pages_list_every_blob_once(container: ContainerClient, proxy: FaultProxy) -> None:
    for i in range(20):
        container.upload_blob(f"p/{i:02d}.jpg", b"%d" % i)
    found = records(adapter_for(container, page_size=7))
    assert len(found) == 20
    assert proxy.count("GET", "comp=list") == 3


def test_a_listing_beyond_5000_blobs_is_complete(container: ContainerClient, proxy: FaultProxy) -> None:
    names = [f"bulk/{i:05d}.jpg" for i in range(5003)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda name: container.upload_blob(name, name.encode()), names))
    found = records(adapter_for(container))
    assert sorted(found) == names
    assert proxy.count("GET", "comp=list") == 2


def test_listings_and_stat_agree_so_a_rescan_sees_nothing_changed(
    container: ContainerClient, proxy: FaultProxy
) -> None:
    container.upload_blob("a.jpg", b"a")
    upload_without_md5(container, "b.jpg", b"b")
    adapter = adapter_for(container)
    first, second = records(adapter), records(adapter)
    assert first == second
    for key, record in first.items():
        assert adapter.stat(key) == record
    assert adapter.stat("missing.jpg") is None


def test_an_identity_that_may_not_read_tags_still_lists(
    container: ContainerClient, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    container.upload_blob("t.jpg", b"t", tags={"project": "x"}, metadata={"owner": "comms"})
    proxy.refuse = ("include=metadata,tags", "AuthorizationPermissionMismatch")  # Storage Blob Data Reader
    with caplog.at_level(logging.INFO):
        [record] = records(adapter_for(container)).values()
    assert record.metadata == {"meta:owner": "comms"}
    assert "not allowed to read index tags" in caplog.text


def test_archived_blobs_are_reported_not_read(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("cold.jpg", b"c").set_standard_blob_tier("Archive")
    container.upload_blob("hot.jpg", b"h")
    items = list(adapter_for(container).list_assets())
    problems = [i for i in items if isinstance(i, ListingProblem)]
    assert [i.key for i in items if isinstance(i, AssetRecord)] == ["hot.jpg"]
    assert len(problems) == 1 and "Archive" in problems[0].reason and problems[0].uri.endswith("cold.jpg")


# -- reading ----------------------------------------------------------------------------------------


def test_open_streams_large_blobs_in_bounded_ranged_reads(container: ContainerClient, proxy: FaultProxy) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    upload_without_md5(container, "big.tif", data)
    adapter = adapter_for(container, chunk_size=256 * 1024, read_ahead=3)
    record = records(adapter)["big.tif"]
    proxy.content_gets = 0
    with adapter.open(record) as stream:
        assert stream.read() == data
    assert proxy.content_gets == 13  # ceil(3 MiB + 5 B / 256 KiB): one ranged GET per chunk


def test_a_blob_deleted_after_listing_is_gone(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("soon gone.jpg", b"x")
    adapter = adapter_for(container)
    record = records(adapter)["soon gone.jpg"]
    container.delete_blob("soon gone.jpg")
    with pytest.raises(AssetGone):
        adapter.open(record)


def test_a_blob_changed_after_listing_is_not_read_under_the_old_record(
    container: ContainerClient, proxy: FaultProxy
) -> None:
    container.upload_blob("edited.jpg", b"before")
    adapter = adapter_for(container)
    record = records(adapter)["edited.jpg"]
    container.upload_blob("edited.jpg", b"after!", overwrite=True)
    with pytest.raises(AssetError, match="changed since it was listed"):
        adapter.open(record)


# -- faults and retries -------------------------------------------------------------------------


def test_server_busy_answers_are_retried_until_everything_is_read(
    container: ContainerClient, proxy: FaultProxy
) -> None:
    blobs = {f"f/{i}.jpg": os.urandom(100 + i) for i in range(30)}
    for name, data in blobs.items():
        container.upload_blob(name, data)
    adapter = adapter_for(container, page_size=5)
    proxy.fault_rate = 0.3
    found = records(adapter)
    for key, record in found.items():
        with adapter.open(record) as stream:
            assert stream.read() == blobs[key]
    assert set(found) == set(blobs)
    assert proxy.faults > 5


def test_attempts_are_bounded_and_the_sdk_does_not_retry_on_its_own(
    container: ContainerClient, proxy: FaultProxy
) -> None:
    container.upload_blob("x.jpg", b"x")
    proxy.fault_rate = 1.0
    proxy.retry_after_ms = 10
    with pytest.raises(SourceError, match="503 ServerBusy"):
        records(adapter_for(container, retry_attempts=3))
    assert proxy.count("GET", "comp=list") == 3


def test_the_services_retry_hint_is_honoured(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("x.jpg", b"x")
    proxy.fail_next, proxy.retry_after_ms = 1, 1500
    started = time.monotonic()
    assert set(records(adapter_for(container))) == {"x.jpg"}
    assert 1.5 <= time.monotonic() - started < 6
    assert proxy.count("GET", "comp=list") == 2


def test_a_long_retry_hint_is_capped_by_max_retry_wait_and_said_once(
    container: ContainerClient, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    container.upload_blob("x.jpg", b"x")
    container.upload_blob("y.jpg", b"y")
    adapter = adapter_for(container, max_retry_wait=0.5)
    found = records(adapter)
    proxy.fail_next, proxy.retry_after_ms = 2, 3_600_000  # the service asks for an hour

    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert adapter.stat("x.jpg") == found["x.jpg"] and adapter.stat("y.jpg") == found["y.jpg"]

    assert 1.0 <= time.monotonic() - started < 5
    assert caplog.text.count("max_retry_wait") == 1


def test_a_service_still_busy_after_the_retries_is_transient_never_gone(
    container: ContainerClient, proxy: FaultProxy
) -> None:
    container.upload_blob("x.jpg", b"x")
    adapter = adapter_for(container, retry_attempts=2)
    record = records(adapter)["x.jpg"]
    proxy.fault_rate, proxy.retry_after_ms = 1.0, 10

    with pytest.raises(TransientError, match="ServerBusy"):
        adapter.stat("x.jpg")
    with pytest.raises(TransientError):
        adapter.delete(record)
    proxy.reset()
    assert adapter.stat("x.jpg") == record


def test_a_bad_max_retry_wait_is_a_config_error(container: ContainerClient) -> None:
    with pytest.raises(ConfigError, match="max_retry_wait"):
        adapter_for(container, max_retry_wait="soon")


def test_reading_the_first_bytes_does_not_download_the_blob(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("big.tif", os.urandom(8 * 1024 * 1024))
    adapter = adapter_for(container, chunk_size=256 * 1024, read_ahead=1)
    record = records(adapter)["big.tif"]
    proxy.content_gets = 0

    with adapter.open(record) as stream:
        head = stream.read(64)

    assert len(head) == 64
    assert proxy.content_gets <= 3  # a few 256 KiB ranges, not the 32 a whole read takes


def test_a_timed_out_read_is_retried(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("slow.jpg", b"slow bytes")
    adapter = adapter_for(container, read_timeout=1)
    record = records(adapter)["slow.jpg"]
    proxy.stall_next, proxy.stall_seconds = 1, 2.5
    with adapter.open(record) as stream:
        assert stream.read() == b"slow bytes"
    assert proxy.content_gets >= 2  # the stalled GET timed out and was made again


# -- tags ------------------------------------------------------------------------------------------------


def test_tags_beyond_the_index_limit_fall_back_to_metadata(container: ContainerClient, proxy: FaultProxy) -> None:
    blob = container.upload_blob("tagged.jpg", b"t", metadata={"owner": "comms"})
    adapter = adapter_for(container)
    record = records(adapter)["tagged.jpg"]
    tags = {f"dd-{i:02d}": f"value {i}" for i in range(11)} | {"note": "café #1"}

    adapter.set_tags(record, tags)

    assert adapter.get_tags(record) == tags
    index = blob.get_blob_tags()
    assert len(index) == 10 and "note" not in index
    metadata = blob.get_blob_properties().metadata
    assert metadata["owner"] == "comms" and FALLBACK_METADATA_KEY in metadata

    adapter.set_tags(adapter.stat("tagged.jpg") or record, {"dd-00": "only"})
    assert adapter.get_tags(record) == {"dd-00": "only"}
    assert blob.get_blob_properties().metadata == {"owner": "comms"}


def test_a_metadata_write_whose_answer_is_lost_is_found_done(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("a.jpg", b"a", metadata={"owner": "brand"})
    adapter = adapter_for(container)
    record = records(adapter)["a.jpg"]
    tags = {"dam-duplicate-of": "azure://devstoreaccount1/photos/canonical.jpg, near"}  # not an index tag
    proxy.lose_next = {"PUT": 2}  # the index tags, then the metadata: each done, each answered 503

    adapter.set_tags(record, tags)

    assert adapter.get_tags(record) == tags
    assert container.get_blob_client("a.jpg").get_blob_properties().metadata["owner"] == "brand"


def test_index_tags_leave_the_etag_alone_so_a_rescan_reads_nothing(
    container: ContainerClient, proxy: FaultProxy
) -> None:
    container.upload_blob("quiet.jpg", b"q")
    adapter = adapter_for(container)
    before = records(adapter)["quiet.jpg"]
    adapter.set_tags(before, {"dam-dedupe:cluster": "abc", "dam-dedupe:role": "duplicate"})
    assert records(adapter)["quiet.jpg"] == before


# -- copy, move, delete, write --------------------------------------------------------------------


def test_copy_is_server_side_exact_and_never_overwrites(container: ContainerClient, proxy: FaultProxy) -> None:
    data = b"original image"
    container.upload_blob("src.jpg", data, tags={"keep": "me"})
    container.upload_blob("taken.jpg", b"other")
    adapter = adapter_for(container)
    record = records(adapter)["src.jpg"]
    proxy.content_gets = 0

    copied = adapter.copy(record, "quarantine/src.jpg")

    assert proxy.content_gets == 0  # the bytes never came through the client
    assert copied.key == "quarantine/src.jpg" and copied.size == len(data) and copied.store_hash == record.store_hash
    assert container.download_blob("quarantine/src.jpg").readall() == data
    assert adapter.get_tags(copied) == {"keep": "me"}
    with pytest.raises(AssetError, match="will not overwrite"):
        adapter.copy(record, "taken.jpg")
    assert container.download_blob("taken.jpg").readall() == b"other"


def test_copy_of_a_changed_or_deleted_blob_is_refused(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("src.jpg", b"v1")
    adapter = adapter_for(container)
    record = records(adapter)["src.jpg"]
    container.upload_blob("src.jpg", b"v2", overwrite=True)
    with pytest.raises(AssetError, match="changed since it was listed; not touched: .*/src.jpg"):
        adapter.copy(record, "copy.jpg")
    assert adapter.stat("copy.jpg") is None
    container.delete_blob("src.jpg")
    with pytest.raises(AssetGone, match="src.jpg"):
        adapter.copy(record, "copy.jpg")


def test_move_copies_then_deletes(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("dup.jpg", b"dup")
    adapter = adapter_for(container)
    moved = adapter.move(records(adapter)["dup.jpg"], "quarantine/dup.jpg")
    assert set(records(adapter)) == {"quarantine/dup.jpg"}
    assert moved == adapter.stat("quarantine/dup.jpg")


def test_delete_removes_only_the_version_seen(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("d.jpg", b"v1")
    adapter = adapter_for(container)
    stale = records(adapter)["d.jpg"]
    container.upload_blob("d.jpg", b"v2", overwrite=True)
    with pytest.raises(AssetError, match="changed since"):
        adapter.delete(stale)
    assert container.download_blob("d.jpg").readall() == b"v2"

    current = records(adapter)["d.jpg"]
    assert adapter.delete(current) == {}
    assert adapter.stat("d.jpg") is None
    assert adapter.delete(current) == {}  # already gone is success


def test_a_delete_whose_answer_is_lost_succeeds_on_retry(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("d.jpg", b"v1")
    adapter = adapter_for(container)
    record = records(adapter)["d.jpg"]
    proxy.lose_next = {"DELETE": 1}  # Azurite deletes, the adapter sees 503; its retry is answered 404

    assert adapter.delete(record) == {}

    assert adapter.stat("d.jpg") is None
    assert proxy.count("DELETE", "/d.jpg") == 2


def test_copy_keeps_content_settings_metadata_tags_and_tier(container: ContainerClient, proxy: FaultProxy) -> None:
    from azure.storage.blob import ContentSettings

    blob = container.upload_blob(
        "master.tif",
        b"archive master",
        content_settings=ContentSettings(
            content_type="image/tiff", content_disposition="inline", cache_control="max-age=60", content_language="de"
        ),
        metadata={"owner": "brand"},
        tags={"keep": "yes"},
    )
    blob.set_standard_blob_tier("Cool")
    adapter = adapter_for(container)
    record = records(adapter)["master.tif"]

    copied = adapter.copy(record, "quarantine/master.tif")

    before = container.get_blob_client("master.tif").get_blob_properties()
    after = container.get_blob_client("quarantine/master.tif").get_blob_properties()
    settings = ("content_type", "content_disposition", "cache_control", "content_language", "content_md5")
    assert {k: getattr(after.content_settings, k) for k in settings} == {
        k: getattr(before.content_settings, k) for k in settings
    }
    assert after.metadata == {"owner": "brand"} and after.blob_tier == "Cool"
    assert container.get_blob_client("quarantine/master.tif").get_blob_tags() == {"keep": "yes"}
    assert copied.store_hash == record.store_hash


def test_a_copy_whose_answer_is_lost_is_found_done(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("src.jpg", b"original image")
    adapter = adapter_for(container)
    record = records(adapter)["src.jpg"]
    proxy.lose_next = {"PUT": 1}  # Azurite copies, the adapter sees 503; its retry is answered 409

    copied = adapter.copy(record, "quarantine/src.jpg")

    assert copied.store_hash == record.store_hash
    assert proxy.count("PUT", "/quarantine/src.jpg") == 2
    assert container.download_blob("quarantine/src.jpg").readall() == b"original image"


def test_write_object_never_overwrites_and_survives_a_lost_answer(
    container: ContainerClient, proxy: FaultProxy
) -> None:
    container.upload_blob("taken.url", b"someone else's")
    adapter = adapter_for(container)
    with pytest.raises(AssetError, match="will not overwrite"):
        adapter.write_object("taken.url", b"stub")
    assert container.download_blob("taken.url").readall() == b"someone else's"

    proxy.lose_next = {"PUT": 1}
    tags = {f"t{i}": "v" for i in range(12)}  # two beyond the index limit: kept in metadata, same request
    record = adapter.write_object("dup.jpg.url", b"stub", tags)

    assert container.download_blob("dup.jpg.url").readall() == b"stub"
    assert adapter.get_tags(record) == tags
    assert proxy.count("PUT", "/dup.jpg.url") == 2  # the retry found the stub written and left it


def test_object_ids_fold_the_account_so_two_spellings_are_one_source(
    container: ContainerClient, proxy: FaultProxy
) -> None:
    container.upload_blob("Photos/A.jpg", b"a")
    lower = AzureBlobAdapter(SourceSpec(f"azure://{ACCOUNT}/{container.container_name}"))
    upper = AzureBlobAdapter(SourceSpec(f"azure://{ACCOUNT.upper()}/{container.container_name.upper()}"))

    one, other = records(lower)["Photos/A.jpg"], records(upper)["Photos/A.jpg"]

    assert one.object_id == other.object_id == f"azure:{ACCOUNT}/{container.container_name}/Photos/A.jpg"
    assert one.uri == other.uri
    assert upper.stat("Photos/A.jpg").object_id == one.object_id  # type: ignore[union-attr]


def test_a_blob_with_snapshots_is_not_deleted(container: ContainerClient, proxy: FaultProxy) -> None:
    container.upload_blob("snap.jpg", b"s").create_snapshot()
    adapter = adapter_for(container)
    with pytest.raises(AssetError, match="snapshots"):
        adapter.delete(records(adapter)["snap.jpg"])
    assert adapter.stat("snap.jpg") is not None


def test_write_object_makes_a_stub_with_md5_and_tags(container: ContainerClient, proxy: FaultProxy) -> None:
    adapter = adapter_for(container)
    stub = b"[InternetShortcut]\nURL=azure://devstoreaccount1/photos/canonical.jpg\n"
    record = adapter.write_object("photos/dup.jpg.url", stub, {"dam-dedupe:redirect": "canonical.jpg"})
    assert record.store_hash == f"md5:{hashlib.md5(stub).hexdigest()}"
    assert container.download_blob("photos/dup.jpg.url").readall() == stub
    assert adapter.get_tags(record) == {"dam-dedupe:redirect": "canonical.jpg"}


# -- authorisation -------------------------------------------------------------------------------------


def test_a_wrong_account_key_fails_fast_without_showing_it(
    container: ContainerClient, fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault_proxy.reset()
    wrong = "d3Jvbmcga2V5IGZvciB0ZXN0cyB3cm9uZyBrZXkgZm9yIHRlc3Rz" * 2
    monkeypatch.setenv("AZURE_STORAGE_KEY", wrong)
    adapter = adapter_for(container, blob_endpoint=fault_proxy.endpoint)
    with pytest.raises(SourceError, match="credential .* was refused") as caught:
        records(adapter)
    assert wrong not in str(caught.value)
    assert len(fault_proxy.requests) == 1


def test_a_sas_without_write_permission_names_the_role_to_grant(
    container: ContainerClient, fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault_proxy.reset()
    container.upload_blob("r.jpg", b"r")
    sas = generate_container_sas(
        ACCOUNT,
        container.container_name,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    adapter = adapter_for(container, blob_endpoint=fault_proxy.endpoint)
    record = records(adapter)["r.jpg"]
    with pytest.raises(SourceError, match="Storage Blob Data Contributor") as caught:
        adapter.delete(record)
    assert parse_qs(sas)["sig"][0] not in str(caught.value)


def test_an_identity_without_a_data_role_is_told_which_role_to_ask_for(
    container: ContainerClient, proxy: FaultProxy
) -> None:
    proxy.refuse = ("comp=list", "AuthorizationPermissionMismatch")
    with pytest.raises(SourceError, match="grant the identity the 'Storage Blob Data Reader' role"):
        records(adapter_for(container))
    assert proxy.count("GET", "comp=list") == 2  # with tags, then without: never retried


def test_a_missing_container_is_a_source_error(proxy: FaultProxy) -> None:
    adapter = AzureBlobAdapter(SourceSpec(f"azure://{ACCOUNT}/no-such-container"))
    with pytest.raises(SourceError, match="container not found"):
        list(adapter.list_assets())


def test_a_connection_string_for_another_account_is_refused(proxy: FaultProxy) -> None:
    adapter = AzureBlobAdapter(SourceSpec("azure://someotheraccount/photos"))
    with pytest.raises(SourceError, match="for account 'devstoreaccount1'"):
        list(adapter.list_assets())


def test_a_sas_never_reaches_the_log_or_the_message(
    container: ContainerClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sas = generate_container_sas(
        ACCOUNT,
        container.container_name,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    signature = parse_qs(sas)["sig"][0]
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    closed = f"http://127.0.0.1:{free_port()}/{ACCOUNT}"
    adapter = adapter_for(container, blob_endpoint=closed, retry_attempts=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceError, match="cannot reach") as caught:
        records(adapter)
    assert "retrying" in caplog.text
    assert signature not in caplog.text and quote(signature, safe="") not in caplog.text
    assert signature not in str(caught.value)


def test_an_unreachable_endpoint_names_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/{ACCOUNT}"
    monkeypatch.setenv("AZURE_STORAGE_KEY", ACCOUNT_KEY)
    spec = SourceSpec(f"azure://{ACCOUNT}/photos", options=(("blob_endpoint", endpoint), ("retry_attempts", 2)))
    with pytest.raises(SourceError, match=f"cannot reach {endpoint}"):
        list(AzureBlobAdapter(spec).list_assets())
