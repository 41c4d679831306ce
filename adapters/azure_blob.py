"""Azure Blob Storage: ``azure://ACCOUNT/CONTAINER/PREFIX`` URIs.

Keys are full blob names in the container (not relative to the prefix), so the write
side can address any blob in it. Record URIs are ``azure://ACCOUNT/CONTAINER/`` plus
the percent-encoded blob name.

Listing pages through List Blobs (``page_size`` results a page, at most 5,000) with blob
metadata and, where the identity may read them, index tags. A record carries the blob's
size, Last-Modified time, ETag (in its quoted HTTP form), its Content-MD5 as
``store_hash = "md5:<hex>"`` when the blob has one, and its version id on accounts with
versioning; snapshots and earlier versions are not listed. Blobs in the Archive tier
are reported as listing problems (they cannot be read until rehydrated), and folder
markers of hierarchical-namespace accounts are skipped.

Reading streams the blob in ranged GETs of ``chunk_size`` bytes (default 4 MiB), with at
most ``read_ahead`` requests in flight, each conditioned on the listed ETag so a blob
that changed after listing fails instead of being fingerprinted under the wrong record.

Every request goes through the shared retry policy (:mod:`dam_dedupe.retrying`); the
SDK's own retries are off. See :mod:`dam_dedupe.adapters.azure_connect` for sign-in and
sovereign clouds, :mod:`dam_dedupe.adapters.azure_tags` for the tag limit, and
``docs/adapters/azure-blob.md`` for set-up and the RBAC roles.

Source options: ``auth``, ``cloud``, ``endpoint_suffix``, ``authority_host``,
``blob_endpoint``, ``audience``, ``page_size``, ``chunk_size``, ``read_ahead``,
``retry_attempts``, ``max_retry_wait``, ``connect_timeout``, ``read_timeout``, ``copy_timeout``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import mimetypes
import time
from collections.abc import Callable, Iterator, Mapping
from hashlib import md5
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar
from urllib.parse import quote

from dam_dedupe import hookimpl
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.adapters import azure_errors as errs
from dam_dedupe.adapters.azure_connect import BlobLocation, blob_endpoint, make_service_client, parse_location
from dam_dedupe.adapters.azure_stream import RangedReader
from dam_dedupe.adapters.azure_tags import fallback_tags, merge_metadata, split_tags
from dam_dedupe.errors import AssetError, AssetGone, ConfigError, MissingExtra, SourceError, TransientError
from dam_dedupe.records import AssetRecord, ListingProblem, SourceSpec
from dam_dedupe.retrying import DEFAULT_ATTEMPTS, RetryPolicy

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_PAGE_SIZE = 5000
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024


def _quoted(etag: str | None) -> str | None:
    """ETags in one form: List Blobs gives them bare, HTTP headers quoted."""
    if not etag:
        return None
    return etag if etag.startswith('"') else f'"{etag}"'


def _is_folder(item: Any) -> bool:
    """Whether a delimited listing's item is a virtual folder (``BlobPrefix``), not a blob."""
    from azure.storage.blob import BlobPrefix

    return isinstance(item, BlobPrefix)


def _int_option(spec: SourceSpec, name: str, default: int, low: int, high: int) -> int:
    value = spec.option(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"the {name} option must be a whole number from {low} to {high}, not {value!r}")
    return value


def _if_unchanged() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified


def _standard_tier(props: Any) -> Any:
    """The blob's access tier (Hot, Cool, Cold) when it was set rather than inherited from the account, else ``None``.

    Premium tiers (``P10`` …) belong to page blobs and are not passed on.
    """
    from azure.storage.blob import StandardBlobTier

    if not props.blob_tier or props.blob_tier_inferred:
        return None
    known = {t.value.lower(): t for t in StandardBlobTier}
    return known.get(str(props.blob_tier).lower())


class _TagsRefused(Exception):
    """Listing with index tags was refused: the identity may list blobs but not read their tags."""


class AzureBlobAdapter(SourceAdapter):
    """Blobs in one Azure Storage container, under an optional name prefix."""

    scheme = "azure"
    extra = "azure"
    description = "Azure Blob Storage containers (azure://ACCOUNT/CONTAINER/PREFIX)"

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.location: BlobLocation = parse_location(spec.uri)
        self.page_size = _int_option(spec, "page_size", MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        self.list_in_shards = spec.option("list_in_shards", False) is True
        self.chunk_size = _int_option(spec, "chunk_size", DEFAULT_CHUNK_SIZE, 64 * 1024, 256 * 1024 * 1024)
        self.read_ahead = _int_option(spec, "read_ahead", 2, 1, 16)
        self.retry = RetryPolicy.for_source(spec, _int_option(spec, "retry_attempts", DEFAULT_ATTEMPTS, 1, 50))
        self.connect_timeout = _int_option(spec, "connect_timeout", 20, 1, 600)
        self.read_timeout = _int_option(spec, "read_timeout", 60, 1, 3600)
        self.copy_timeout = _int_option(spec, "copy_timeout", 600, 1, 86400)
        self._service: BlobServiceClient | None = None

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`MissingExtra` unless azure-storage-blob and azure-identity are installed."""
        for module, package in (("azure.storage.blob", "azure-storage-blob"), ("azure.identity", "azure-identity")):
            try:
                __import__(module)
            except ImportError as exc:
                raise MissingExtra("azure", package) from exc

    # -- clients and requests ------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The blob service URL this source talks to (for messages; holds no secret)."""
        if self._service is not None:
            return str(self._service.url).split("?", 1)[0]
        return blob_endpoint(self.spec, self.location)

    def _container(self) -> ContainerClient:
        if self._service is None:
            self.check_available()
            self._service = make_service_client(
                self.spec,
                self.location,
                retry_total=0,
                connection_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                max_single_get_size=self.chunk_size,
                max_chunk_get_size=self.chunk_size,
            )
        return self._service.get_container_client(self.location.container)

    def _blob(self, key: str) -> BlobClient:
        return self._container().get_blob_client(key)

    def _where(self, key: str | None = None) -> str:
        return self.location.uri_for(quote(key, safe="/")) if key is not None else self.spec.uri

    def _call(self, fn: Callable[[], T], op: errs.Operation, key: str, conditioned: str | None = None) -> T:
        """Make one request about a blob with retries; turn failures into the project's errors.

        ``conditioned`` names the blob whose ETag the request was conditioned on (for a copy,
        the source): when the request fails and that blob is gone, the error is
        :class:`AssetGone`, and a failed condition is reported against that blob.
        """
        from azure.core.exceptions import AzureError

        try:
            return errs.call(fn, f"{op.verb} {self._where(key)}", self.retry)
        except AzureError as exc:
            failure = errs.asset_failure(exc, op, self._where(key), self.endpoint)
            if conditioned is not None and isinstance(failure, AssetError) and not isinstance(failure, TransientError):
                where = self._where(conditioned)
                if self.stat(conditioned) is None:
                    raise AssetGone(f"the blob is gone: {where}") from exc
                if errs.is_condition_failure(exc):
                    raise AssetError(f"the blob changed since it was listed; not touched: {where}") from exc
            raise failure from exc

    # -- records -----------------------------------------------------------------------------

    def record_for(self, blob: Any, tags: Mapping[str, str] | None = None) -> AssetRecord:
        """Build the record of a blob from its listing entry or its properties.

        ``metadata`` holds the blob's user metadata as ``meta:NAME`` and its index tags (when
        listed) as ``tag:NAME``; nothing else, so the canonical policy's metadata rule counts
        only what people set.
        """
        content_md5 = blob.content_settings.content_md5 if blob.content_settings else None
        metadata = {f"meta:{k}": v for k, v in (blob.metadata or {}).items()}
        metadata.update({f"tag:{k}": v for k, v in (tags or {}).items()})
        return AssetRecord(
            source=self.spec.uri,
            key=blob.name,
            uri=self._where(blob.name),
            size=int(blob.size),
            modified=blob.last_modified,
            store_hash=f"md5:{bytes(content_md5).hex()}" if content_md5 else None,
            etag=_quoted(blob.etag),
            version_id=blob.version_id,
            name=blob.name.rsplit("/", 1)[-1],
            metadata=metadata,
            object_id=self.object_id(blob.name),
        )

    def object_id(self, blob_name: str) -> str:
        """What Azure says is one blob: ``azure:ACCOUNT/CONTAINER/NAME``, account and container case-folded."""
        return f"azure:{self.location.account}/{self.location.container}/{blob_name}"

    # -- listing --------------------------------------------------------------------------------

    def list_assets(self) -> Iterator[AssetRecord | ListingProblem]:
        """Page through the container's blobs under the prefix; archived blobs become problems. With the
        source's ``list_in_shards`` option, shard after shard (:meth:`listing_shards`), as a cluster lists them."""
        if self.list_in_shards:
            for shard in self.listing_shards() or []:
                yield from self.list_shard(shard)
            return
        yield from self._listed_under(self.location.prefix, delimited=False)

    def listing_shards(self) -> list[str] | None:
        """With the ``list_in_shards`` option: the blobs directly under the prefix (shard ``""``), then each
        virtual folder under it (a name prefix ending in ``/``), in name order; else ``None``. A cluster's
        workers then list the folders side by side, with the read role they need anyway (List Blobs is
        a read)."""
        if not self.list_in_shards:
            return None
        folders = []
        for page in self._pages(self.location.prefix, delimited=True):
            folders += [item.name[len(self.location.prefix) :] for item in page if _is_folder(item)]
        return ["", *folders]

    def list_shard(self, shard: str) -> Iterator[AssetRecord | ListingProblem]:
        """The blobs directly under the prefix (``""``), or every blob under one of its virtual folders."""
        yield from self._listed_under(self.location.prefix + shard, delimited=not shard)

    def _listed_under(self, prefix: str, delimited: bool) -> Iterator[AssetRecord | ListingProblem]:
        """The records of the blobs under ``prefix`` (``delimited``: not in its virtual folders)."""
        for page in self._pages(prefix, delimited):
            for blob in page:
                if _is_folder(blob) or (blob.metadata or {}).get("hdi_isfolder") == "true":
                    continue
                if str(blob.blob_tier or "").lower() == "archive":
                    yield ListingProblem(
                        self._where(blob.name),
                        "in the Archive tier: rehydrate it to a hot, cool or cold tier to scan it",
                    )
                    continue
                yield self.record_for(blob, blob.tags)

    def _pages(self, prefix: str, delimited: bool) -> Iterator[list[Any]]:
        """The blobs under ``prefix``, page by page (``delimited``: those not in a virtual folder under it,
        and its folders), with their index tags unless the role may not read them."""
        include = ["metadata", "tags"]
        token: str | None = None
        while True:
            try:
                page, token = self._list_page(include, token, prefix, delimited)
            except _TagsRefused:
                log.info("%s: not allowed to read index tags; listing without them", self.spec.label)
                include = ["metadata"]
                continue
            yield page
            if not token:
                return

    def _list_page(
        self, include: list[str], token: str | None, prefix: str, delimited: bool
    ) -> tuple[list[Any], str | None]:
        """One page of List Blobs from ``token``, retried; returns the blobs and the next token."""
        from azure.core.exceptions import AzureError

        container = self._container()

        def fetch() -> tuple[list[Any], str | None]:
            listing: Any
            if delimited:
                listing = container.walk_blobs(
                    name_starts_with=prefix or None, include=include, delimiter="/", results_per_page=self.page_size
                )
            else:
                listing = container.list_blobs(
                    name_starts_with=prefix or None, include=include, results_per_page=self.page_size
                )
            pager = listing.by_page(continuation_token=token)
            blobs = list(next(pager))
            return blobs, getattr(pager, "continuation_token", None) or None

        try:
            return errs.call(fetch, f"list {self.spec.uri}", self.retry)
        except AzureError as exc:
            if "tags" in include and errs.error_code(exc) in errs.ROLE_CODES:
                raise _TagsRefused from exc
            failure = errs.source_failure(exc, errs.LIST, self.spec.uri, self.endpoint)
            raise failure or SourceError(f"cannot list {self.spec.uri}: {errs.describe(exc)}") from exc

    # -- reading ----------------------------------------------------------------------------------

    def open(self, record: AssetRecord) -> BinaryIO:
        """Stream the blob in ranged GETs, each conditioned on the listed ETag."""
        if record.size == 0:
            return io.BytesIO(b"")
        blob = self._blob(record.key)

        def fetch(offset: int, length: int) -> bytes:
            def download() -> bytes:
                return self._download(blob, record, offset, length)

            return self._call(download, errs.READ, record.key, conditioned=record.key)

        first = fetch(0, min(self.chunk_size, record.size))
        raw = RangedReader(fetch, record.size, self.chunk_size, self.read_ahead, first=first)
        return io.BufferedReader(raw, buffer_size=min(self.chunk_size, 1024 * 1024))

    @staticmethod
    def _download(blob: BlobClient, record: AssetRecord, offset: int, length: int) -> bytes:
        from azure.core import MatchConditions

        conditions: dict[str, Any] = {}
        if record.etag:
            conditions = {"etag": record.etag, "match_condition": MatchConditions.IfNotModified}
        return bytes(blob.download_blob(offset=offset, length=length, max_concurrency=1, **conditions).readall())

    def stat(self, key: str) -> AssetRecord | None:
        """The blob's current record from Get Blob Properties, or ``None`` if there is no such blob."""
        try:
            props = self._call(lambda: self._blob(key).get_blob_properties(), errs.READ, key)
        except AssetGone:
            return None
        return self.record_for(props)

    # -- tags ----------------------------------------------------------------------------------------

    def tags_kept(self) -> str:
        """Blob index tags, with what does not fit in them in the blob's metadata."""
        return "blob index tags (az storage blob tag list), overflow in the blob's metadata"

    def get_tags(self, record: AssetRecord) -> dict[str, str]:
        """Index tags merged with the tags kept in the metadata fallback (see :mod:`azure_tags`)."""
        blob = self._blob(record.key)
        tags = self._call(lambda: blob.get_blob_tags(), errs.TAGS, record.key)
        props = self._call(lambda: blob.get_blob_properties(), errs.READ, record.key)
        return {**fallback_tags(props.metadata or {}), **dict(tags)}

    def set_tags(self, record: AssetRecord, tags: Mapping[str, str]) -> None:
        """Write up to 10 index tags, the rest to the metadata fallback (which changes the ETag).

        The metadata write is conditioned on the ETag just read; when it is refused because a
        retry after a lost answer found its own write done (the metadata already as wanted),
        that is success.
        """
        from azure.core import MatchConditions

        blob = self._blob(record.key)
        index, fallback = split_tags(tags)
        self._call(lambda: blob.set_blob_tags(index), errs.TAGS, record.key)
        props = self._call(lambda: blob.get_blob_properties(), errs.READ, record.key)
        current = dict(props.metadata or {})
        wanted = merge_metadata(current, fallback)
        if wanted == current:
            return
        try:
            self._call(
                lambda: blob.set_blob_metadata(wanted, etag=props.etag, match_condition=MatchConditions.IfNotModified),
                errs.WRITE,
                record.key,
            )
        except AssetError:
            after = self._call(lambda: blob.get_blob_properties(), errs.READ, record.key)
            if dict(after.metadata or {}) != wanted:
                raise  # not a retry that found its own write done: the blob changed meanwhile

    # -- copy, move, delete, write ---------------------------------------------------------------------

    def copy(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Server-side copy of exactly the listed ETag to a new blob; never overwrites.

        Copy Blob carries the content settings (type, encoding, disposition, cache control,
        Content-MD5) and user metadata over by itself; the index tags and the access tier
        are read from the source and set on the copy in the same request. The destination
        is written only if missing (``If-None-Match: *``): a retry after a lost answer finds
        it taken, and it is returned when it holds the source's bytes (size and Content-MD5),
        else refused, and the caller checks the copy's hash. A copy that does not
        finish is aborted and its blob removed, so a destination is whole or absent.
        """
        from azure.core import MatchConditions

        source, dest = self._blob(record.key), self._blob(dest_key)
        props = self._call(lambda: source.get_blob_properties(), errs.READ, record.key)
        if record.etag and _quoted(props.etag) != record.etag:
            raise AssetError(f"the blob changed since it was listed; not touched: {self._where(record.key)}")
        try:
            tags = dict(self._call(lambda: source.get_blob_tags(), errs.TAGS, record.key))
        except SourceError as exc:
            log.warning("%s: copying without index tags: %s", self._where(record.key), exc)
            tags = {}
        options: dict[str, Any] = {"match_condition": MatchConditions.IfMissing, "tags": tags or None}
        if record.etag:
            options.update(source_etag=record.etag, source_match_condition=MatchConditions.IfNotModified)
        tier = _standard_tier(props)
        if tier is not None:
            options["standard_blob_tier"] = tier
        try:
            started = self._call(
                lambda: dest.start_copy_from_url(source.url, **options),
                errs.WRITE,
                dest_key,
                conditioned=record.key,
            )
        except AssetError:
            landed = self.stat(dest_key)
            same = landed is not None and landed.size == record.size and landed.store_hash == record.store_hash
            if same and landed is not None and landed.store_hash is not None:
                return landed  # an earlier attempt copied it and its answer was lost
            raise
        if started.get("copy_status") != "success":
            self._wait_for_copy(dest, dest_key, str(started.get("copy_id") or ""))
        copied = self.stat(dest_key)
        if copied is None or copied.size != record.size:
            raise AssetError(f"the copy at {self._where(dest_key)} is missing or incomplete")
        return copied

    def _wait_for_copy(self, dest: BlobClient, dest_key: str, copy_id: str) -> None:
        """Wait for a pending copy; one that fails or runs past ``copy_timeout`` is aborted and its blob removed."""
        deadline = time.monotonic() + self.copy_timeout
        while True:
            props = self._call(lambda: dest.get_blob_properties(), errs.READ, dest_key)
            status = props.copy.status
            if status == "success":
                return
            if status != "pending" or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        if status == "pending" and copy_id:
            self._call(lambda: dest.abort_copy(copy_id), errs.WRITE, dest_key)
        etag, description = props.etag, props.copy.status_description
        self._call(lambda: dest.delete_blob(etag=etag, match_condition=_if_unchanged()), errs.WRITE, dest_key)
        if status == "pending":
            raise AssetError(f"the copy to {self._where(dest_key)} did not finish in {self.copy_timeout} s")
        raise AssetError(f"the copy to {self._where(dest_key)} ended {status}: {description}")

    def move(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Copy, then delete the source if it is still the listed ETag; if the delete fails the copy stays.

        Azure has no native move for blobs (:attr:`native_move` is false): the copy is a new blob.
        The copy is never removed again: a delete whose answer was lost may have taken the
        source, and then the copy holds the only bytes. The error is raised for the caller to judge.
        """
        copied = self.copy(record, dest_key)
        self.delete(record)
        return copied

    def delete(self, record: AssetRecord) -> dict[str, str]:
        """Delete the blob only if its ETag is still the one in ``record``; already gone is success.

        A retried delete whose first attempt succeeded is answered 404, which is success.
        Blobs with snapshots are refused. On accounts with blob versioning or soft delete the
        blob becomes a previous version or soft-deleted rather than destroyed; either way
        there is nothing for the caller to journal (``{}``).
        """
        conditions: dict[str, Any] = {}
        if record.etag:
            conditions = {"etag": record.etag, "match_condition": _if_unchanged()}
        blob = self._blob(record.key)
        with contextlib.suppress(AssetGone):  # already gone, as after a retried delete whose answer was lost
            self._call(lambda: blob.delete_blob(**conditions), errs.WRITE, record.key, conditioned=record.key)
        return {}

    def write_object(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> AssetRecord:
        """Upload a small blob (a redirect stub) with its Content-MD5, tags and all in one request; never overwrite.

        ``metadata`` becomes its index tags (the overflow in the metadata fallback, see
        :mod:`azure_tags`). A retry after a lost answer finds the blob there: if it holds
        exactly these bytes (its Content-MD5), the earlier attempt wrote it and it is returned.
        """
        from azure.storage.blob import ContentSettings

        digest = md5(data).digest()
        settings = ContentSettings(
            content_type=mimetypes.guess_type(key)[0] or "application/octet-stream",
            content_md5=bytearray(digest),
        )
        index, fallback = split_tags(metadata or {})
        blob = self._blob(key)
        try:
            self._call(
                lambda: blob.upload_blob(
                    data,
                    overwrite=False,
                    content_settings=settings,
                    tags=index or None,
                    metadata=merge_metadata({}, fallback) or None,
                ),
                errs.WRITE,
                key,
            )
        except AssetError as exc:
            existing = self.stat(key)
            if existing is not None and existing.store_hash == f"md5:{digest.hex()}":
                return existing  # an earlier attempt wrote it and its answer was lost
            raise exc
        record = self.stat(key)
        if record is None:
            raise AssetError(f"the blob written at {self._where(key)} is not there")
        return record

    def close(self) -> None:
        """Close the SDK client and its connections."""
        if self._service is not None:
            self._service.close()
            self._service = None


@hookimpl
def dam_dedupe_adapters() -> list[type[SourceAdapter]]:
    """Contribute the Azure Blob Storage adapter."""
    return [AzureBlobAdapter]
