"""The SharePoint and OneDrive adapters against the Graph emulator (tests/servers/graph.py).

msal signs in against the emulator's real token endpoint and every adapter call goes over
HTTPS to it: nothing in msal or the adapter is patched.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import trustme

from dam_dedupe.adapters.graph_client import CLOUDS, GraphSettings
from dam_dedupe.adapters.graph_delta import DeltaState
from dam_dedupe.adapters.sharepoint import GraphDriveAdapter
from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import Config
from dam_dedupe.errors import AssetError, AssetGone, ConfigError, SourceError, TransientError
from dam_dedupe.host import Host
from dam_dedupe.matcher import PRESETS
from dam_dedupe.records import AssetRecord, DeltaCursor, Removed, SourceSpec
from dam_dedupe.report import build_report
from dam_dedupe.scan import run_scan
from tests.conftest import picture, run_cli, save
from tests.servers.graph import (  # noqa: F401
    CLIENT_ID,
    TENANT,
    USER,
    GraphEmulator,
    graph,
    graph_ca,
    graph_server,
    library_uri,
    quick_xor_hash,
)

EXACT = Config(matching=PRESETS["exact"])
JPEG_LIKE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8


def open_adapter(uri: str, **options: object) -> GraphDriveAdapter:
    """Build the adapter the way the host does, through the entry point."""
    adapter = Host().open_source(SourceSpec(uri, options=tuple(options.items())))
    assert isinstance(adapter, GraphDriveAdapter)
    return adapter


def split(entries: Iterable[object]) -> tuple[dict[str, AssetRecord], set[str], list[DeltaCursor], list[object]]:
    """Records by key, removed keys, cursors, and anything else, from a listing."""
    records: dict[str, AssetRecord] = {}
    removed: set[str] = set()
    cursors: list[DeltaCursor] = []
    other: list[object] = []
    for entry in entries:
        if isinstance(entry, AssetRecord):
            records[entry.key] = entry
        elif isinstance(entry, Removed):
            removed.add(entry.key)
        elif isinstance(entry, DeltaCursor):
            cursors.append(entry)
        else:
            other.append(entry)
    return records, removed, cursors, other


def populate(graph: GraphEmulator) -> None:
    """A small library: nested folders, Chinese names, a document."""
    lib = graph.library
    lib.put("Brand/logo.png", b"logo" + JPEG_LIKE)
    lib.put("Brand/产品/猫 照片.jpg", b"cat" + JPEG_LIKE)
    lib.put("Brand/产品/2024/狗.jpg", b"dog" + JPEG_LIKE)
    lib.put("Brand/archive/old logo.png", b"logo" + JPEG_LIKE)
    lib.put("Other/notes.docx", b"not an image")
    lib.put("top.jpg", b"top" + JPEG_LIKE)


# -- registration and settings ---------------------------------------------------------------


def test_both_schemes_are_registered_through_the_entry_point() -> None:
    adapters = Host().adapters
    assert adapters["sharepoint"].extra == adapters["onedrive"].extra == "sharepoint"
    assert adapters["sharepoint"].supports_changes and adapters["onedrive"].supports_changes


def test_national_clouds_set_authority_and_graph_endpoint() -> None:
    env = {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c"}
    china = GraphSettings.resolve({"cloud": "china"}.get, env)
    assert china.authority_host == CLOUDS["china"].authority_host == "https://login.chinacloudapi.cn"
    assert china.graph_endpoint == "https://microsoftgraph.chinacloudapi.cn"
    # AZURE_AUTHORITY_HOST alone, as Azure's tools read it, also picks the matching Graph endpoint.
    usgov = GraphSettings.resolve({}.get, {**env, "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us"})
    assert usgov.graph_endpoint == "https://graph.microsoft.us"
    assert GraphSettings.resolve({}.get, env).scope == "https://graph.microsoft.com/.default"
    with pytest.raises(ConfigError, match="AZURE_CLIENT_ID"):
        GraphSettings.resolve({}.get, {"AZURE_TENANT_ID": "t"})


def test_bad_uri_names_the_expected_form() -> None:
    with pytest.raises(ConfigError, match="sharepoint://HOST/sites/SITE/LIBRARY"):
        open_adapter("sharepoint://contoso.sharepoint.com/Documents")


# -- listing ------------------------------------------------------------------------------------


def test_first_scan_pages_through_delta_and_rebuilds_paths(graph: GraphEmulator) -> None:
    populate(graph)
    graph.page_size = 3
    records, removed, cursors, other = split(open_adapter(library_uri()).list_changes(None))

    assert set(records) == {
        "Brand/logo.png",
        "Brand/产品/猫 照片.jpg",
        "Brand/产品/2024/狗.jpg",
        "Brand/archive/old logo.png",
        "Other/notes.docx",
        "top.jpg",
    }
    assert not removed and not other
    assert len(cursors) == 1 and cursors[0].full
    cat = records["Brand/产品/猫 照片.jpg"]
    item = graph.library.at("Brand/产品/猫 照片.jpg")
    assert cat.size == len(item.content)
    assert cat.uri == library_uri("Brand/产品/猫 照片.jpg")
    assert "%E4%BA%A7%E5%93%81" in cat.uri  # percent-encoded UTF-8
    assert cat.etag and cat.etag.startswith('"{') and cat.modified is not None
    assert cat.metadata["ctag"].startswith('"c:')
    delta = graph.requests("/root/delta")
    assert len(delta) == math.ceil(len(graph.library.items) / 3)


def test_store_hash_prefers_sha256_then_sha1_then_quickxor(graph: GraphEmulator) -> None:
    lib = graph.library
    lib.put("a.jpg", b"a" + JPEG_LIKE, ("quickXorHash", "sha1Hash", "sha256Hash"))
    lib.put("b.jpg", b"b" + JPEG_LIKE, ("quickXorHash", "sha1Hash"))
    lib.put("c.jpg", b"c" + JPEG_LIKE, ("quickXorHash",))
    lib.put("d.jpg", b"d" + JPEG_LIKE, ())
    records, *_ = split(open_adapter(library_uri()).list_assets())
    import hashlib

    assert records["a.jpg"].store_hash == "sha256:" + hashlib.sha256(b"a" + JPEG_LIKE).hexdigest()
    assert records["b.jpg"].store_hash == "sha1:" + hashlib.sha1(b"b" + JPEG_LIKE).hexdigest()
    assert records["c.jpg"].store_hash == "quickxor:" + quick_xor_hash(b"c" + JPEG_LIKE)
    assert records["d.jpg"].store_hash is None


def test_quick_xor_hash_matches_microsofts_reference_vector() -> None:
    # The emulator's QuickXorHash must be the real one, or store hashes would be meaningless.
    assert quick_xor_hash(b"hello world") == "aCgDG9jwBhDc4Q1yawMZAAAAAAA="


def test_folder_scope_filters_the_root_delta(graph: GraphEmulator) -> None:
    populate(graph)
    records, _, cursors, _ = split(open_adapter(library_uri("Brand/产品")).list_changes(None))
    assert set(records) == {"猫 照片.jpg", "2024/狗.jpg"}
    assert records["2024/狗.jpg"].uri == library_uri("Brand/产品/2024/狗.jpg")
    # SharePoint refuses delta on a folder: only the root's delta is asked for.
    assert {e.path for e in graph.requests("delta")} == {"/v1.0/drives/b!library/root/delta"}
    assert cursors[0].full


def test_second_round_lists_only_changes_and_deletions(graph: GraphEmulator) -> None:
    populate(graph)
    lib = graph.library
    lib.put("Brand/产品/2024/鸟.jpg", b"bird" + JPEG_LIKE)
    graph.page_size = 2
    adapter = open_adapter(library_uri("Brand"))
    first, _, (cursor,), _ = split(adapter.list_changes(None))
    assert len(first) == 5

    lib.put("Brand/logo.png", b"new logo" + JPEG_LIKE)  # changed content
    lib.put("Brand/new.jpg", b"new" + JPEG_LIKE)  # added
    lib.remove(lib.at("Brand/archive/old logo.png"))  # deleted file
    lib.remove(lib.at("Brand/产品/2024"))  # deleted folder with two files
    lib.move("Brand/产品", "Brand/Products")  # renamed folder: Graph reports only the folder
    lib.put("Other/elsewhere.jpg", b"outside" + JPEG_LIKE)  # outside the scope
    graph.log.clear()

    records, removed, (cursor2,), other = split(open_adapter(library_uri("Brand")).list_changes(cursor.value))
    assert not cursor2.full and not other
    assert set(records) == {"logo.png", "new.jpg", "Products/猫 照片.jpg"}
    assert records["logo.png"].size == len(b"new logo" + JPEG_LIKE)
    assert removed == {"archive/old logo.png", "产品/2024/狗.jpg", "产品/2024/鸟.jpg", "产品/猫 照片.jpg"}
    assert records["Products/猫 照片.jpg"].uri == library_uri("Brand/Products/猫 照片.jpg")

    # A third round with nothing changed: one delta request, nothing listed.
    graph.log.clear()
    records, removed, (cursor3,), _ = split(open_adapter(library_uri("Brand")).list_changes(cursor2.value))
    assert not records and not removed and not cursor3.full
    assert [e.path for e in graph.graph_requests()] == ["/v1.0/drives/b!library/root/delta"]


def test_files_and_folders_moved_into_and_out_of_the_scope(graph: GraphEmulator) -> None:
    populate(graph)
    graph.library.put("Elsewhere/sub/晚霞.jpg", b"sunset" + JPEG_LIKE)
    _, _, (cursor,), _ = split(open_adapter(library_uri("Brand")).list_changes(None))
    # The cursor keeps folders, and files only from inside the scope.
    tree = DeltaState.decode(cursor.value).tree  # type: ignore[union-attr]
    outside = graph.library.at("Elsewhere/sub/晚霞.jpg").id
    assert outside not in tree.nodes and graph.library.at("Elsewhere/sub").id in tree.nodes

    graph.library.move("Brand/logo.png", "Other/logo.png")
    graph.library.move("Other/notes.docx", "Brand/notes.docx")
    graph.library.move("Elsewhere", "Brand/Elsewhere")  # Graph reports only the folder: its files are walked
    graph.library.move("Brand/archive", "Other/archive")
    records, removed, _, _ = split(open_adapter(library_uri("Brand")).list_changes(cursor.value))
    assert set(records) == {"notes.docx", "Elsewhere/sub/晚霞.jpg"}
    assert removed == {"logo.png", "archive/old logo.png"}


def test_stale_delta_token_resyncs_with_a_full_listing(graph: GraphEmulator) -> None:
    populate(graph)
    _, _, (cursor,), _ = split(open_adapter(library_uri()).list_changes(None))
    graph.library.put("late.jpg", b"late" + JPEG_LIKE)
    graph.library.expire_tokens()
    records, removed, (cursor2,), _ = split(open_adapter(library_uri()).list_changes(cursor.value))
    assert cursor2.full
    assert "late.jpg" in records and len(records) == 7
    assert [e.status for e in graph.requests("/root/delta")][-2:] == [410, 200]


def test_unreadable_cursor_starts_a_full_listing(graph: GraphEmulator) -> None:
    populate(graph)
    records, _, (cursor,), _ = split(open_adapter(library_uri()).list_changes("not-a-cursor"))
    assert cursor.full and len(records) == 6


def test_onedrive_folder(graph: GraphEmulator) -> None:
    graph.onedrive.put("Pictures/海滩.jpg", b"beach" + JPEG_LIKE)
    graph.onedrive.put("Documents/cv.docx", b"cv")
    records, *_ = split(open_adapter(f"onedrive://{USER}/Pictures").list_assets())
    assert set(records) == {"海滩.jpg"}
    assert records["海滩.jpg"].uri == "onedrive://alice@contoso.com/Pictures/%E6%B5%B7%E6%BB%A9.jpg"


def test_unknown_library_names_the_ones_there(graph: GraphEmulator) -> None:
    uri = "sharepoint://contoso.sharepoint.com/sites/marketing/Assets"
    with pytest.raises(SourceError, match=r"no document library 'Assets' \(it has: Documents\)"):
        list(open_adapter(uri).list_assets())


def test_access_denied_names_the_permission(graph: GraphEmulator) -> None:
    graph.fail("/sites/", 403, "accessDenied")
    with pytest.raises(SourceError, match="Sites.Selected"):
        list(open_adapter(library_uri()).list_assets())


# -- throttling and tokens ------------------------------------------------------------------------


def test_429_waits_exactly_what_retry_after_asks(graph: GraphEmulator) -> None:
    populate(graph)
    graph.fail("/root/delta", 429, "TooManyRequests", retry_after="1")
    records, *_ = split(open_adapter(library_uri()).list_assets())
    assert len(records) == 6
    throttled, retried = graph.requests("/root/delta")[:2]
    assert throttled.status == 429 and retried.status == 200
    assert 1.0 <= retried.at - throttled.at < 2.0  # not the jittered backoff, which starts near 0.2 s


def test_a_retry_after_above_max_retry_wait_waits_the_cap_and_says_so_once(
    graph: GraphEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    populate(graph)
    graph.fail("/root/delta", 429, "TooManyRequests", retry_after="3600", times=2)
    with caplog.at_level(logging.WARNING):
        records, *_ = split(open_adapter(library_uri(), max_retry_wait=0.5).list_assets())
    assert len(records) == 6
    first, _, retried = graph.requests("/root/delta")[:3]
    assert 1.0 <= retried.at - first.at < 3.0  # twice the cap, not an hour
    assert caplog.text.count("max_retry_wait") == 1


def test_503_with_retry_after_on_download(graph: GraphEmulator) -> None:
    populate(graph)
    adapter = open_adapter(library_uri())
    records, *_ = split(adapter.list_assets())
    graph.fail("/content", 503, "serviceNotAvailable", retry_after="1")
    with adapter.open(records["top.jpg"]) as stream:
        assert stream.read() == b"top" + JPEG_LIKE
    throttled, retried = graph.requests("/content")
    assert (throttled.status, retried.status) == (503, 302)
    assert 1.0 <= retried.at - throttled.at < 2.0


def test_token_refused_mid_scan_is_renewed_once(graph: GraphEmulator) -> None:
    populate(graph)
    graph.page_size = 2
    graph.revoke_tokens_at("skiptoken=")  # the token dies before the second page, long before expires_in
    records, *_ = split(open_adapter(library_uri()).list_assets())
    assert len(records) == 6
    assert len(graph.requests("/oauth2/v2.0/token")) == 2
    assert [e.status for e in graph.requests("/root/delta")].count(401) == 1


def test_token_refused_again_after_renewal_fails_the_source(graph: GraphEmulator) -> None:
    populate(graph)
    graph.fail("/root/delta", 401, "InvalidAuthenticationToken", times=5)
    with pytest.raises(SourceError, match="refused"):
        list(open_adapter(library_uri()).list_assets())
    assert len(graph.requests("/root/delta")) == 2  # one renewal, no loop


def test_wrong_secret_names_the_fix_and_not_the_secret(graph: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "wrong-secret-value")
    with pytest.raises(SourceError) as caught:
        list(open_adapter(library_uri()).list_assets())
    assert "AZURE_CLIENT_SECRET" in str(caught.value) and "invalid_client" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    with pytest.raises(SourceError, match="set AZURE_CLIENT_SECRET, or AZURE_CLIENT_CERTIFICATE_PATH"):
        list(open_adapter(library_uri()).list_assets())


def test_certificate_credential_signs_in(graph: GraphEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    app_cert = trustme.CA().issue_cert("dam-dedupe-app", key_type=trustme.KeyType.RSA)  # Entra wants RSA
    pem = tmp_path / "app.pem"
    pem.write_bytes(app_cert.private_key_pem.bytes() + app_cert.cert_chain_pems[0].bytes())
    graph.trust_certificate(app_cert.cert_chain_pems[0].bytes())
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(pem))
    populate(graph)
    records, *_ = split(open_adapter(library_uri()).list_assets())
    assert len(records) == 6


def test_env_ca_bundle_variables_do_not_replace_the_trust(
    graph: GraphEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests would let REQUESTS_CA_BUNDLE override the trust; the adapter trusts only the
    # admin-named bundle, else the system store, which does not know the test CA.
    monkeypatch.delenv("DAM_DEDUPE_CA_BUNDLE")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", graph.ca_pem)
    with pytest.raises(SourceError, match="ca_bundle"):
        list(open_adapter(library_uri()).list_assets())
    records, *_ = split(open_adapter(library_uri(), ca_bundle=graph.ca_pem).list_changes(None))
    assert records == {}  # the library is empty, but the named bundle is trusted


def test_secrets_and_tokens_never_reach_the_log(graph: GraphEmulator, caplog: pytest.LogCaptureFixture) -> None:
    populate(graph)
    graph.fail("/root/delta", 429, "TooManyRequests", retry_after="0")
    graph.revoke_tokens_at("/content")
    caplog.set_level(logging.DEBUG)
    adapter = open_adapter(library_uri())
    records, *_ = split(adapter.list_assets())
    with adapter.open(records["top.jpg"]) as stream:
        stream.read()
    assert len(graph.requests("/oauth2/v2.0/token")) == 2
    # Ours and msal's records; urllib3's own DEBUG lines echo request URLs and are left to the operator.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("dam_dedupe", "msal"))
    assert "Graph GET" in ours and "signing in again" in ours
    issued = list(graph.tokens)
    assert issued and not any(token in ours for token in issued)
    assert "emulator-secret" not in ours and "tempauth" not in ours


# -- reading -------------------------------------------------------------------------------


def test_download_follows_the_redirect_without_the_token(graph: GraphEmulator) -> None:
    populate(graph)
    adapter = open_adapter(library_uri())
    records, *_ = split(adapter.list_assets())
    with adapter.open(records["Brand/产品/猫 照片.jpg"]) as stream:
        assert stream.read(3) == b"cat"
        assert stream.read() == JPEG_LIKE
    (content,) = graph.requests("/content")
    (download,) = graph.requests("/download/")
    assert content.status == 302 and content.authorization
    assert download.status == 200 and not download.authorization


def test_reading_the_first_bytes_does_not_download_the_file(graph: GraphEmulator) -> None:
    graph.library.put("big.tif", b"II*\x00" + bytes(48 * 1024 * 1024), ("sha1Hash",))
    adapter = open_adapter(library_uri())
    record = adapter.stat("big.tif")
    assert record is not None

    with adapter.open(record) as stream:
        assert stream.read(4) == b"II*\x00"

    deadline = time.monotonic() + 10
    while not graph.download_bytes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert graph.download_bytes and graph.download_bytes[0] < 16 * 1024 * 1024  # of 48 MiB


def test_open_of_a_deleted_item_is_asset_gone(graph: GraphEmulator) -> None:
    populate(graph)
    adapter = open_adapter(library_uri())
    records, *_ = split(adapter.list_assets())
    graph.library.remove(graph.library.at("top.jpg"))
    with pytest.raises(AssetGone):
        adapter.open(records["top.jpg"])


# -- write side --------------------------------------------------------------------------------


def test_tags_live_in_a_list_item_column(graph: GraphEmulator) -> None:
    populate(graph)
    graph.library.columns.add("DamDedupeTags")
    adapter = open_adapter(library_uri())
    record = adapter.stat("top.jpg")
    assert record is not None and adapter.get_tags(record) == {}
    adapter.set_tags(record, {"status": "duplicate", "canonical": "Brand/产品/猫 照片.jpg"})
    assert adapter.get_tags(record) == {"status": "duplicate", "canonical": "Brand/产品/猫 照片.jpg"}
    adapter.set_tags(record, {})
    assert adapter.get_tags(record) == {}
    graph.fail("/listItem/fields", 423, "resourceLocked")  # checked out by someone
    with pytest.raises(AssetError, match="locked"):
        adapter.set_tags(record, {"status": "duplicate"})


def test_missing_tag_column_says_how_to_create_it(graph: GraphEmulator) -> None:
    populate(graph)
    adapter = open_adapter(library_uri(), tag_column="DupStatus")
    record = adapter.stat("top.jpg")
    assert record is not None
    with pytest.raises(SourceError, match=r"no 'DupStatus' column.*Multiple lines of text.*/columns"):
        adapter.set_tags(record, {"status": "duplicate"})


def test_quarantine_move_redirect_stub_copy_and_delete(graph: GraphEmulator) -> None:
    populate(graph)
    graph.library.columns.add("DamDedupeTags")
    adapter = open_adapter(library_uri("Brand"))
    original = adapter.stat("产品/猫 照片.jpg")
    assert original is not None

    moved = adapter.move(original, "_quarantine/2026/产品/猫 照片.jpg")
    assert adapter.stat("产品/猫 照片.jpg") is None
    assert moved.store_hash == original.store_hash and moved.metadata["item_id"] == original.metadata["item_id"]
    assert graph.library.at("Brand/_quarantine/2026/产品/猫 照片.jpg").version > 1  # same item, history kept

    stub = b"[InternetShortcut]\r\nURL=https://contoso.sharepoint.com/sites/marketing/canonical.jpg\r\n"
    link = adapter.write_object("产品/猫 照片.jpg.url", stub, {"redirect_to": "logo.png"})
    assert link.size == len(stub) and adapter.get_tags(link) == {"redirect_to": "logo.png"}
    with pytest.raises(AssetError, match="overwrite"):
        adapter.write_object("产品/猫 照片.jpg.url", b"again")

    copy = adapter.copy(moved, "restored/猫 照片.jpg")
    assert copy.store_hash == moved.store_hash and copy.metadata["item_id"] != moved.metadata["item_id"]
    with pytest.raises(AssetError, match="overwrite"):
        adapter.copy(moved, "restored/猫 照片.jpg")

    # Undo the move: back where it was.
    back = adapter.move(moved, "产品/猫 照片.jpg")
    assert adapter.stat("产品/猫 照片.jpg") == back

    graph.library.put("Brand/restored/猫 照片.jpg", b"edited since" + JPEG_LIKE)
    with pytest.raises(AssetError, match="changed"):
        adapter.delete(copy)
    current = adapter.stat("restored/猫 照片.jpg")
    assert current is not None
    assert adapter.delete(current) == {}
    assert adapter.stat("restored/猫 照片.jpg") is None
    assert adapter.delete(current) == {}  # already gone is success


def test_move_is_one_conditional_patch_that_keeps_the_item(graph: GraphEmulator) -> None:
    populate(graph)
    adapter = open_adapter(library_uri("Brand"))
    assert adapter.native_move
    original = adapter.stat("logo.png")
    assert original is not None
    item = graph.library.at("Brand/logo.png")
    item.fields["Caption"] = "the brand's logo"

    moved = adapter.move(original, "_quarantine/logo.png")

    patches = graph.requests(f"/items/{item.id}", method="PATCH")
    assert len(patches) == 1 and "conflictBehavior=fail" in unquote(patches[0].query)
    assert moved.object_id == original.object_id == f"{graph.library.id}/{item.id}"
    assert graph.library.at("Brand/_quarantine/logo.png") is item and item.fields == {"Caption": "the brand's logo"}
    assert not graph.requests("/copy")

    with pytest.raises(AssetError, match="changed since it was checked"):
        adapter.move(original, "elsewhere/logo.png")  # its eTag is stale now: 412, nothing moves
    assert graph.library.at("Brand/_quarantine/logo.png") is item
    graph.library.put("Brand/taken.png", b"another file")
    with pytest.raises(AssetError, match="will not overwrite"):
        adapter.move(moved, "taken.png")
    assert graph.library.at("Brand/taken.png").content == b"another file"


def test_a_move_whose_answer_is_lost_is_found_done(graph: GraphEmulator) -> None:
    populate(graph)
    adapter = open_adapter(library_uri("Brand"))
    original = adapter.stat("logo.png")
    assert original is not None
    graph.lose_answer("/items/", "PATCH")  # moved, then 503; the retry is answered 412

    moved = adapter.move(original, "_quarantine/logo.png")

    assert moved.object_id == original.object_id and adapter.stat("logo.png") is None
    assert adapter.stat("_quarantine/logo.png") == moved


def test_a_delete_whose_answer_is_lost_succeeds_on_retry(graph: GraphEmulator) -> None:
    populate(graph)
    adapter = open_adapter(library_uri("Brand"))
    record = adapter.stat("logo.png")
    assert record is not None
    graph.lose_answer("/items/", "DELETE")  # deleted, then 503; the retry is answered 404

    assert adapter.delete(record) == {}
    assert adapter.stat("logo.png") is None and len(graph.requests("/items/", method="DELETE")) == 2


def test_an_upload_whose_answer_is_lost_is_found_written(graph: GraphEmulator) -> None:
    populate(graph)
    adapter = open_adapter(library_uri("Brand"))
    graph.lose_answer("/content", "PUT")  # written, then 503; the retry is answered 409

    stub = adapter.write_object("logo.png.url", b"[InternetShortcut]\r\nURL=x\r\n")

    assert graph.library.at("Brand/logo.png.url").content == b"[InternetShortcut]\r\nURL=x\r\n"
    assert stub.object_id == f"{graph.library.id}/{graph.library.at('Brand/logo.png.url').id}"
    graph.library.put("Brand/other.url", b"someone else's")
    graph.lose_answer("/content", "PUT")
    with pytest.raises(AssetError, match="overwrite"):
        adapter.write_object("other.url", b"mine")
    assert graph.library.at("Brand/other.url").content == b"someone else's"


def test_a_copy_is_posted_once_and_a_lost_answer_is_checked_in_the_store(graph: GraphEmulator) -> None:
    populate(graph)
    adapter = open_adapter(library_uri("Brand"))
    record = adapter.stat("logo.png")
    assert record is not None
    graph.lose_answer("/copy", "POST")  # copied, then 503

    copied = adapter.copy(record, "copies/logo.png")

    assert len(graph.requests("/copy", method="POST")) == 1  # never sent twice
    assert copied.store_hash == record.store_hash and copied.object_id != record.object_id
    assert graph.library.at("Brand/copies/logo.png").content == graph.library.at("Brand/logo.png").content


def test_a_library_named_by_display_name_or_url_name_gives_the_same_object_ids(graph: GraphEmulator) -> None:
    populate(graph)
    by_url = open_adapter(library_uri())
    by_name = open_adapter(library_uri().replace("Shared%20Documents", "Documents"))

    first, _, _, _ = split(by_url.list_changes(None))
    second, _, _, _ = split(by_name.list_changes(None))

    assert by_url.root_uri != by_name.root_uri
    assert {r.object_id for r in first.values()} == {r.object_id for r in second.values()}
    assert first["top.jpg"].object_id == f"{graph.library.id}/{graph.library.at('top.jpg').id}"


def test_graph_still_failing_after_the_retries_is_transient(graph: GraphEmulator) -> None:
    populate(graph)
    adapter = open_adapter(library_uri("Brand"), retry_attempts=2)
    record = adapter.stat("logo.png")
    assert record is not None
    graph.fail("logo.png", 503, "serviceNotAvailable", times=10)

    with pytest.raises(TransientError):
        adapter.stat("logo.png")  # "could not tell" is never None


# -- end to end through the core scanner ------------------------------------------------------


def photo_library(root: Path) -> dict[str, bytes]:
    """Pictures with exact copies, a re-encoded copy and a resized copy, under Chinese and spaced names."""
    files: dict[str, bytes] = {}
    for n in range(5):
        original = save(picture(n), root / "originals" / f"photo{n}.jpg", quality=90)
        files[f"originals/photo{n}.jpg"] = original.read_bytes()
        if n % 2 == 0:
            files[f"副本/copy of photo{n}.jpg"] = original.read_bytes()
    files["edits/photo1 re-encoded.jpg"] = save(picture(1), root / "edits/re.jpg", quality=55).read_bytes()
    files["edits/photo3 small.png"] = save(picture(3).resize((160, 120)), root / "edits/s.png", "PNG").read_bytes()
    for scratch in ("edits/re.jpg", "edits/s.png"):
        (root / scratch).unlink()
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def clusters_relative(report: dict[str, Any], prefix: str) -> set[frozenset[tuple[str, str]]]:
    """Clusters as sets of (path relative to the source, match kind)."""
    return {
        frozenset((unquote(m["uri"].removeprefix(prefix)), m["match"]) for m in cluster["members"])
        for cluster in report["clusters"]
    }


def test_scan_of_the_library_finds_the_same_clusters_as_a_scan_of_the_same_files_on_disk(
    graph: GraphEmulator, tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    for rel, data in photo_library(root).items():
        graph.library.put(f"Photos/{rel}", data)

    local_catalog = open_catalog(tmp_path / "local.sqlite")
    run_scan([SourceSpec(root.as_uri())], local_catalog, Host(), Config(), workers=1)
    library_catalog = open_catalog(tmp_path / "library.sqlite")
    summary = run_scan([SourceSpec(library_uri("Photos"))], library_catalog, Host(), Config(), workers=2)

    expected = clusters_relative(build_report(local_catalog), root.resolve().as_uri() + "/")
    found = clusters_relative(build_report(library_catalog), library_uri("Photos") + "/")
    assert found == expected
    # the three exact-copy groups at least (near copies join when perceptual matching is on)
    assert len(found) >= 3 and {("副本/copy of photo4.jpg", "exact"), ("originals/photo4.jpg", "exact")} in found
    assert summary.errors == 0 and summary.listed == 10


def test_rescan_without_changes_reads_nothing_and_asks_only_for_the_delta(graph: GraphEmulator, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for rel, data in photo_library(root).items():
        graph.library.put(rel, data)
    catalog = open_catalog(tmp_path / "library.sqlite")
    first = run_scan([SourceSpec(library_uri())], catalog, Host(), EXACT, workers=1)
    assert first.fingerprinted == 6  # only assets whose QuickXorHash another asset shares are read
    clusters = clusters_relative(build_report(catalog), library_uri() + "/")

    graph.log.clear()
    second = run_scan([SourceSpec(library_uri())], catalog, Host(), EXACT, workers=1)
    assert (second.listed, second.fingerprinted, second.gone) == (0, 0, 0)
    assert not graph.requests("/content") and not graph.requests("/download/")
    assert [(e.path, e.query.startswith("token=")) for e in graph.graph_requests()] == [
        ("/v1.0/drives/b!library/root/delta", True)
    ]
    assert clusters_relative(build_report(catalog), library_uri() + "/") == clusters

    # A deleted copy arrives as a deletion in the next round and leaves its cluster.
    graph.library.remove(graph.library.at("副本/copy of photo2.jpg"))
    third = run_scan([SourceSpec(library_uri())], catalog, Host(), EXACT, workers=1)
    assert third.gone == 1 and third.fingerprinted == 0
    remaining = clusters_relative(build_report(catalog), library_uri() + "/")
    assert remaining == {c for c in clusters if ("副本/copy of photo2.jpg", "exact") not in c}


def test_cli_scan_of_a_named_source_from_the_config_file(
    graph: GraphEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "photos"
    for rel, data in photo_library(root).items():
        graph.library.put(f"Brand/{rel}", data)
    # Only the secret stays in the environment; everything else is the named source's options.
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_AUTHORITY_HOST", "DAM_DEDUPE_GRAPH_ENDPOINT"):
        monkeypatch.delenv(name)
    monkeypatch.delenv("DAM_DEDUPE_CA_BUNDLE")
    (tmp_path / "dam-dedupe.toml").write_text(
        f"""
[sources.brand-sharepoint]
uri = "{library_uri("Brand")}"
tenant_id = "{TENANT}"
client_id = "{CLIENT_ID}"
authority_host = "{graph.base}"
graph_endpoint = "{graph.base}"
ca_bundle = "{Path(graph.ca_pem).as_posix()}"
""",
        encoding="utf-8",
    )
    run_cli("scan", "--workers", "2", "--preset", "exact", "brand-sharepoint", cwd=tmp_path)
    run_cli("report", "--format", "json", "-o", "report.json", cwd=tmp_path)
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert not report["errors"]
    assert clusters_relative(report, library_uri("Brand") + "/") == {
        frozenset({(f"originals/photo{n}.jpg", "exact"), (f"副本/copy of photo{n}.jpg", "exact")}) for n in (0, 2, 4)
    }


def test_a_listing_that_missed_a_folder_is_listed_again_next_time_not_left_behind_a_cursor(
    graph: GraphEmulator, tmp_path: Path
) -> None:
    lib = graph.library
    lib.put("photos/a.jpg", b"a" + JPEG_LIKE)
    lib.put("活動/b.jpg", b"b" + JPEG_LIKE)
    graph.leave_out_of_delta(lib.at("活動"))  # b.jpg arrives without its folder: its path cannot be known
    catalog = open_catalog(tmp_path / "c.sqlite")
    first = run_scan([SourceSpec(library_uri())], catalog, Host(), EXACT, workers=1)
    assert first.listed == 1 and first.errors == 1 and first.failed_sources == (library_uri(),)

    graph.left_out_of_delta.clear()
    second = run_scan([SourceSpec(library_uri())], catalog, Host(), EXACT, workers=1)
    assert second.errors == 0 and second.failed_sources == ()
    [source] = catalog.source_overview()
    assert source.present == 2  # b.jpg too: its round was asked again, not skipped behind the first cursor


def test_a_change_round_that_misses_a_new_folder_reports_its_file_and_lists_it_next_time(
    graph: GraphEmulator, tmp_path: Path
) -> None:
    lib = graph.library
    lib.put("photos/a.jpg", b"a" + JPEG_LIKE)
    catalog = open_catalog(tmp_path / "c.sqlite")
    assert run_scan([SourceSpec(library_uri())], catalog, Host(), EXACT, workers=1).errors == 0
    lib.put("新相簿/b.jpg", b"b" + JPEG_LIKE)
    graph.leave_out_of_delta(lib.at("新相簿"))
    second = run_scan([SourceSpec(library_uri())], catalog, Host(), EXACT, workers=1)
    assert second.errors == 1 and second.failed_sources == (library_uri(),)  # said, not silently dropped
    graph.left_out_of_delta.clear()
    third = run_scan([SourceSpec(library_uri())], catalog, Host(), EXACT, workers=1)
    assert third.errors == 0 and [s.present for s in catalog.source_overview()] == [2]
