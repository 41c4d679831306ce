"""Amazon S3 and S3-compatible stores (MinIO, Ceph): ``s3://bucket/prefix`` URIs.

Credentials, region and endpoint come from boto3's standard chain (profiles, environment
variables, SSO, instance and task roles, ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``);
the source options ``profile``, ``region`` and ``endpoint_url`` override it, and
``retry_attempts`` bounds the attempts per request, ``max_retry_wait`` caps a ``Retry-After`` hint
(seconds, default 60), and ``etag_is_md5 = false`` tells it
that single-part ETags are not MD5s (buckets encrypted with SSE-KMS or SSE-C). ``docs/adapters/s3.md`` is the
user's guide, with the IAM policies.

A prefix names a folder: ``s3://bucket/photos`` scans the keys under ``photos/``. Record
keys are object keys relative to that prefix, so that the write side stays inside the
prefix an IAM policy grants. Record URIs are ``s3://bucket/<object key>``, unencoded, as
the AWS console and CLI show them.

Records from two listings of an unchanged bucket are equal: the modified time is cut to
whole seconds (as S3 itself keeps it) and the store hash is the ETag's MD5, so a rescan
reads nothing again. A multipart ETag (``<hex>-<parts>``) is no hash of the content; such
an object has a store hash only when it carries a full-object checksum (``CRC64NVME``, or
``CRC32``/``CRC32C``/``SHA*`` uploaded as ``FULL_OBJECT``), read with one ``HEAD`` unless the
listing already says the checksum is ``COMPOSITE``. Records carry no store metadata: the
canonical policy counts ``AssetRecord.metadata`` as descriptive metadata, and storage
class or checksum algorithm would make S3 copies win that rule for nothing.

botocore's own retries are off; every request goes through
:func:`dam_dedupe.retrying.call_with_retries`, so attempts are bounded and logged.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import logging
import mimetypes
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

from dam_dedupe import hookimpl
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.adapters import s3_tags
from dam_dedupe.adapters.s3_errors import (
    ACCESS_CODES,
    CHANGED_CODES,
    GONE_CODES,
    Operation,
    delete_marker_of,
    error_code,
    explain,
    is_transient,
)
from dam_dedupe.errors import AssetError, AssetGone, ConfigError, MissingExtra, TransientError
from dam_dedupe.records import AssetRecord, ListingProblem, SourceSpec
from dam_dedupe.retrying import DEFAULT_ATTEMPTS, RetryPolicy, call_with_retries

log = logging.getLogger(__name__)

T = TypeVar("T")

COPY_MULTIPART_THRESHOLD = 5 * 1024**3
"""Objects of this size or more are copied part by part (``CopyObject`` stops at 5 GiB)."""
COPY_PART_SIZE = 512 * 1024**2
MAX_CONNECTIONS = 4
"""Connections per process; a scan worker reads one object at a time, a multipart copy uses them all."""
READ_BUFFER = 1024 * 1024

_MD5_ETAG = re.compile(r"[0-9a-f]{32}")
_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn")
_FULL_OBJECT_ALGORITHMS = ("SHA256", "SHA1", "CRC64NVME", "CRC32C", "CRC32")
_KEPT_ON_REWRITE = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "Expires",
    "WebsiteRedirectLocation",
    "StorageClass",
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "BucketKeyEnabled",
)


def parse_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into the bucket and the prefix as a folder (``""`` or ending in ``/``)."""
    if uri[:5].lower() != "s3://":
        raise ConfigError(f"not an s3:// URI: {uri}")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ConfigError(f"no bucket in {uri}: write s3://bucket or s3://bucket/prefix")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def store_hash_of(etag: str | None) -> str | None:
    """``md5:<hex>`` for a single-part ETag; ``None`` for a multipart one (``<hex>-<parts>``) or none."""
    if etag and _MD5_ETAG.fullmatch(etag):
        return f"md5:{etag}"
    return None


def checksum_store_hash(head: Mapping[str, Any]) -> str | None:
    """``<algorithm>:<hex>`` from a ``HeadObject`` answer with a full-object checksum, else ``None``.

    A composite checksum (a checksum of the parts' checksums, type ``COMPOSITE``) is no
    function of the content alone and gives none.
    """
    if head.get("ChecksumType") != "FULL_OBJECT":
        return None
    for algorithm in _FULL_OBJECT_ALGORITHMS:
        value = head.get(f"Checksum{algorithm}")
        if value and "-" not in value:
            return f"{algorithm.lower()}:{base64.b64decode(value).hex()}"
    return None


def _text_option(spec: SourceSpec, name: str) -> str | None:
    value = spec.option(name)
    return None if value is None or value == "" else str(value)


def _attempts_option(spec: SourceSpec) -> int:
    value = spec.option("retry_attempts", DEFAULT_ATTEMPTS)
    try:
        attempts = int(str(value))
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise ConfigError(f"{spec.label}: retry_attempts must be a whole number of at least 1, not {value!r}")
    return attempts


def _bare(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def _quoted(etag: str) -> str:
    return f'"{etag}"'


def _whole_seconds(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC).replace(microsecond=0) if value is not None else None


class S3Adapter(SourceAdapter):
    """A bucket, or a prefix in one, on Amazon S3 or an S3-compatible store."""

    scheme = "s3"
    extra = "s3"
    description = "Amazon S3 and S3-compatible stores (s3://bucket/prefix)"

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.bucket, self.prefix = parse_uri(spec.uri)
        self.profile = _text_option(spec, "profile")
        self.region = _text_option(spec, "region")
        self.endpoint_url = _text_option(spec, "endpoint_url")
        self.retry = RetryPolicy.for_source(spec, _attempts_option(spec))
        self.etag_is_md5 = spec.option("etag_is_md5", True) is not False
        self.list_in_shards = spec.option("list_in_shards", False) is True
        self._client: Any = None

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`MissingExtra` when boto3 is not installed."""
        if importlib.util.find_spec("boto3") is None:
            raise MissingExtra("s3", "boto3")

    # -- client, names and requests -----------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use, with botocore's retries off."""
        if self._client is None:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError

            config = Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                max_pool_connections=MAX_CONNECTIONS,
                user_agent_extra="dam-dedupe",
            )
            op = Operation(f"connect to {self.spec.uri}", "", "")
            try:
                session = boto3.session.Session(profile_name=self.profile)
                self._client = session.client(
                    "s3", region_name=self.region, endpoint_url=self.endpoint_url, config=config
                )
            except BotoCoreError as exc:
                raise explain(exc, op, asset=False, attempts=1) from exc
        return self._client

    def arn(self, object_key: str | None = None) -> str:
        """The ARN of the bucket, or of one object, in the client's partition (``aws``, ``aws-cn``…)."""
        base = f"arn:{self.client.meta.partition}:s3:::{self.bucket}"
        return base if object_key is None else f"{base}/{object_key}"

    def object_key(self, key: str) -> str:
        """The S3 object key of a record key."""
        return self.prefix + key

    def uri_of(self, object_key: str) -> str:
        """The URI shown for an object."""
        return f"s3://{self.bucket}/{object_key}"

    def _call(self, fn: Callable[[], T], op: Operation, *, asset: bool) -> T:
        """Make one request with bounded retries, turning failures into the project's errors."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call_with_retries(fn, is_transient=is_transient, policy=self.retry, what=op.what)
        except (BotoCoreError, ClientError) as exc:
            raise explain(exc, op, asset=asset, attempts=self.retry.attempts) from exc

    def _object_op(self, what: str, object_key: str, permission: str, hint: str = "") -> Operation:
        return Operation(f"{what} {self.uri_of(object_key)}", permission, self.arn(object_key), hint)

    # -- listing --------------------------------------------------------------------------------

    def list_assets(self) -> Iterator[AssetRecord | ListingProblem]:
        """List every object under the prefix, page by page; on versioned buckets the latest versions.

        Folder markers (keys ending in ``/``) are skipped. A page that still fails after the
        retries raises :class:`~dam_dedupe.errors.SourceError`, also mid-listing, so that a
        partial listing is never taken for the whole. With the source's ``list_in_shards`` option,
        shard after shard (:meth:`listing_shards`), as a cluster lists them side by side.
        """
        if self.list_in_shards:
            for shard in self.listing_shards() or []:
                yield from self.list_shard(shard)
            return
        yield from self._listed_under(self.prefix, self._versioned(), delimited=False)

    def listing_shards(self) -> list[str] | None:
        """With the ``list_in_shards`` option: the objects directly under the prefix (shard ``""``), then
        each "folder" under it (a common prefix ending in ``/``), in key order; else ``None``. A cluster's
        workers then list the folders side by side, and need ``s3:ListBucket`` (``s3:ListBucketVersions``
        on a versioned bucket) as well as ``s3:GetObject``."""
        if not self.list_in_shards:
            return None
        folders: list[str] = []
        for page in self._pages(self.prefix, self._versioned(), delimited=True):
            folders += [entry["Prefix"][len(self.prefix) :] for entry in page.get("CommonPrefixes", [])]
        return ["", *folders]

    def list_shard(self, shard: str) -> Iterator[AssetRecord | ListingProblem]:
        """The objects directly under the prefix (``""``), or every object under one of its folders."""
        yield from self._listed_under(self.prefix + shard, self._versioned(), delimited=not shard)

    def _listed_under(self, prefix: str, versioned: bool, delimited: bool) -> Iterator[AssetRecord]:
        """The records of the objects under ``prefix`` (``delimited``: not in its folders)."""
        for page in self._pages(prefix, versioned, delimited):
            entries = (
                [v for v in page.get("Versions", []) if v.get("IsLatest")] if versioned else page.get("Contents", [])
            )
            for entry in entries:
                if not entry["Key"].endswith("/"):
                    yield self._listed_record(entry)

    def _versioned(self) -> bool:
        """Whether the bucket keeps versions (enabled or suspended); ``False`` if we may not ask."""
        from botocore.exceptions import BotoCoreError, ClientError

        op = Operation(f"read the versioning state of s3://{self.bucket}", "s3:GetBucketVersioning", self.arn())
        try:
            answer = call_with_retries(
                lambda: self.client.get_bucket_versioning(Bucket=self.bucket),
                is_transient=is_transient,
                policy=self.retry,
                what=op.what,
            )
        except ClientError as exc:
            if error_code(exc) not in ACCESS_CODES:
                raise explain(exc, op, asset=False, attempts=self.retry.attempts) from exc
            log.warning(
                "no s3:GetBucketVersioning on %s: listing without version ids, so writes are conditional on "
                "the ETag only, not on the exact version",
                self.arn(),
            )
            return False
        except BotoCoreError as exc:
            raise explain(exc, op, asset=False, attempts=self.retry.attempts) from exc
        return answer.get("Status") in ("Enabled", "Suspended")

    def _pages(self, prefix: str, versioned: bool, delimited: bool) -> Iterator[dict[str, Any]]:
        """The listing's answers, page by page: of the objects (or, ``versioned``, the object versions)
        under ``prefix``; ``delimited``, those not in a folder under it, and its folders as ``CommonPrefixes``."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimited:
            request["Delimiter"] = "/"
        if versioned:
            op = Operation(f"list the object versions in {self.uri_of(prefix)}", "s3:ListBucketVersions", self.arn())
            call = self.client.list_object_versions
        else:
            op = Operation(f"list {self.uri_of(prefix)}", "s3:ListBucket", self.arn())
            call = self.client.list_objects_v2
        while True:
            page = self._call(lambda: call(**request), op, asset=False)
            yield page
            if not page.get("IsTruncated"):
                return
            if versioned:
                request["KeyMarker"] = page["NextKeyMarker"]
                request.pop("VersionIdMarker", None)  # absent when the page ended on a folder
                if page.get("NextVersionIdMarker"):
                    request["VersionIdMarker"] = page["NextVersionIdMarker"]
            else:
                request["ContinuationToken"] = page["NextContinuationToken"]

    def _listed_record(self, entry: Mapping[str, Any]) -> AssetRecord:
        object_key, etag = entry["Key"], _bare(entry.get("ETag"))
        store_hash = self._etag_hash(etag)
        if store_hash is None and entry.get("ChecksumAlgorithm") and entry.get("ChecksumType") != "COMPOSITE":
            store_hash = self._full_object_checksum(object_key)
        return self._record(
            object_key, entry["Size"], entry.get("LastModified"), etag, store_hash, entry.get("VersionId")
        )

    def _etag_hash(self, etag: str | None) -> str | None:
        """The MD5 store hash a single-part ETag gives, unless the source says its ETags are not MD5s."""
        return store_hash_of(etag) if self.etag_is_md5 else None

    def _full_object_checksum(self, object_key: str) -> str | None:
        """The store hash of a multipart object from its full-object checksum, if it has one (one ``HEAD``)."""
        try:
            return checksum_store_hash(self._head(object_key))
        except AssetError as exc:
            log.info("no full-object checksum for %s: %s", self.uri_of(object_key), exc)
            return None

    def _record(
        self,
        object_key: str,
        size: int,
        modified: datetime | None,
        etag: str | None,
        store_hash: str | None,
        version_id: str | None,
    ) -> AssetRecord:
        return AssetRecord(
            source=self.spec.uri,
            key=object_key[len(self.prefix) :],
            uri=self.uri_of(object_key),
            size=int(size),
            modified=_whole_seconds(modified),
            store_hash=store_hash,
            etag=etag,
            version_id=version_id,
            name=object_key.rsplit("/", 1)[-1],
            object_id=self.object_id(object_key),
        )

    def object_id(self, object_key: str) -> str:
        """What S3 says is one object: ``s3:BUCKET/KEY`` on AWS, ``s3:HOST/BUCKET/KEY`` on another endpoint.

        Bucket names are unique within an AWS partition, so the bucket and key name the object
        whatever region or URI spelling reached it; an S3-compatible store (MinIO, Ceph) has its
        own namespace, named by its endpoint's host and port.
        """
        host = (urlsplit(str(self.client.meta.endpoint_url)).netloc or "").lower()
        if host.endswith(_AWS_HOSTS):
            return f"s3:{self.bucket}/{object_key}"
        return f"s3:{host}/{self.bucket}/{object_key}"

    # -- reading and state ------------------------------------------------------------------------

    def open(self, record: AssetRecord) -> BinaryIO:
        """Stream the object as listed (``If-Match`` its ETag), resuming with a range after a dropped read.

        Raises :class:`AssetGone` if it was deleted, :class:`AssetError` if it changed since it
        was listed or cannot be read.
        """
        raw = _ObjectStream(self, record)
        raw.start()
        return io.BufferedReader(raw, buffer_size=READ_BUFFER)

    def _head(self, object_key: str, version_id: str | None = None) -> dict[str, Any]:
        """``HeadObject`` of the current version, or of ``version_id``, with retries."""
        op = self._object_op(
            "read the properties of",
            object_key,
            "s3:GetObject" + (" and s3:GetObjectVersion" if version_id else ""),
            hint="without s3:ListBucket, S3 also answers 403 for an object that does not exist",
        )
        return self._call(lambda: self._head_once(object_key, version_id), op, asset=True)

    def _head_once(self, object_key: str, version_id: str | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": object_key, "ChecksumMode": "ENABLED"}
        if version_id:
            request["VersionId"] = version_id
        return dict(self.client.head_object(**request))

    def _current_once(self, object_key: str) -> tuple[dict[str, Any] | None, str | None]:
        """One ``HEAD`` of the current version: ``(head, None)``, or ``(None, marker id)`` when it is gone.

        The marker id is the version id of the delete marker that is current, if one is.
        Other failures raise botocore's exception, for the caller's retries.
        """
        from botocore.exceptions import ClientError

        try:
            return self._head_once(object_key), None
        except ClientError as exc:
            if error_code(exc) not in GONE_CODES:
                raise
            marker = delete_marker_of(exc)
            if marker == "":  # some stores say a marker is current without naming it
                marker = self._latest_marker_once(object_key)
            return None, marker

    def _latest_marker_once(self, object_key: str) -> str | None:
        """The version id of the delete marker that is the current version of ``object_key``, if any."""
        answer = self.client.list_object_versions(Bucket=self.bucket, Prefix=object_key, MaxKeys=50)
        for marker in answer.get("DeleteMarkers", []):
            if marker["Key"] == object_key and marker.get("IsLatest"):
                return str(marker["VersionId"])
        return None

    def stat(self, key: str) -> AssetRecord | None:
        """The current record of ``key`` from a ``HEAD`` request, or ``None`` if it is gone.

        Gone means no such key, or a delete marker is its current version. A store that
        cannot answer raises :class:`~dam_dedupe.errors.TransientError` once retries run out.
        """
        object_key = self.object_key(key)
        try:
            head = self._head(object_key)
        except AssetGone:
            return None
        return self._record_of_head(object_key, head)

    def _record_of_head(self, object_key: str, head: Mapping[str, Any]) -> AssetRecord:
        etag = _bare(head.get("ETag"))
        store_hash = self._etag_hash(etag) or checksum_store_hash(head)
        size, modified = head["ContentLength"], head.get("LastModified")
        return self._record(object_key, size, modified, etag, store_hash, head.get("VersionId"))

    # -- tags -------------------------------------------------------------------------------------

    def _get_tagging(self, object_key: str) -> dict[str, str]:
        op = self._object_op("read the tags of", object_key, "s3:GetObjectTagging")
        answer = self._call(lambda: self.client.get_object_tagging(Bucket=self.bucket, Key=object_key), op, asset=True)
        return {t["Key"]: t["Value"] for t in answer.get("TagSet", [])}

    def tags_kept(self) -> str:
        """S3 object tags, with what does not fit in them in the object's metadata."""
        return "S3 object tags (aws s3api get-object-tagging), overflow in the x-amz-meta-dam-dedupe-tags metadata"

    def get_tags(self, record: AssetRecord) -> dict[str, str]:
        """The object's S3 tags and the overflow kept in its metadata (see :mod:`s3_tags`), as one mapping."""
        object_key = self.object_key(record.key)
        tags = self._get_tagging(object_key)
        tags.update(s3_tags.decode_overflow(self._head(object_key).get("Metadata", {})))
        return tags

    def set_tags(self, record: AssetRecord, tags: Mapping[str, str]) -> None:
        """Replace the object's tags with ``tags``: up to 10 as S3 tags, the rest in its metadata.

        When only the S3 tags change this is one ``PutObjectTagging``. When the metadata
        entry must change, the object is copied onto itself with the new metadata and tags
        (same bytes and ETag, a new modified time and, on versioned buckets, a new version).
        Refuses if the object changed since ``record`` was taken.
        """
        object_key = self.object_key(record.key)
        head = self._head(object_key)
        if record.etag and _bare(head.get("ETag")) != record.etag:
            raise AssetError("the object changed since it was checked; tags not set")
        s3_part, overflow = s3_tags.split_tags(tags, self._get_tagging(object_key))
        metadata = dict(head.get("Metadata", {}))
        if overflow == s3_tags.decode_overflow(metadata):
            if not s3_part:  # an empty TagSet is not a valid PutObjectTagging body
                op = self._object_op("remove the tags of", object_key, "s3:DeleteObjectTagging")
                self._call(
                    lambda: self.client.delete_object_tagging(Bucket=self.bucket, Key=object_key), op, asset=True
                )
                return
            op = self._object_op("set the tags of", object_key, "s3:PutObjectTagging")
            self._call(
                lambda: self.client.put_object_tagging(
                    Bucket=self.bucket, Key=object_key, Tagging={"TagSet": s3_tags.tag_set(s3_part)}
                ),
                op,
                asset=True,
            )
            return
        metadata.pop(s3_tags.METADATA_KEY, None)
        if overflow:
            metadata[s3_tags.METADATA_KEY] = s3_tags.encode_overflow(overflow)
        if s3_tags.metadata_size(metadata) > s3_tags.METADATA_LIMIT:
            raise AssetError(
                f"the tags do not fit: S3 keeps {s3_tags.TAG_LIMIT} tags per object and "
                f"{s3_tags.METADATA_LIMIT} bytes of metadata"
            )
        extra: dict[str, Any] = {k: head[k] for k in _KEPT_ON_REWRITE if k in head}
        extra.update(
            MetadataDirective="REPLACE",
            Metadata=metadata,
            TaggingDirective="REPLACE",
            Tagging=s3_tags.tagging_header(s3_part),
            CopySourceIfMatch=head["ETag"],
        )
        op = self._object_op(
            "rewrite the metadata of", object_key, "s3:PutObject, s3:GetObject and s3:PutObjectTagging"
        )
        source = {"Bucket": self.bucket, "Key": object_key}
        self._server_copy(source, object_key, extra, op, size=int(head["ContentLength"]))

    # -- copies, moves, deletes, writes -------------------------------------------------------------

    def _server_copy(
        self, source: dict[str, str], dest_key: str, extra: dict[str, Any], op: Operation, *, size: int
    ) -> None:
        """Copy inside the bucket: one ``CopyObject``, or boto3's multipart copy from 5 GiB.

        A copy to another key carries ``If-None-Match: *``, so a destination written
        meanwhile is refused by the store itself and a retry after a lost answer fails
        without harm. The multipart copy (``UploadPartCopy``) has no such condition; the
        caller checked that the destination was free just before.
        """
        from boto3.s3.transfer import TransferConfig

        if size < COPY_MULTIPART_THRESHOLD:
            request = {"Bucket": self.bucket, "Key": dest_key, "CopySource": source, **extra}
            if source["Key"] != dest_key:
                request["IfNoneMatch"] = "*"
            self._call(lambda: self.client.copy_object(**request), op, asset=True)
            return
        if extra.pop("BucketKeyEnabled", None) is not None:  # boto3's multipart copy cannot pass it on
            log.info("%s: the copy takes the bucket's S3 Bucket Key setting (a multipart copy cannot set it)", op.what)
        config = TransferConfig(
            multipart_threshold=COPY_MULTIPART_THRESHOLD,
            multipart_chunksize=COPY_PART_SIZE,
            max_concurrency=MAX_CONNECTIONS,
        )
        self._call(
            lambda: self.client.copy(source, self.bucket, dest_key, ExtraArgs=extra, Config=config), op, asset=True
        )

    def _stat_after_write(self, key: str) -> AssetRecord:
        record = self.stat(key)
        if record is None:
            raise AssetError(f"{self.uri_of(self.object_key(key))} is missing right after it was written")
        return record

    def copy(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Copy exactly the version listed to ``dest_key`` server-side, as it is; never overwrite.

        A copy repeated after a lost answer finds the destination taken; when it holds the
        source's bytes (same size and MD5) that is success, else it is refused.

        The copy reads the listed version (``CopySource`` with its ``VersionId``, on the
        condition of its ETag) and keeps its content type and other headers, user metadata,
        tags (that version's), storage class and encryption (SSE-S3, or SSE-KMS with its key
        and bucket-key setting). An object encrypted with a customer key (SSE-C) is refused:
        it cannot be copied without the key, which dam-dedupe never holds.
        """
        source_key, dest_object = self.object_key(record.key), self.object_key(dest_key)
        head = self._head(source_key, record.version_id)
        if record.etag and _bare(head.get("ETag")) != record.etag:
            raise AssetError(f"{record.uri} changed since it was listed; not copied")
        if head.get("SSECustomerAlgorithm"):
            raise AssetError(
                f"{record.uri} is encrypted with a customer-provided key (SSE-C): S3 cannot copy it without that "
                "key, which dam-dedupe does not hold; leave it out of the plan or re-encrypt it with SSE-S3 or SSE-KMS"
            )
        if self.stat(dest_key) is not None:
            raise AssetError(f"will not overwrite {self.uri_of(dest_object)}")
        source = {"Bucket": self.bucket, "Key": source_key}
        if record.version_id:
            source["VersionId"] = record.version_id
        extra = self._kept_on_copy(head)
        extra.update(MetadataDirective="COPY", TaggingDirective="COPY")
        if record.etag:
            extra["CopySourceIfMatch"] = _quoted(record.etag)
        op = Operation(
            f"copy {record.uri} to {self.uri_of(dest_object)}",
            "s3:GetObject, s3:GetObjectVersion and s3:GetObjectTagging on the source, s3:PutObject and "
            "s3:PutObjectTagging on the copy (and kms:Decrypt, kms:GenerateDataKey on an SSE-KMS key)",
            self.arn(source_key),
        )
        try:
            self._server_copy(source, dest_object, extra, op, size=int(head["ContentLength"]))
        except AssetError:
            landed = self.stat(dest_key)
            if landed is not None and _same_content(landed, record):
                return landed  # an earlier attempt copied it and its answer was lost
            raise
        return self._stat_after_write(dest_key)

    @staticmethod
    def _kept_on_copy(head: Mapping[str, Any]) -> dict[str, Any]:
        """What ``CopyObject`` does not carry over by itself: storage class and encryption settings.

        S3 gives a copy the bucket's default storage class and encryption unless told; a
        ``HEAD`` shows no storage class for STANDARD.
        """
        kept: dict[str, Any] = {}
        if head.get("StorageClass"):
            kept["StorageClass"] = head["StorageClass"]
        if head.get("ServerSideEncryption"):
            kept["ServerSideEncryption"] = head["ServerSideEncryption"]
        if head.get("SSEKMSKeyId"):
            kept["SSEKMSKeyId"] = head["SSEKMSKeyId"]
        if head.get("BucketKeyEnabled") is not None and head.get("SSEKMSKeyId"):
            kept["BucketKeyEnabled"] = bool(head["BucketKeyEnabled"])
        return kept

    def move(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Copy to ``dest_key``, then delete the version copied (a delete marker on versioned buckets).

        S3 has no native move (:attr:`native_move` is false): the copy is a new object. If the
        delete fails the copy stays and the error is raised.
        """
        moved = self.copy(record, dest_key)
        self.delete(record)
        return moved

    def delete(self, record: AssetRecord) -> dict[str, str]:
        """Remove the object at ``record.key`` if it is still the version listed; already gone is success.

        Each attempt first reads the current version (``HEAD``): gone (no key, or a delete
        marker current) is success, so a retry after a lost answer never fails; another
        version or ETag refuses and changes nothing. Then a ``DeleteObject`` without a
        version id, ``If-Match`` the ETag: on a versioned bucket that places a delete marker
        and destroys no version, and the marker's version id is returned for the journal
        (``{"delete_marker": ID}``); on an unversioned bucket the object is removed (``{}``),
        and so is a ``null`` version on a bucket whose versioning is suspended (S3 replaces it
        by the marker): nothing is journaled then, since removing that marker would bring
        back an older version, not this one.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        object_key = self.object_key(record.key)

        def attempt() -> dict[str, str]:
            head, marker = self._current_once(object_key)
            if head is None:
                return {"delete_marker": marker} if marker else {}
            if record.version_id and (head.get("VersionId") or "null") != record.version_id:
                raise _Changed  # (a HEAD of the null version may name no version id)
            if record.etag and _bare(head.get("ETag")) != record.etag:
                raise _Changed
            request: dict[str, Any] = {"Bucket": self.bucket, "Key": object_key}
            if record.etag:
                request["IfMatch"] = _quoted(record.etag)
            try:
                answer = self.client.delete_object(**request)
            except ClientError as exc:
                if error_code(exc) in GONE_CODES:
                    return {}
                if error_code(exc) in CHANGED_CODES:
                    raise _Changed from exc
                raise
            if head.get("VersionId") in (None, "null"):
                return {}  # unversioned, or versioning suspended over a null version: nothing was kept to un-hide
            marker = answer.get("VersionId") or (
                self._latest_marker_once(object_key) if answer.get("DeleteMarker") else None
            )
            return {"delete_marker": str(marker)} if answer.get("DeleteMarker") and marker else {}

        op = self._object_op("delete", object_key, "s3:DeleteObject")
        try:
            return call_with_retries(attempt, is_transient=is_transient, policy=self.retry, what=op.what)
        except _Changed:
            raise AssetError(f"{record.uri} changed since it was checked; not deleted") from None
        except (BotoCoreError, ClientError) as exc:
            raise explain(exc, op, asset=True, attempts=self.retry.attempts) from exc

    def write_object(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> AssetRecord:
        """Write a small object, never overwriting (``If-None-Match: *``); ``metadata`` becomes its tags.

        The overflow beyond S3's tag limits goes into its metadata, as in :meth:`set_tags`. A
        retry after a lost answer finds the key taken: if it holds exactly these bytes, the
        earlier attempt wrote it and its record is returned.
        """
        object_key = self.object_key(key)
        s3_part, overflow = s3_tags.split_tags(metadata or {}, ())
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": object_key,
            "Body": data,
            "ContentType": mimetypes.guess_type(key)[0] or "application/octet-stream",
            "IfNoneMatch": "*",
        }
        if s3_part:
            request["Tagging"] = s3_tags.tagging_header(s3_part)
        if overflow:
            request["Metadata"] = {s3_tags.METADATA_KEY: s3_tags.encode_overflow(overflow)}
        permission = "s3:PutObject and s3:PutObjectTagging" if s3_part else "s3:PutObject"
        op = self._object_op("write", object_key, permission)
        try:
            self._call(lambda: self.client.put_object(**request), op, asset=True)
        except AssetError as exc:
            existing = self.stat(key)
            if existing is not None and self._holds(existing, data):
                return existing  # an earlier attempt wrote it and its answer was lost
            if isinstance(exc, TransientError):
                raise
            raise AssetError(f"will not overwrite {self.uri_of(object_key)}: {exc}") from exc
        return self._stat_after_write(key)

    def _holds(self, record: AssetRecord, data: bytes) -> bool:
        """Whether the (small) object ``record`` names holds exactly ``data``: by its MD5 ETag, else by reading it."""
        if record.size != len(data):
            return False
        if record.etag and _MD5_ETAG.fullmatch(record.etag):
            return record.etag == hashlib.md5(data).hexdigest()
        with self.open(record) as stream:
            return bool(stream.read(len(data) + 1) == data)

    def close(self) -> None:
        """Close the client's connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _same_content(copy: AssetRecord, source: AssetRecord) -> bool:
    """Whether a copy certainly holds the source's bytes: same size and the same MD5 store hash."""
    return copy.size == source.size and copy.store_hash is not None and copy.store_hash == source.store_hash


class _Changed(Exception):
    """The object is no longer the version a write was conditioned on."""


class _ObjectStream(io.RawIOBase):
    """One object's bytes as a raw stream: a ``GetObject`` read in the caller's chunks.

    A read that fails transiently is retried by reopening the object from the current
    offset (``Range``), still ``If-Match`` the listed ETag, so the bytes are those listed.
    """

    def __init__(self, adapter: S3Adapter, record: AssetRecord) -> None:
        super().__init__()
        self.adapter = adapter
        self.record = record
        self.object_key = adapter.object_key(record.key)
        self.position = 0
        self.body: Any = None
        self.op = adapter._object_op("read", self.object_key, "s3:GetObject")

    def readable(self) -> bool:
        """Always readable."""
        return True

    def start(self) -> None:
        """Send the first ``GetObject``, so that a missing object fails at open."""
        self.adapter._call(self._open_body, self.op, asset=True)

    def _open_body(self) -> None:
        request: dict[str, Any] = {"Bucket": self.adapter.bucket, "Key": self.object_key}
        if self.record.etag:
            request["IfMatch"] = _quoted(self.record.etag)
        if self.position:
            request["Range"] = f"bytes={self.position}-"
        self.body = self.adapter.client.get_object(**request)["Body"]

    def _read_some(self, size: int) -> bytes:
        if self.body is None:
            if self.position >= self.record.size:
                return b""
            self._open_body()
        try:
            return bytes(self.body.read(size))
        except Exception:
            self._drop_body()
            raise

    def _drop_body(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` bytes into ``buffer``; 0 at the end."""
        view = memoryview(buffer).cast("B")
        data = self.adapter._call(lambda: self._read_some(len(view)), self.op, asset=True)
        view[: len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self) -> None:
        """Release the connection."""
        self._drop_body()
        super().close()


@hookimpl
def dam_dedupe_adapters() -> list[type[SourceAdapter]]:
    """Contribute the S3 adapter (boto3 is imported only when a source uses it)."""
    return [S3Adapter]
