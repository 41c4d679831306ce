"""The source adapter contract: what every storage system must offer.

An adapter is a class, contributed by a plugin through the ``dam_dedupe_adapters`` hook,
that serves one URI scheme. The host builds one instance per configured source
(``Adapter(spec)``); worker processes build their own from the same :class:`SourceSpec`,
so an adapter keeps no state that only one process can hold, and creates its SDK
client lazily.

The required core is two methods, :meth:`SourceAdapter.list_assets` and
:meth:`SourceAdapter.open`. The write side is what the action plugins need; each write
method raises :class:`~dam_dedupe.errors.UnsupportedOperation` unless the adapter
overrides it, so a read-only adapter is complete with the core alone.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from typing import BinaryIO, ClassVar

from dam_dedupe.errors import UnsupportedOperation
from dam_dedupe.records import AssetRecord, DeltaCursor, ListingProblem, Removed, SourceSpec


class SourceAdapter(abc.ABC):
    """Base class of every source adapter.

    Class attributes:
        scheme: the URI scheme it serves (``file``, ``s3``, ``azure``, ``sharepoint``).
        extra: the pip extra that installs its SDK (``s3``), or ``None`` if it needs none.
        description: one line for ``dam-dedupe plugins``.
        supports_changes: ``True`` if it implements :meth:`list_changes` (a delta query), which
            the scan then uses in place of :meth:`list_assets`.
    """

    scheme: ClassVar[str]
    extra: ClassVar[str | None] = None
    description: ClassVar[str] = ""
    supports_changes: ClassVar[bool] = False

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`~dam_dedupe.errors.MissingExtra` if the adapter's SDK is not installed.

        Called by ``dam-dedupe plugins`` and before a scan starts; the default has nothing to check.
        """

    # -- required core ---------------------------------------------------------------

    @abc.abstractmethod
    def list_assets(self) -> Iterator[AssetRecord | ListingProblem]:
        """Yield every object under the source's scope, recursively.

        Yield a :class:`ListingProblem` for a part that cannot be listed and go on.
        Raise :class:`~dam_dedupe.errors.SourceError` only when nothing can be listed.
        """

    @abc.abstractmethod
    def open(self, record: AssetRecord) -> BinaryIO:
        """Open an asset's bytes as a readable binary stream (a context manager).

        Stream, do not load whole objects into memory. Raise
        :class:`~dam_dedupe.errors.AssetGone` if it no longer exists and
        :class:`~dam_dedupe.errors.AssetError` for any other failure of this one asset.
        """

    def list_changes(self, cursor: str | None) -> Iterator[AssetRecord | ListingProblem | Removed | DeltaCursor]:
        """Yield what changed since ``cursor`` (everything when it is ``None``), for stores with a delta query.

        Yield changed or new assets as records, deleted ones as :class:`Removed`, and end
        with exactly one :class:`DeltaCursor`. The host stores the cursor only when the
        scan finishes, so a scan that fails is repeated from the old cursor.
        """
        raise UnsupportedOperation(self.scheme, "list_changes")

    def listing_shards(self) -> list[str] | None:
        """The parts the listing splits into (folders, prefixes), so that a cluster lists them side by side;
        ``None`` (the default) when it does not split.

        Each shard names a part :meth:`list_shard` lists. Together the shards' listings are
        :meth:`list_assets`' listing, each object in exactly one shard; the shards are named in
        the order :meth:`list_assets` would reach them. Raise as :meth:`list_assets` does when
        nothing can be listed.
        """
        return None

    def list_shard(self, shard: str) -> Iterator[AssetRecord | ListingProblem]:
        """Yield the objects of one shard of :meth:`listing_shards`, as :meth:`list_assets` yields them.

        Called on a cluster's worker, from an adapter that worker built from the source's
        :class:`SourceSpec`. Raise :class:`~dam_dedupe.errors.SourceError` when the shard
        cannot be listed at all.
        """
        raise UnsupportedOperation(self.scheme, "list_shard")

    # -- state checks for the governance workflow ---------------------------------------

    def stat(self, key: str) -> AssetRecord | None:
        """Return the current record for ``key``, or ``None`` if it is gone.

        **Gone** means the key has no current object: nothing there, or (on a versioned
        store) a delete marker is current. ``apply`` uses it to check an asset is still in
        the state a plan expects. Raise :class:`~dam_dedupe.errors.TransientError` when the
        store cannot answer now; never answer ``None`` for "could not tell".
        """
        raise UnsupportedOperation(self.scheme, "stat")

    # -- write side, for action plugins ---------------------------------------------------
    #
    # Every write primitive below keeps four promises, which the action plugins rely on:
    # - conditional: it acts on exactly the version the record names (etag, version id),
    #   and raises AssetError, changing nothing, if the store now holds another;
    # - never overwriting: a write to a key that holds an object raises AssetError;
    # - safe to retry: a call repeated after its answer was lost either finds the work
    #   done (delete: gone is success) or fails without harm (copy: the destination is
    #   occupied, and the caller checks its hash);
    # - whole or nothing: a destination either does not exist or holds the complete
    #   object (temp-then-rename on disk, one request on object stores).
    # A failure that may pass raises TransientError; AssetGone means the object named is
    # not there; every other AssetError is final. Adapters repeat only idempotent requests
    # (reads, conditional writes); a request that is not (a plain POST) is sent once, and
    # after a lost answer the adapter looks in the store instead (dam_dedupe.retrying).

    native_move: ClassVar[bool] = False
    """``True`` if :meth:`move` relocates the same object in the store (keeping its id,
    version history, sharing and metadata) in one step; actions then move instead of
    copy-and-delete."""

    def get_tags(self, record: AssetRecord) -> dict[str, str]:
        """Return the store-level tags or metadata the tag action manages."""
        raise UnsupportedOperation(self.scheme, "get_tags")

    def tags_kept(self) -> str:
        """Where :meth:`set_tags` keeps tags, in words an admin can look up (said after a tag run)."""
        return "the store's own tags"

    def set_tags(self, record: AssetRecord, tags: Mapping[str, str]) -> None:
        """Replace the store-level tags with ``tags`` (callers merge first, see ``get_tags``). Idempotent."""
        raise UnsupportedOperation(self.scheme, "set_tags")

    def copy(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Copy the version ``record`` names to ``dest_key`` in the same store; return the copy's record.

        Server-side where the store can, carrying over content type, user metadata, tags,
        storage class and encryption settings, so that a copy back is the object as it was.
        Conditional on the source's version: on a versioned store it reads exactly the
        version named (which still exists when another is current); elsewhere it raises
        :class:`~dam_dedupe.errors.AssetError` if the object changed. Never overwrites
        ``dest_key``: a copy repeated after a lost answer finds it occupied and raises, and
        the caller checks the destination's hash.
        """
        raise UnsupportedOperation(self.scheme, "copy")

    def move(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Move the version ``record`` names to ``dest_key``; return its new record.

        Conditional on the version, never overwriting. Only stores with :attr:`native_move`
        keep the object's identity (its ``object_id``), in one request whose retry after a
        lost answer finds the object already at ``dest_key`` and succeeds; elsewhere it is
        copy-then-delete, without a hash check between the two.
        """
        raise UnsupportedOperation(self.scheme, "move")

    def delete(self, record: AssetRecord) -> dict[str, str]:
        """Remove the object at ``record.key`` if it is still the version ``record`` names.

        Idempotent: an object already gone is success (a retried delete whose first
        attempt succeeded must not fail). An object that is now another version raises
        :class:`~dam_dedupe.errors.AssetError` and is kept. On a versioned store it hides the object behind
        a delete marker and destroys no version. Returns what the caller journals about
        the removal (``{"delete_marker": VERSION_ID}`` on versioned S3), else ``{}``.
        Only the governance workflow calls it, and only after a verified copy exists.
        """
        raise UnsupportedOperation(self.scheme, "delete")

    def tidy(self, key: str) -> None:
        """Remove what writes made on the way to ``key`` and is now empty; ``key`` itself must be gone.

        Folders that a write made (never a user's) are removed once empty, so that an undo
        resumed after a kill between removing a quarantine copy and its folders still leaves
        none behind. Idempotent; touches no object. Stores without folders have nothing to
        tidy, which is the default.
        """

    def write_object(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> AssetRecord:
        """Write a small object (a redirect stub, a manifest) at ``key``; return its record. Never overwrites.

        A write repeated after a lost answer that finds exactly these bytes at ``key`` returns
        that object; any other object there raises :class:`~dam_dedupe.errors.AssetError`.
        """
        raise UnsupportedOperation(self.scheme, "write_object")

    def close(self) -> None:
        """Release clients and connections; the default has none."""
