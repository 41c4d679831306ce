"""The store contract (``src/dam_dedupe/adapter.py``), held against every built-in adapter on its real server.

One parametrised module, in the manner of restic's backend test suite: each case states one
promise of the write primitives and runs against the local adapter, S3 (unversioned and
versioned, moto), Azure Blob (Azurite) and SharePoint (the Graph emulator). A store is set
up and inspected behind the adapter's back (``Store.put`` and ``Store.read`` go straight to
the server), so the adapter is judged only by what the store holds afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.errors import AssetError
from dam_dedupe.host import Host
from dam_dedupe.records import AssetRecord, SourceSpec
from tests.servers.azurite import ACCOUNT, Azurite, azurite, connection_string, fault_proxy  # noqa: F401
from tests.servers.graph import GraphEmulator, graph, graph_ca, graph_server, library_uri  # noqa: F401
from tests.servers.s3 import moto_endpoint, s3_admin, s3_env, s3_proxy  # noqa: F401

STORES = ["local", "s3", "s3-versioned", "azure", "sharepoint"]


@dataclass
class Store:
    """One adapter and a direct line to the server behind it.

    Attributes:
        adapter: the adapter under test, built through the host as for a user.
        put: writes an object at a key straight into the store (creating or replacing it).
        read: the bytes at a key straight from the store, or ``None`` when nothing is current there.
        put_rich: like ``put``, with the properties this store should carry over on a copy
            (content type, metadata, tags, storage class or tier, times); ``None`` where the
            store keeps them by moving instead (SharePoint: a Graph copy is a new item).
        properties: those properties of the object at a key, straight from the store.
        versioned: the store keeps earlier versions, so a copy reads the version listed even
            after a newer one was written, and a delete hides rather than destroys.
    """

    adapter: SourceAdapter
    put: Callable[[str, bytes], None]
    read: Callable[[str], bytes | None]
    put_rich: Callable[[str, bytes], None] | None = None
    properties: Callable[[str], dict[str, Any]] = field(default=lambda _key: {})
    versioned: bool = False

    def record(self, key: str) -> AssetRecord:
        """The adapter's current record of ``key`` (it must exist)."""
        found = self.adapter.stat(key)
        assert found is not None, key
        return found


def adapter_for(uri: str) -> SourceAdapter:
    """The adapter the host builds for ``uri``, through the entry point."""
    return Host().open_source(SourceSpec(uri))


def local_store(tmp_path: Path) -> Store:
    root = tmp_path / "library"
    root.mkdir()

    def put(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        before = path.stat().st_mtime_ns if path.exists() else 0
        path.write_bytes(data)
        if before:  # a change shows in the mtime, however coarse the file system's clock
            os.utime(path, ns=(before + 10**9, before + 10**9))

    def read(key: str) -> bytes | None:
        path = root / key
        return path.read_bytes() if path.is_file() else None

    def put_rich(key: str, data: bytes) -> None:
        put(key, data)
        os.chmod(root / key, 0o640)
        os.utime(root / key, ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))

    def properties(key: str) -> dict[str, Any]:
        st = (root / key).stat()
        return {"mode": st.st_mode, "mtime": st.st_mtime_ns}

    return Store(adapter_for(root.as_uri()), put, read, put_rich, properties)


def s3_store(request: pytest.FixtureRequest, versioned: bool) -> Store:
    request.getfixturevalue("s3_env")
    admin = request.getfixturevalue("s3_admin")
    bucket = f"c-{uuid.uuid4().hex[:16]}"
    admin.create_bucket(Bucket=bucket)
    if versioned:
        admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def put(key: str, data: bytes) -> None:
        admin.put_object(Bucket=bucket, Key=key, Body=data)

    def read(key: str) -> bytes | None:
        try:
            return bytes(admin.get_object(Bucket=bucket, Key=key)["Body"].read())
        except admin.exceptions.NoSuchKey:
            return None

    def put_rich(key: str, data: bytes) -> None:
        admin.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType="image/tiff",
            Metadata={"owner": "brand"},
            Tagging="keep=yes",
            StorageClass="STANDARD_IA",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId="arn:aws:kms:us-east-1:123456789012:key/0000-contract",
        )

    def properties(key: str) -> dict[str, Any]:
        head = admin.head_object(Bucket=bucket, Key=key)
        tags = admin.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        kept = ("ContentType", "Metadata", "StorageClass", "ServerSideEncryption", "SSEKMSKeyId")
        return {**{k: head.get(k) for k in kept}, "tags": tags}

    return Store(adapter_for(f"s3://{bucket}"), put, read, put_rich, properties, versioned=versioned)


def azure_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    from azure.storage.blob import BlobServiceClient, ContentSettings

    server: Azurite = request.getfixturevalue("azurite")
    proxy = request.getfixturevalue("fault_proxy")
    proxy.reset()
    for name in ("AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_KEY", "AZURE_TENANT_ID", "AZURE_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(proxy.endpoint))
    container = BlobServiceClient.from_connection_string(server.connection_string).create_container(
        f"c{uuid.uuid4().hex[:20]}"
    )
    request.addfinalizer(container.delete_container)

    def put(key: str, data: bytes) -> None:
        container.upload_blob(key, data, overwrite=True)

    def read(key: str) -> bytes | None:
        blob = container.get_blob_client(key)
        return bytes(blob.download_blob().readall()) if blob.exists() else None

    def put_rich(key: str, data: bytes) -> None:
        settings = ContentSettings(content_type="image/tiff", cache_control="max-age=60")
        blob = container.upload_blob(key, data, content_settings=settings, metadata={"owner": "brand"})
        blob.set_blob_tags({"keep": "yes"})
        blob.set_standard_blob_tier("Cool")

    def properties(key: str) -> dict[str, Any]:
        blob = container.get_blob_client(key)
        props = blob.get_blob_properties()
        settings = props.content_settings
        return {
            "content": (settings.content_type, settings.cache_control, bytes(settings.content_md5 or b"")),
            "metadata": props.metadata,
            "tier": props.blob_tier,
            "tags": blob.get_blob_tags(),
        }

    uri = f"azure://{ACCOUNT}/{container.container_name}"
    return Store(adapter_for(uri), put, read, put_rich, properties)


def sharepoint_store(request: pytest.FixtureRequest) -> Store:
    emulator: GraphEmulator = request.getfixturevalue("graph")
    library = emulator.library

    def put(key: str, data: bytes) -> None:
        library.put(f"Brand/{key}", data, ("quickXorHash", "sha1Hash"))

    def read(key: str) -> bytes | None:
        item = library.resolve(library.root_id, f"Brand/{key}")
        return item.content if item is not None and not item.folder else None

    library.folder_at("Brand")
    return Store(adapter_for(library_uri("Brand")), put, read, versioned=False)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """Each built-in adapter against its real server, with a fresh bucket, container or library."""
    kind = request.param
    if kind == "local":
        built = local_store(tmp_path)
    elif kind.startswith("s3"):
        built = s3_store(request, versioned=kind == "s3-versioned")
    elif kind == "azure":
        built = azure_store(request, monkeypatch)
    else:
        built = sharepoint_store(request)
    try:
        yield built
    finally:
        built.adapter.close()


# -- copy ---------------------------------------------------------------------------------------


def test_copy_makes_a_whole_copy_and_returns_its_record(store: Store) -> None:
    store.put("photos/a.jpg", b"the only copy")
    record = store.record("photos/a.jpg")

    copied = store.adapter.copy(record, "quarantine/photos/a.jpg")

    assert store.read("quarantine/photos/a.jpg") == b"the only copy"
    assert copied.size == record.size and copied == store.adapter.stat("quarantine/photos/a.jpg")
    assert store.read("photos/a.jpg") == b"the only copy"


def test_copy_never_overwrites(store: Store) -> None:
    store.put("a.jpg", b"source")
    store.put("taken.jpg", b"someone else's")

    with pytest.raises(AssetError):
        store.adapter.copy(store.record("a.jpg"), "taken.jpg")

    assert store.read("taken.jpg") == b"someone else's"


def test_copy_is_conditional_on_the_version_listed(store: Store) -> None:
    store.put("a.jpg", b"as planned")
    record = store.record("a.jpg")
    store.put("a.jpg", b"written since")

    if store.versioned:  # the version listed still exists: the copy is of it, exactly
        store.adapter.copy(record, "copy.jpg")
        assert store.read("copy.jpg") == b"as planned"
    else:
        with pytest.raises(AssetError):
            store.adapter.copy(record, "copy.jpg")
        assert store.read("copy.jpg") is None


def test_copy_keeps_metadata_tags_and_storage_class(store: Store) -> None:
    if store.put_rich is None:
        pytest.skip("a Graph copy is a new item; SharePoint keeps metadata, versions and sharing by moving")
    store.put_rich("master.tif", b"archive master")

    store.adapter.copy(store.record("master.tif"), "quarantine/master.tif")

    assert store.properties("quarantine/master.tif") == store.properties("master.tif")


# -- move ---------------------------------------------------------------------------------------


def test_move_relocates_and_a_native_move_keeps_the_object(store: Store) -> None:
    store.put("a.jpg", b"moving")
    record = store.record("a.jpg")

    moved = store.adapter.move(record, "quarantine/a.jpg")

    assert store.read("a.jpg") is None and store.read("quarantine/a.jpg") == b"moving"
    if store.adapter.native_move:
        assert moved.object_id is not None and moved.object_id == record.object_id


def test_move_never_overwrites(store: Store) -> None:
    store.put("a.jpg", b"moving")
    store.put("taken.jpg", b"someone else's")

    with pytest.raises(AssetError):
        store.adapter.move(store.record("a.jpg"), "taken.jpg")

    assert store.read("taken.jpg") == b"someone else's" and store.read("a.jpg") == b"moving"


# -- delete -------------------------------------------------------------------------------------


def test_delete_of_a_gone_object_succeeds(store: Store) -> None:
    store.put("a.jpg", b"duplicate")
    record = store.record("a.jpg")

    first = store.adapter.delete(record)
    again = store.adapter.delete(record)  # as a retry after a lost answer would

    assert store.read("a.jpg") is None and store.adapter.stat("a.jpg") is None
    assert again == first or again == {}


def test_delete_of_a_changed_object_refuses_and_changes_nothing(store: Store) -> None:
    store.put("a.jpg", b"as planned")
    record = store.record("a.jpg")
    store.put("a.jpg", b"edited since")

    with pytest.raises(AssetError):
        store.adapter.delete(record)

    assert store.read("a.jpg") == b"edited since"


def test_delete_on_a_versioned_store_hides_and_journals_the_marker(store: Store) -> None:
    if not store.versioned:
        pytest.skip("only versioned stores keep what a delete hides")
    store.put("a.jpg", b"kept as a version")
    record = store.record("a.jpg")

    journal = store.adapter.delete(record)

    assert set(journal) == {"delete_marker"} and journal["delete_marker"]
    assert store.adapter.stat("a.jpg") is None and store.read("a.jpg") is None


# -- write_object and stat ------------------------------------------------------------------------


def test_write_object_never_overwrites(store: Store) -> None:
    store.put("a.jpg.url", b"someone else's")

    with pytest.raises(AssetError):
        store.adapter.write_object("a.jpg.url", b"a redirect stub")

    assert store.read("a.jpg.url") == b"someone else's"
    written = store.adapter.write_object("b.jpg.url", b"a redirect stub")
    assert store.read("b.jpg.url") == b"a redirect stub" and written.size == len(b"a redirect stub")


def test_stat_and_listing_agree_on_what_one_object_is(store: Store) -> None:
    store.put("photos/a.jpg", b"one object")

    listed = [r for r in store.adapter.list_assets() if isinstance(r, AssetRecord) and r.key.endswith("a.jpg")]

    assert len(listed) == 1
    assert listed[0].object_id is not None and listed[0].object_id == store.record(listed[0].key).object_id
