"""``POST /v1/ingest``: a DAM says an asset was uploaded; read it once per (asset id, version) and catalogue it.

The URI must lie inside a source configured in ``dam-dedupe.toml`` (``[sources.NAME]``) whose adapter is
installed: the service reads only what an administrator has enabled, never a path a caller picks. The
asset is read with the scan's own job (:class:`~dam_dedupe.scan.FingerprintJob`: the same stub, error
and decode handling) and recorded as one small scan run of its source, so reports and later scans see it
like any listed asset. Clusters are rebuilt by the next ``scan`` or ``match``, not per upload.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import unquote

from dam_dedupe.catalog.base import CatalogAsset, DamIngest, RunCounts
from dam_dedupe.catalog.sql import SqlCatalog
from dam_dedupe.config import Config
from dam_dedupe.errors import DamDedupeError, SourceError, TransientError
from dam_dedupe.host import Host
from dam_dedupe.records import AssetRecord, SourceSpec
from dam_dedupe.scan import FingerprintJob
from dam_dedupe.service.tokens import now


class IngestRefused(DamDedupeError):
    """The event names an asset the service may not or cannot read (the reason is safe to show the caller)."""


class IngestDeferred(DamDedupeError):
    """The store could not be read just now (unreachable, throttling, a read that broke off): send the event again."""


@dataclass(frozen=True, slots=True)
class IngestEvent:
    """What the receiver needs from a DAM's event: where the bytes are, and which asset version it is."""

    uri: str
    asset_id: str
    version: str


@dataclass(frozen=True, slots=True)
class Ingested:
    """The catalogued asset and whether this event catalogued it (``False``: a repeat, nothing done)."""

    asset: CatalogAsset
    catalogued: bool


_lock = threading.Lock()  # one ingest at a time: a repeat sent twice at once must still be read once


def source_for(config: Config, uri: str) -> SourceSpec:
    """The configured source whose scope holds ``uri``; :class:`IngestRefused` if none does.

    A URI with ``.`` or ``..`` segments (plain or percent-encoded) is refused whatever its prefix: it
    could name something outside the source once resolved.
    """
    for spec in config.sources.values():
        prefix = spec.uri.rstrip("/") + "/"
        if uri.startswith(prefix):
            if any(part in ("", ".", "..") for part in unquote(uri[len(prefix) :]).split("/")):
                raise IngestRefused(f"{uri} has empty, '.' or '..' segments: name the asset itself")
            return spec
    raise IngestRefused(f"{uri} is not inside any source configured in dam-dedupe.toml ([sources.NAME] uri)")


def ingest(catalog: SqlCatalog, config: Config, host: Host, event: IngestEvent) -> Ingested:
    """Catalogue the asset of ``event`` unless its (asset id, version) was ingested before.

    Raises :class:`IngestRefused` when the URI is outside the configured sources, its adapter is not
    installed, it does not exist, or its content is no usable image (recorded against the asset too).
    """
    with _lock:
        done = catalog.dam_ingest(event.asset_id, event.version)
        if done is not None:
            asset = catalog.asset_by_uri(done.uri)
            if asset is None or asset.fingerprint is None:
                raise IngestRefused(f"{done.uri} was ingested as {event.asset_id} {event.version} but is no image")
            return Ingested(asset, catalogued=False)
        spec = source_for(config, event.uri)
        adapter = host.open_source(spec)
        record = _stat(adapter, spec, event.uri)
        asset = _catalogue(catalog, FingerprintJob(spec, adapter), spec, record)
        sha256 = asset.fingerprint.sha256 if asset.fingerprint is not None else None
        catalog.record_dam_ingest(DamIngest(event.asset_id, event.version, record.uri, sha256, now()))
        return Ingested(asset, catalogued=True)


def _stat(adapter: object, spec: SourceSpec, uri: str) -> AssetRecord:
    """The store's current record of ``uri``: its key is the URI's part below the source's URI."""
    key = uri[len(spec.uri.rstrip("/")) + 1 :]
    try:
        record = adapter.stat(key)  # type: ignore[attr-defined]
    except (TransientError, SourceError) as exc:
        raise IngestDeferred(f"cannot reach {spec.label} now: {exc}") from exc
    except DamDedupeError as exc:
        raise IngestRefused(f"cannot read {uri}: {exc}") from exc
    if record is None or record.uri != uri:
        raise IngestRefused(f"{uri} does not exist in {spec.label}")
    return record


def _catalogue(catalog: SqlCatalog, job: FingerprintJob, spec: SourceSpec, record: AssetRecord) -> CatalogAsset:
    """Record and fingerprint one asset as a one-asset scan run of its source; return it as catalogued."""
    with catalog.transaction():
        run_id = catalog.begin_run([spec.uri])
        source_id = catalog.source_id(spec)
        must_read = catalog.record_listed(source_id, record, run_id)
    stored = catalog.asset_by_uri(record.uri)
    assert stored is not None
    counts = RunCounts(listed=1, unchanged=0 if must_read else 1)
    if must_read:
        result = job(stored.id, record)
        if result.retry:  # a failure that may pass: recorded for the next scan, and the DAM asked to resend
            with catalog.transaction():
                catalog.set_content(stored.id, result.content, result.error, result.retry)
                catalog.finish_run(run_id, RunCounts(listed=1, errors=1), "finished")
            raise IngestDeferred(f"{record.uri} could not be read now: {result.error}")
        with catalog.transaction():
            if result.fingerprint is not None:
                catalog.store_fingerprint(stored.id, result.fingerprint)
                counts.fingerprinted = 1
            else:
                catalog.set_content(stored.id, result.content, result.error, result.retry)
                counts.errors = 1
    with catalog.transaction():
        catalog.finish_run(run_id, counts, "finished")
    asset = catalog.asset_by_uri(record.uri)
    if asset is None or asset.fingerprint is None or asset.state.content != "image":
        reason = asset.state.error if asset is not None else None
        raise IngestRefused(f"{record.uri} is not a usable image: {reason or 'not an image'}")
    return asset
