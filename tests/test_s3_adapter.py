"""The S3 adapter against moto in server mode, through a proxy that counts reads and injects faults."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dam_dedupe.adapters import s3 as s3_module
from dam_dedupe.adapters.s3 import S3Adapter
from dam_dedupe.errors import AssetError, AssetGone, ConfigError, SourceError, TransientError
from dam_dedupe.host import Host
from dam_dedupe.records import AssetRecord, SourceSpec
from tests.servers.s3 import FaultProxy, iam_user, moto_endpoint, new_bucket, s3_admin, s3_env, s3_proxy  # noqa: F401

MIB = 1024 * 1024


def adapter_for(uri: str, **options: object) -> S3Adapter:
    """The adapter the host builds for ``uri``, through the entry point."""
    adapter = Host().open_source(SourceSpec(uri, options=tuple(options.items())))
    assert isinstance(adapter, S3Adapter)
    return adapter


def records_of(adapter: S3Adapter) -> dict[str, AssetRecord]:
    """Every record listed, by key; fails on a listing problem."""
    found: dict[str, AssetRecord] = {}
    for item in adapter.list_assets():
        assert isinstance(item, AssetRecord), item
        found[item.key] = item
    return found


def read_all(adapter: S3Adapter, record: AssetRecord) -> bytes:
    """The bytes ``open`` streams, read in the fingerprinter's 1 MiB chunks."""
    out = io.BytesIO()
    with adapter.open(record) as stream:
        while chunk := stream.read(MIB):
            out.write(chunk)
    return out.getvalue()


def put_multipart(client: Any, bucket: str, key: str, parts: list[bytes]) -> None:
    """Upload ``parts`` as one multipart object."""
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for number, part in enumerate(parts, start=1):
        etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=part)["ETag"]
        done.append({"ETag": etag, "PartNumber": number})
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})


# -- listing ------------------------------------------------------------------------------------------


def test_lists_more_than_one_page(s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]) -> None:
    bucket = new_bucket()
    keys = [f"photos/{i:05d}.jpg" for i in range(1001)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3_admin.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))
    s3_admin.put_object(Bucket=bucket, Key="photos/", Body=b"")  # a console "folder"
    s3_admin.put_object(Bucket=bucket, Key="photos-old/x.jpg", Body=b"outside the prefix")

    found = records_of(adapter_for(f"s3://{bucket}/photos"))

    assert sorted(found) == [k.removeprefix("photos/") for k in keys]
    listings = [p for m, p in s3_env.requests if m == "GET" and "list-type=2" in p]
    assert len(listings) == 2
    assert s3_env.object_gets == []


@pytest.mark.parametrize("versioned", [False, True])
def test_a_listing_in_shards_is_the_whole_listing_each_object_in_one_shard(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str], versioned: bool
) -> None:
    bucket = new_bucket(versioned=versioned)
    keys = ["photos/a.jpg", "photos/z.jpg", "photos/hr/1.jpg", "photos/hr/sub/2.jpg", "photos/營銷部/3.jpg"]
    keys += [f"photos/{i:04d}.jpg" for i in range(1001)]  # folders and objects over more than one page
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3_admin.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))
    s3_admin.put_object(Bucket=bucket, Key="photos/empty/", Body=b"")  # a console "folder", nothing in it
    s3_admin.put_object(Bucket=bucket, Key="photos/gone/x.jpg", Body=b"x")
    s3_admin.delete_object(Bucket=bucket, Key="photos/gone/x.jpg")
    s3_admin.put_object(Bucket=bucket, Key="photos-old/x.jpg", Body=b"outside the prefix")
    whole = records_of(adapter_for(f"s3://{bucket}/photos"))
    sharded = adapter_for(f"s3://{bucket}/photos", list_in_shards=True)

    shards = sharded.listing_shards()
    assert shards == ["", "empty/", "gone/", "hr/", "營銷部/"] if versioned else ["", "empty/", "hr/", "營銷部/"]
    listed = [record for shard in shards for record in sharded.list_shard(shard)]

    assert sorted(whole) == sorted(k.removeprefix("photos/") for k in keys)
    assert sorted(record.key for record in listed) == sorted(whole)  # each object once
    assert {record.key: record for record in listed} == whole
    assert records_of(sharded) == whole  # listed here, shard after shard
    assert records_of(adapter_for(f"s3://{bucket}/photos")) == whole
    assert adapter_for(f"s3://{bucket}/photos").listing_shards() is None  # the option is off by default


def test_single_part_etag_is_the_md5_store_hash_and_records_are_stable(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    body = b"same bytes"
    s3_admin.put_object(Bucket=bucket, Key="a.jpg", Body=body)
    s3_admin.put_object(Bucket=bucket, Key="sub/b.jpg", Body=body)
    adapter = adapter_for(f"s3://{bucket}")

    first, second = records_of(adapter), records_of(adapter)

    md5 = hashlib.md5(body).hexdigest()
    assert first == second
    a = first["a.jpg"]
    assert (a.store_hash, a.etag, a.size, a.version_id) == (f"md5:{md5}", md5, len(body), None)
    assert first["sub/b.jpg"].store_hash == a.store_hash
    assert a.uri == f"s3://{bucket}/a.jpg" and a.name == "a.jpg"
    assert a.modified is not None and a.modified.utcoffset() is not None and a.modified.microsecond == 0
    assert adapter.stat("a.jpg") == a
    kms_bucket = adapter_for(f"s3://{bucket}", etag_is_md5=False)  # SSE-KMS: ETags are not MD5s
    assert {r.store_hash for r in records_of(kms_bucket).values()} == {None}
    assert kms_bucket.stat("a.jpg") == records_of(kms_bucket)["a.jpg"]


def test_multipart_etag_is_not_used_as_a_hash(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    parts = [b"a" * (5 * MIB), b"b" * MIB]
    put_multipart(s3_admin, bucket, "big.tif", parts)
    adapter = adapter_for(f"s3://{bucket}")

    record = records_of(adapter)["big.tif"]

    assert record.etag is not None and record.etag.endswith("-2")
    assert record.store_hash is None
    assert hashlib.sha256(read_all(adapter, record)).digest() == hashlib.sha256(b"".join(parts)).digest()


def test_versioned_bucket_delete_places_a_marker_and_destroys_no_version(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket(versioned=True)
    s3_admin.put_object(Bucket=bucket, Key="k.jpg", Body=b"old")
    latest = s3_admin.put_object(Bucket=bucket, Key="k.jpg", Body=b"new")["VersionId"]
    s3_admin.put_object(Bucket=bucket, Key="gone.jpg", Body=b"x")
    s3_admin.delete_object(Bucket=bucket, Key="gone.jpg")  # latest is a delete marker
    adapter = adapter_for(f"s3://{bucket}")

    found = records_of(adapter)
    assert sorted(found) == ["k.jpg"]
    assert found["k.jpg"].version_id == latest
    assert read_all(adapter, found["k.jpg"]) == b"new"
    assert adapter.stat("gone.jpg") is None

    journal = adapter.delete(found["k.jpg"])

    versions = s3_admin.list_object_versions(Bucket=bucket, Prefix="k.jpg")
    assert latest in [v["VersionId"] for v in versions["Versions"]] and len(versions["Versions"]) == 2
    markers = [m["VersionId"] for m in versions["DeleteMarkers"] if m["IsLatest"]]
    assert journal == {"delete_marker": markers[0]}
    assert adapter.stat("k.jpg") is None  # a current delete marker is gone
    assert not any(m == "DELETE" and "versionId" in p for m, p in s3_env.requests)

    assert adapter.delete(found["k.jpg"]) == journal  # repeated: already hidden, same marker, nothing added
    assert len(s3_admin.list_object_versions(Bucket=bucket, Prefix="k.jpg")["DeleteMarkers"]) == 1

    s3_admin.delete_object(Bucket=bucket, Key="k.jpg", VersionId=markers[0])  # what undo does
    assert read_all(adapter, adapter.stat("k.jpg")) == b"new"


def test_a_hidden_version_can_be_copied_back_to_its_own_key(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket(versioned=True)
    s3_admin.put_object(Bucket=bucket, Key="k.jpg", Body=b"the original", Tagging="t=1")
    adapter = adapter_for(f"s3://{bucket}")
    record = records_of(adapter)["k.jpg"]
    adapter.delete(record)

    restored = adapter.copy(record, "k.jpg")  # the key is gone (a marker is current), so this never overwrites

    assert read_all(adapter, restored) == b"the original" and s3_tags_of(s3_admin, bucket, "k.jpg") == {"t": "1"}
    assert restored.version_id != record.version_id and adapter.stat("k.jpg") == restored


def test_a_null_version_under_suspended_versioning_is_deleted_and_nothing_journaled(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket(versioned=True)
    s3_admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3_admin.put_object(Bucket=bucket, Key="null.jpg", Body=b"written while suspended")
    adapter = adapter_for(f"s3://{bucket}")
    record = records_of(adapter)["null.jpg"]
    assert record.version_id == "null"

    assert adapter.delete(record) == {}  # S3 replaces a null version by the marker: no marker to journal

    assert adapter.stat("null.jpg") is None


def test_versioned_delete_refuses_when_another_version_is_current(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket(versioned=True)
    s3_admin.put_object(Bucket=bucket, Key="k.jpg", Body=b"planned")
    adapter = adapter_for(f"s3://{bucket}")
    record = records_of(adapter)["k.jpg"]
    s3_admin.put_object(Bucket=bucket, Key="k.jpg", Body=b"planned")  # same bytes and ETag, a new version

    with pytest.raises(AssetError, match="changed since it was checked; not deleted"):
        adapter.delete(record)
    assert s3_admin.list_object_versions(Bucket=bucket, Prefix="k.jpg").get("DeleteMarkers", []) == []


def test_a_delete_whose_answer_is_lost_succeeds_on_retry(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    s3_admin.put_object(Bucket=bucket, Key="a.jpg", Body=b"one")
    adapter = adapter_for(f"s3://{bucket}")
    record = records_of(adapter)["a.jpg"]
    s3_env.lose_answers = {"DELETE": 1}  # moto deletes, the adapter sees a 503

    assert adapter.delete(record) == {}

    assert adapter.stat("a.jpg") is None
    deletes = [p for m, p in s3_env.requests if m == "DELETE"]
    assert len(deletes) == 1  # the retry looked first, found it gone, and sent no second DELETE
    assert adapter.delete(record) == {}  # and a delete of a gone object is success


def test_attempts_running_out_on_a_write_is_a_transient_error(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    s3_admin.put_object(Bucket=bucket, Key="a.jpg", Body=b"one")
    adapter = adapter_for(f"s3://{bucket}", retry_attempts=2)
    record = records_of(adapter)["a.jpg"]
    s3_env.reset(fail_rate=1.0)

    with pytest.raises(TransientError, match="after 2 attempts"):
        adapter.delete(record)
    with pytest.raises(TransientError):
        adapter.stat("a.jpg")  # "could not tell" is never None
    s3_env.reset()
    assert adapter.stat("a.jpg") == record


def test_object_ids_name_the_bucket_key_and_the_endpoint_of_a_compatible_store(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    s3_admin.put_object(Bucket=bucket, Key="p/a.jpg", Body=b"one")
    host = s3_env.endpoint.removeprefix("http://")

    whole, scoped = adapter_for(f"s3://{bucket}"), adapter_for(f"s3://{bucket}/p")

    assert records_of(whole)["p/a.jpg"].object_id == f"s3:{host}/{bucket}/p/a.jpg"
    assert records_of(scoped)["a.jpg"].object_id == records_of(whole)["p/a.jpg"].object_id
    assert scoped.stat("a.jpg").object_id == f"s3:{host}/{bucket}/p/a.jpg"  # type: ignore[union-attr]


def test_keys_with_chinese_characters_and_spaces(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    s3_admin.put_object(Bucket=bucket, Key="相册 2024/海边 照片.jpg", Body=b"sea")
    adapter = adapter_for(f"s3://{bucket}/相册 2024")

    record = records_of(adapter)["海边 照片.jpg"]

    assert record.uri == f"s3://{bucket}/相册 2024/海边 照片.jpg" and record.name == "海边 照片.jpg"
    assert read_all(adapter, record) == b"sea"
    assert s3_env.object_gets == [f"/{bucket}/相册 2024/海边 照片.jpg"]
    copied = adapter.copy(record, "副本/海边 照片 (1).jpg")
    assert copied.uri == f"s3://{bucket}/相册 2024/副本/海边 照片 (1).jpg"
    assert adapter.stat("副本/海边 照片 (1).jpg") == copied


# -- reading ------------------------------------------------------------------------------------------


def test_object_deleted_or_changed_after_listing(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    for key in ("a.jpg", "b.jpg", "c.jpg"):
        s3_admin.put_object(Bucket=bucket, Key=key, Body=key.encode())
    adapter = adapter_for(f"s3://{bucket}")
    found = records_of(adapter)
    s3_admin.delete_object(Bucket=bucket, Key="a.jpg")
    s3_admin.put_object(Bucket=bucket, Key="b.jpg", Body=b"rewritten")

    with pytest.raises(AssetGone):
        adapter.open(found["a.jpg"])
    with pytest.raises(AssetError, match="changed since it was listed"):
        adapter.open(found["b.jpg"])
    assert read_all(adapter, found["c.jpg"]) == b"c.jpg"


def test_a_dropped_connection_resumes_from_where_it_stopped(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    body = bytes(range(256)) * (12 * 1024)  # 3 MiB
    s3_admin.put_object(Bucket=bucket, Key="a.jpg", Body=body)
    adapter = adapter_for(f"s3://{bucket}")
    record = records_of(adapter)["a.jpg"]
    s3_env.truncate_object_gets = 1

    assert read_all(adapter, record) == body
    assert len(s3_env.object_gets) == 2
    assert s3_env.range_headers[0] == "" and s3_env.range_headers[1].startswith("bytes=")
    assert s3_env.range_headers[1] != "bytes=0-"


def test_reading_the_first_bytes_does_not_download_the_object(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    s3_admin.put_object(Bucket=bucket, Key="huge.tif", Body=b"II*\x00" + b"\x00" * (64 * MIB))
    adapter = adapter_for(f"s3://{bucket}")
    record = records_of(adapter)["huge.tif"]

    with adapter.open(record) as stream:
        assert stream.read(4) == b"II*\x00"

    deadline = time.monotonic() + 10
    while not s3_env.object_bytes_sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s3_env.object_bytes_sent and s3_env.object_bytes_sent[0] < 16 * MIB  # of 64 MiB: the rest never came


def test_throttling_is_retried_until_everything_is_read(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    bodies = {f"{i:03d}.jpg": f"body {i}".encode() for i in range(40)}
    for key, body in bodies.items():
        s3_admin.put_object(Bucket=bucket, Key=key, Body=body)
    s3_env.reset(fail_rate=0.3)
    adapter = adapter_for(f"s3://{bucket}", retry_attempts=12)

    found = records_of(adapter)
    read = {key: read_all(adapter, record) for key, record in found.items()}

    assert read == bodies
    assert s3_env.failed > 5


def test_attempts_are_bounded_and_the_error_says_so(s3_env: FaultProxy, new_bucket: Callable[..., str]) -> None:
    bucket = new_bucket()
    s3_env.reset(fail_rate=1.0)
    adapter = adapter_for(f"s3://{bucket}", retry_attempts=3)

    with pytest.raises(SourceError, match="SlowDown after 3 attempts"):
        records_of(adapter)
    assert len(s3_env.requests) == 3  # botocore's own retries are off


# -- failures that need a person ------------------------------------------------------------------------


def test_missing_bucket_unknown_profile_no_credentials_and_bad_options(
    s3_env: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SourceError, match="bucket does not exist"):
        records_of(adapter_for("s3://no-such-bucket-here/x"))
    with pytest.raises(SourceError, match="name an existing profile"):
        records_of(adapter_for("s3://any-bucket", profile="no-such-profile"))
    with pytest.raises(ConfigError, match="retry_attempts"):
        adapter_for("s3://any-bucket", retry_attempts="many")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SourceError, match="no usable AWS credentials"):
        records_of(adapter_for("s3://any-bucket"))
    assert s3_env.requests == [("GET", "/no-such-bucket-here?versioning")]


def test_access_denied_names_the_missing_permission(
    s3_env: FaultProxy,
    s3_admin: Any,
    new_bucket: Callable[..., str],
    iam_user: Callable[[str, list[str]], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = new_bucket()
    s3_admin.put_object(Bucket=bucket, Key="a.jpg", Body=b"a")
    lister = iam_user(bucket, ["s3:ListBucket"])
    nobody = iam_user(bucket, [])

    for name, value in nobody.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SourceError, match=rf"need s3:ListBucket on arn:aws:s3:::{bucket}"):
        records_of(adapter_for(f"s3://{bucket}"))

    for name, value in lister.items():
        monkeypatch.setenv(name, value)
    adapter = adapter_for(f"s3://{bucket}")
    record = records_of(adapter)["a.jpg"]  # no s3:GetBucketVersioning: listed without versions
    with pytest.raises(AssetError, match=rf"need s3:GetObject on arn:aws:s3:::{bucket}/a.jpg"):
        adapter.open(record)
    with pytest.raises(AssetError, match="need s3:GetObjectTagging"):
        adapter.get_tags(record)

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXPIREDORWRONG00")
    with pytest.raises(SourceError, match="refused the AWS credentials"):
        records_of(adapter_for(f"s3://{bucket}"))


def test_the_s3_specific_endpoint_variable_is_honoured(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = new_bucket()
    s3_admin.put_object(Bucket=bucket, Key="a.jpg", Body=b"a")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # for other services; S3 must not use it

    assert sorted(records_of(adapter_for(f"s3://{bucket}"))) == ["a.jpg"]


def test_china_regions_use_the_aws_cn_partition(s3_env: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    adapter = adapter_for("s3://photos-cn/archive", region="cn-northwest-1")

    assert adapter.client.meta.endpoint_url.endswith(".amazonaws.com.cn")
    assert adapter.arn("archive/a.jpg") == "arn:aws-cn:s3:::photos-cn/archive/a.jpg"


def test_module_imports_without_boto3_and_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['boto3'] = None; sys.modules['botocore'] = None\n"
        "from dam_dedupe.adapters.s3 import S3Adapter\n"
        "from dam_dedupe.errors import MissingExtra\n"
        "try:\n    S3Adapter.check_available()\nexcept MissingExtra as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert "pip install 'dam-dedupe[s3]'" in out


# -- write side ------------------------------------------------------------------------------------------


def s3_tags_of(client: Any, bucket: str, key: str) -> dict[str, str]:
    """The object's real S3 tags."""
    return {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def test_tags_merge_and_overflow_into_metadata_beyond_ten(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    s3_admin.put_object(
        Bucket=bucket,
        Key="a.jpg",
        Body=b"image",
        ContentType="image/jpeg",
        Metadata={"owner": "marketing"},
        Tagging="lifecycle=keep&team=brand",
    )
    adapter = adapter_for(f"s3://{bucket}")
    record = records_of(adapter)["a.jpg"]
    before = adapter.get_tags(record)
    assert before == {"lifecycle": "keep", "team": "brand"}

    merged = {**before, **{f"dam-{i}": f"v{i}" for i in range(9)}, "dam-duplicate-of": "s3://b/x,y"}
    adapter.set_tags(record, merged)

    real = s3_tags_of(s3_admin, bucket, "a.jpg")
    assert len(real) == 10 and {"lifecycle", "team"} <= set(real)
    head = s3_admin.head_object(Bucket=bucket, Key="a.jpg")
    assert set(head["Metadata"]) == {"owner", "dam-dedupe-tags"}
    assert head["ContentType"] == "image/jpeg" and head["ETag"].strip('"') == record.etag
    assert adapter.get_tags(record) == merged

    adapter.set_tags(record, before)  # undo

    assert s3_tags_of(s3_admin, bucket, "a.jpg") == before
    assert s3_admin.head_object(Bucket=bucket, Key="a.jpg")["Metadata"] == {"owner": "marketing"}
    assert adapter.get_tags(record) == before
    assert s3_admin.get_object(Bucket=bucket, Key="a.jpg")["Body"].read() == b"image"

    adapter.set_tags(record, {})  # undo of a tag action on an object that had none
    assert s3_tags_of(s3_admin, bucket, "a.jpg") == {}
    assert adapter.get_tags(record) == {}


def test_copy_move_and_write_object(s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]) -> None:
    bucket = new_bucket()
    s3_admin.put_object(
        Bucket=bucket, Key="p/a.jpg", Body=b"image", ContentType="image/jpeg", Metadata={"owner": "x"}, Tagging="t=1"
    )
    adapter = adapter_for(f"s3://{bucket}/p")
    record = records_of(adapter)["a.jpg"]

    copied = adapter.copy(record, "q/a.jpg")
    assert (copied.size, copied.store_hash) == (record.size, record.store_hash)
    head = s3_admin.head_object(Bucket=bucket, Key="p/q/a.jpg")
    assert (head["ContentType"], head["Metadata"]) == ("image/jpeg", {"owner": "x"})
    assert s3_tags_of(s3_admin, bucket, "p/q/a.jpg") == {"t": "1"}
    with pytest.raises(AssetError, match="will not overwrite"):
        adapter.copy(record, "q/a.jpg")

    moved = adapter.move(record, "quarantine/a.jpg")
    assert adapter.stat("a.jpg") is None
    assert read_all(adapter, moved) == b"image"

    stub = adapter.write_object("a.html", b"<a href='x'>moved</a>", {"dam-duplicate-of": "s3://b/q/a.jpg"})
    assert stub.size == len(b"<a href='x'>moved</a>")
    assert s3_admin.head_object(Bucket=bucket, Key="p/a.html")["ContentType"] == "text/html"
    assert adapter.get_tags(stub) == {"dam-duplicate-of": "s3://b/q/a.jpg"}

    adapter.delete(stub)  # undo of a redirect: remove the stub, move the original back
    restored = adapter.move(moved, "a.jpg")
    assert adapter.stat("a.jpg") == restored and adapter.stat("a.html") is None
    assert s3_tags_of(s3_admin, bucket, "p/a.jpg") == {"t": "1"}


def test_copy_keeps_storage_class_encryption_metadata_and_tags(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    key_id = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    s3_admin.put_object(
        Bucket=bucket,
        Key="a.tif",
        Body=b"archive master",
        ContentType="image/tiff",
        ContentDisposition="inline",
        CacheControl="max-age=60",
        Metadata={"owner": "brand"},
        Tagging="keep=yes&team=brand",
        StorageClass="STANDARD_IA",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key_id,
        BucketKeyEnabled=True,
    )
    adapter = adapter_for(f"s3://{bucket}", etag_is_md5=False)
    record = records_of(adapter)["a.tif"]

    adapter.copy(record, "quarantine/a.tif")

    before = s3_admin.head_object(Bucket=bucket, Key="a.tif")
    after = s3_admin.head_object(Bucket=bucket, Key="quarantine/a.tif")
    kept = ("ContentType", "ContentDisposition", "CacheControl", "Metadata", "StorageClass")
    kept += ("ServerSideEncryption", "SSEKMSKeyId", "BucketKeyEnabled")
    assert {k: after.get(k) for k in kept} == {k: before.get(k) for k in kept}
    assert after["StorageClass"] == "STANDARD_IA" and after["SSEKMSKeyId"] == key_id
    assert s3_tags_of(s3_admin, bucket, "quarantine/a.tif") == {"keep": "yes", "team": "brand"}
    assert s3_admin.get_object(Bucket=bucket, Key="quarantine/a.tif")["Body"].read() == b"archive master"


def test_copy_reads_the_exact_version_listed(s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]) -> None:
    bucket = new_bucket(versioned=True)
    s3_admin.put_object(Bucket=bucket, Key="a.jpg", Body=b"listed", Tagging="v=1")
    adapter = adapter_for(f"s3://{bucket}")
    record = records_of(adapter)["a.jpg"]

    copied = adapter.copy(record, "q/a.jpg")

    copies = [p for m, p in s3_env.requests if m == "PUT" and p.startswith(f"/{bucket}/q/a.jpg")]
    assert len(copies) == 1
    assert read_all(adapter, copied) == b"listed" and copied.version_id is not None
    s3_admin.put_object(Bucket=bucket, Key="a.jpg", Body=b"written later", Tagging="v=2")

    again = adapter.copy(record, "q/b.jpg")  # the version listed, not the one current now

    assert read_all(adapter, again) == b"listed"
    assert s3_tags_of(s3_admin, bucket, "q/b.jpg") == {"v": "1"}


def test_a_copy_whose_answer_is_lost_succeeds_on_retry(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    s3_admin.put_object(Bucket=bucket, Key="a.jpg", Body=b"the only copy", Tagging="t=1")
    adapter = adapter_for(f"s3://{bucket}")
    record = records_of(adapter)["a.jpg"]
    s3_env.lose_answers = {"PUT": 1}  # moto copies, the adapter sees a 503

    copied = adapter.copy(record, "q/a.jpg")

    assert copied.store_hash == record.store_hash and read_all(adapter, copied) == b"the only copy"
    assert s3_tags_of(s3_admin, bucket, "q/a.jpg") == {"t": "1"}


def test_write_object_never_overwrites_and_survives_a_lost_answer(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    s3_admin.put_object(Bucket=bucket, Key="taken.html", Body=b"someone else's")
    adapter = adapter_for(f"s3://{bucket}")

    with pytest.raises(AssetError, match="will not overwrite"):
        adapter.write_object("taken.html", b"stub")
    assert s3_admin.get_object(Bucket=bucket, Key="taken.html")["Body"].read() == b"someone else's"

    s3_env.lose_answers = {"PUT": 1}
    stub = adapter.write_object("a.html", b"stub")
    assert read_all(adapter, stub) == b"stub"
    assert len([p for m, p in s3_env.requests if m == "PUT" and p.startswith(f"/{bucket}/a.html")]) == 2


@pytest.mark.parametrize(
    ("write", "refusal"),
    [
        (lambda adapter, record: adapter.set_tags(record, {"dam": "duplicate"}), "changed since it was checked"),
        (lambda adapter, record: adapter.delete(record), "not deleted"),
    ],
    ids=["set_tags", "delete"],
)
def test_writes_refuse_an_object_that_changed_since_it_was_listed(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str], write: Callable[..., None], refusal: str
) -> None:
    bucket = new_bucket()
    s3_admin.put_object(Bucket=bucket, Key="a.jpg", Body=b"one")
    adapter = adapter_for(f"s3://{bucket}")
    record = records_of(adapter)["a.jpg"]
    s3_admin.put_object(Bucket=bucket, Key="a.jpg", Body=b"two")

    with pytest.raises(AssetError, match=refusal):
        write(adapter, record)
    assert s3_admin.get_object(Bucket=bucket, Key="a.jpg")["Body"].read() == b"two"
    assert s3_tags_of(s3_admin, bucket, "a.jpg") == {}


def test_objects_from_5_gib_are_copied_part_by_part(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "COPY_MULTIPART_THRESHOLD", 5 * MIB)  # stands in for 5 GiB
    monkeypatch.setattr(s3_module, "COPY_PART_SIZE", 5 * MIB)
    bucket = new_bucket()
    body = b"x" * (6 * MIB)
    key_id = "arn:aws:kms:us-east-1:123456789012:key/multipart"
    s3_admin.put_object(
        Bucket=bucket,
        Key="a.tif",
        Body=body,
        ContentType="image/tiff",
        Tagging="t=1",
        StorageClass="GLACIER_IR",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key_id,
        BucketKeyEnabled=True,
    )
    adapter = adapter_for(f"s3://{bucket}", etag_is_md5=False)
    record = records_of(adapter)["a.tif"]

    copied = adapter.copy(record, "copy.tif")

    assert copied.etag is not None and copied.etag.endswith("-2") and copied.store_hash is None
    head = s3_admin.head_object(Bucket=bucket, Key="copy.tif")
    assert (head["ContentType"], head["StorageClass"], head["SSEKMSKeyId"]) == ("image/tiff", "GLACIER_IR", key_id)
    assert s3_tags_of(s3_admin, bucket, "copy.tif") == {"t": "1"}
    assert read_all(adapter, copied) == body


def test_a_multipart_object_with_a_full_object_checksum_has_a_store_hash(
    s3_env: FaultProxy, s3_admin: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket()
    parts = [b"a" * (5 * MIB), b"b" * 1024]
    whole = b"".join(parts)
    crc = zlib.crc32(whole).to_bytes(4, "big")
    upload = s3_admin.create_multipart_upload(
        Bucket=bucket, Key="big.tif", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    done = []
    for number, part in enumerate(parts, start=1):
        answer = s3_admin.upload_part(
            Bucket=bucket, Key="big.tif", UploadId=upload, PartNumber=number, Body=part, ChecksumAlgorithm="CRC32"
        )
        done.append({"ETag": answer["ETag"], "PartNumber": number, "ChecksumCRC32": answer["ChecksumCRC32"]})
    s3_admin.complete_multipart_upload(
        Bucket=bucket,
        Key="big.tif",
        UploadId=upload,
        MultipartUpload={"Parts": done},
        ChecksumType="FULL_OBJECT",
        ChecksumCRC32=base64.b64encode(crc).decode(),
    )
    adapter = adapter_for(f"s3://{bucket}")

    record = records_of(adapter)["big.tif"]

    assert record.etag is not None and record.etag.endswith("-2")
    assert record.store_hash == f"crc32:{crc.hex()}"
    assert adapter.stat("big.tif") == record == records_of(adapter)["big.tif"]
    assert s3_env.object_gets == []
