"""The records that cross a plugin boundary.

Every adapter, whatever its store, describes an asset with one :class:`AssetRecord`;
every fingerprint, cluster and error has one typed shape. No dict of unknown shape
crosses a hook. Each field says what it means and when it may be absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

MatchKind = Literal["exact", "near", "transformed", "derivative"]
"""How a cluster member relates to its canonical: byte-identical, a visually identical
copy (re-encoded, resized, lightly edited), a rotated or mirrored copy, or a camera RAW
master and an export made from it (:mod:`dam_dedupe.derivatives`; never acted on by default)."""


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One configured storage location, as the user named it.

    It is plain data so that it can be sent to worker processes, which rebuild their
    own adapter from it.

    Attributes:
        uri: the scope to scan, e.g. ``file:///srv/photos``, ``s3://bucket/prefix``.
        name: the user's name for the source (from ``dam-dedupe.toml``); defaults to the URI.
        options: adapter-specific settings from ``dam-dedupe.toml`` (never secrets: adapters
            read credentials from the environment or their SDK's own chain).
    """

    uri: str
    name: str = ""
    options: tuple[tuple[str, object], ...] = ()

    @property
    def label(self) -> str:
        """The name shown to users: the configured name, else the URI."""
        return self.name or self.uri

    def option(self, key: str, default: object = None) -> object:
        """Return one adapter option, or ``default`` when it is not set."""
        return dict(self.options).get(key, default)


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """One stored object as its adapter lists it.

    Attributes:
        source: the :attr:`SourceSpec.uri` of the source that listed it.
        key: the store's identifier for the object, unique within the source
            (a path relative to the scope, an object key, a drive item id).
        uri: an absolute URI naming this object to users and in reports.
        size: size in bytes.
        modified: last modification time, timezone-aware UTC; ``None`` if the store has none.
        store_hash: the store's own content hash as ``"<algorithm>:<value>"``
            (``md5:…``, ``sha1:…``, ``sha256:…``, ``quickxor:…``), or ``None`` when the store
            has no hash that is a pure function of the content (a multipart S3 ETag is not).
            Two records with equal ``store_hash`` are exact-duplicate *candidates*; the
            matcher confirms with SHA-256 before calling them identical.
        etag: the store's change tag, opaque; ``None`` if the store has none.
        version_id: the store's version identifier on versioned stores, else ``None``.
        name: the display name, normally the last path segment.
        metadata: store-level metadata or tags read during listing, if cheap to get; may be empty.
        object_id: what the store says is one object, so that one object reached under two
            URIs is never two assets: ``dev:inode`` for a local file, the drive id and item id
            on SharePoint, the case-folded account, container and name on Azure, bucket and key
            on S3; ``None`` when the adapter cannot tell.
    """

    source: str
    key: str
    uri: str
    size: int
    modified: datetime | None = None
    store_hash: str | None = None
    etag: str | None = None
    version_id: str | None = None
    name: str = ""
    metadata: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    object_id: str | None = field(default=None, compare=False, hash=False)


EMBEDDED_IN = "dam-dedupe:embedded-in"
"""The :attr:`AssetRecord.metadata` key of an image inside a document: the document's URI. Actions
never act on such an asset (documents are not rewritten)."""

PART = "dam-dedupe:part"
"""The :attr:`AssetRecord.metadata` key of an image inside a document: the part's name in it."""


def embedded_in(record: AssetRecord) -> str | None:
    """The URI of the document an asset is an image inside, or ``None`` for a file of its own."""
    return record.metadata.get(EMBEDDED_IN)


@dataclass(frozen=True, slots=True)
class ListingProblem:
    """Something an adapter could not list (a folder it may not read, a broken link).

    Adapters yield these among their records; the scan records them and goes on.
    """

    uri: str
    reason: str


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the matcher knows of one asset's content.

    Attributes:
        sha256: SHA-256 of the bytes, lowercase hex.
        size: number of bytes hashed.
        width, height: pixel size after applying EXIF orientation.
        format: the decoder's format name (``JPEG``, ``PNG``, ``WEBP``, …).
        perceptual: perceptual hashes by family name, hex strings (the core matcher's families
            are ``dct``, ``low``, ``centre``, ``grad`` and the colour signature ``chroma``;
            see ``docs/matching.md``).
            Empty when the image could not be decoded for them.
        thumbnail: a tiny normalised greyscale thumbnail (raw bytes) used to verify
            near-duplicate pairs and shown in reports; ``None`` if not made.
        metadata_fields: how many embedded metadata fields the file carries (EXIF tags,
            plus one each for an IPTC and an XMP block); the canonical policy prefers more.
        version: how the fingerprint was made (:data:`dam_dedupe.fingerprint.FINGERPRINT_VERSION`);
            a scan fingerprints again an asset whose version is older.
        preview: a small colour JPEG of the picture for reviewers (:mod:`dam_dedupe.preview`);
            ``None`` when not made (fingerprints made before previews existed).
        frames: how many pages, frames or layers the file holds (multi-page TIFF, animated GIF or
            WebP, layered PSD); the first (or the stored composite) is the one fingerprinted.
    """

    sha256: str
    size: int
    width: int
    height: int
    format: str
    perceptual: dict[str, str] = field(default_factory=dict)
    thumbnail: bytes | None = None
    metadata_fields: int = 0
    version: int = 1
    preview: bytes | None = field(default=None, repr=False)
    frames: int = 1


@dataclass(frozen=True, slots=True)
class Member:
    """One asset in a cluster, with why it belongs there.

    Attributes:
        asset: the listing record.
        fingerprint: its content fingerprint.
        match: how it relates to the cluster's canonical.
        evidence: the facts behind ``match``: which hashes agreed and their distances,
            the likely relation (``identical``, ``resized``, ``re-encoded``, …).
    """

    asset: AssetRecord
    fingerprint: Fingerprint
    match: MatchKind = "exact"
    evidence: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Cluster:
    """A group of copies of one image.

    Attributes:
        id: stable identifier derived from the members' content.
        members: every copy, canonical included.
        canonical: the member proposed as the authorised copy.
        canonical_reason: in words, why it won.
    """

    id: str
    members: list[Member]
    canonical: Member | None = None
    canonical_reason: str = ""

    @property
    def duplicates(self) -> list[Member]:
        """Every member but the canonical."""
        return [m for m in self.members if m is not self.canonical]


@dataclass(frozen=True, slots=True)
class CanonicalChoice:
    """A plugin's verdict on which member of a cluster is canonical.

    Attributes:
        uri: the chosen member's asset URI; it must be a member of the cluster.
        reason: in words, why; shown in reports and recorded in plans.
    """

    uri: str
    reason: str


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """What one scan did, passed to :func:`dam_dedupe_scan_finished` listeners.

    Attributes:
        run_id: the catalog's id of the scan run.
        sources: the URIs scanned.
        listed: assets listed.
        fingerprinted: assets whose bytes were read this run.
        unchanged: assets skipped because size, modified time and store hash were unchanged.
        gone: assets seen before and missing now.
        errors: assets or folders that failed, with a reason recorded in the catalog.
        skipped: files not considered images (by extension and content), not read further.
        failed_sources: the URIs of sources that could not be scanned completely (not reachable,
            no adapter or SDK, a listing that stopped part-way); their problems are in the catalog.
    """

    run_id: int
    sources: tuple[str, ...]
    listed: int
    fingerprinted: int
    unchanged: int
    gone: int
    errors: int
    skipped: int
    failed_sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Removed:
    """In a change listing: the asset with this key was deleted since the cursor."""

    key: str
    uri: str = ""


@dataclass(frozen=True, slots=True)
class DeltaCursor:
    """The last item of a change listing: where the next listing should start.

    Attributes:
        value: opaque to the host (a Graph ``@odata.deltaLink``, say); stored in the catalog.
        full: ``True`` when this listing enumerated everything (first scan, or the store
            asked for a resync), so that an asset not seen is gone; ``False`` when it held
            only changes, so that an asset not seen is unchanged.
    """

    value: str
    full: bool
