"""SharePoint document libraries and OneDrive for Business through Microsoft Graph.

URIs::

    sharepoint://{hostname}/sites/{site}/{library}/{folder path}   (or /teams/{site}/…)
    onedrive://{user principal name or id}/{folder path}

Both schemes share one implementation. Keys are paths relative to the scanned folder
(``Brand/产品/logo.png``); record URIs are the source URI's drive root plus the item's
path, percent-encoded. Listing uses the drive's **delta** query on the root (the only
delta SharePoint allows), filtered to the folder; the returned cursor carries the
``@odata.deltaLink`` and the folder tree, so a rescan fetches only what changed.
Options (``dam-dedupe.toml``): ``tenant_id``, ``client_id``, ``client_certificate_path``,
``cloud``, ``authority_host``, ``graph_endpoint``, ``ca_bundle`` (see
:mod:`dam_dedupe.adapters.graph_client`), ``drive_id`` (skip the library lookup) and
``tag_column`` (the list column tags are kept in, default ``DamDedupeTags``),
``retry_attempts`` and ``max_retry_wait`` (the cap on a ``Retry-After`` hint, 60 s by default).
``docs/adapters/sharepoint.md`` covers app registration and permissions.
"""

from __future__ import annotations

import abc
import io
import json
import logging
import posixpath
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, TypeAlias
from urllib.parse import quote, unquote, urljoin, urlsplit

from dam_dedupe import hookimpl
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.adapters.graph_client import TRANSIENT_STATUS, GraphClient, GraphError, GraphSettings
from dam_dedupe.adapters.graph_delta import UNRESOLVED, DeltaState, DriveTree
from dam_dedupe.errors import AssetError, AssetGone, ConfigError, MissingExtra, SourceError, TransientError
from dam_dedupe.records import AssetRecord, DeltaCursor, ListingProblem, Removed, SourceSpec
from dam_dedupe.retrying import DEFAULT_ATTEMPTS, RetryPolicy

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

DEFAULT_TAG_COLUMN = "DamDedupeTags"
DOWNLOAD_CHUNK = 1024 * 1024
COPY_WAIT_SECONDS = 300.0
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})

Listing: TypeAlias = AssetRecord | ListingProblem | Removed | DeltaCursor


class _ResyncRequired(Exception):
    """Graph answered 410: the delta token is stale and listing must start again from nothing."""


def store_hash_of(hashes: Mapping[str, Any]) -> str | None:
    """The record's ``store_hash`` from a driveItem's ``file.hashes``: SHA-256, else SHA-1, else QuickXorHash."""
    if hashes.get("sha256Hash"):
        return f"sha256:{str(hashes['sha256Hash']).lower()}"
    if hashes.get("sha1Hash"):
        return f"sha1:{str(hashes['sha1Hash']).lower()}"
    if hashes.get("quickXorHash"):
        return f"quickxor:{hashes['quickXorHash']}"
    return None


class GraphDriveAdapter(SourceAdapter):
    """A folder in one Graph drive (a document library or a OneDrive); the schemes differ only in how
    they find the drive."""

    extra = "sharepoint"
    supports_changes = True
    native_move = True  # a PATCH of parentReference and name keeps the item: id, versions, sharing
    permission_hint: ClassVar[str] = ""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.root_uri, self.folder = self.parse(spec.uri)
        self.tag_column = str(spec.option("tag_column") or DEFAULT_TAG_COLUMN)
        drive_option = spec.option("drive_id")
        self._drive_id: str | None = str(drive_option) if drive_option else None
        self._scope_id: str | None = None
        self._client: GraphClient | None = None
        attempts = spec.option("retry_attempts", DEFAULT_ATTEMPTS)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 50:
            raise ConfigError(f"{spec.label}: retry_attempts must be a whole number from 1 to 50, not {attempts!r}")
        self.retry = RetryPolicy.for_source(spec, attempts)

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`MissingExtra` unless msal and requests are installed."""
        for package in ("msal", "requests"):
            try:
                __import__(package)
            except ImportError as exc:
                raise MissingExtra("sharepoint", package) from exc

    @classmethod
    @abc.abstractmethod
    def parse(cls, uri: str) -> tuple[str, str]:
        """Split a source URI into the drive root's URI and the folder path inside the drive."""

    @abc.abstractmethod
    def find_drive(self) -> str:
        """Look the drive up in Graph and return its id."""

    # -- Graph plumbing -------------------------------------------------------------------

    @property
    def client(self) -> GraphClient:
        """The Graph client, built from the options and environment on first use."""
        if self._client is None:
            try:
                settings = GraphSettings.resolve(self.spec.option)
                self._client = GraphClient(settings, retry=self.retry)
            except ConfigError as exc:
                raise SourceError(str(exc)) from exc
        return self._client

    @property
    def drive_id(self) -> str:
        """The drive's id (``drive_id`` option, else looked up once)."""
        if self._drive_id is None:
            self._drive_id = self.find_drive()
        return self._drive_id

    @property
    def scope_id(self) -> str:
        """The id of the scanned folder (the drive root when the URI names no folder)."""
        if self._scope_id is None:
            target = f"/drives/{self.drive_id}/root" + (f":/{quote(self.folder)}" if self.folder else "")
            item = self._source_json("GET", target, f"the folder '{self.folder or '/'}'")
            if "folder" not in item and "root" not in item:
                raise SourceError(f"{self.root_uri}/{quote(self.folder)} is a file, not a folder")
            self._scope_id = str(item["id"])
        return self._scope_id

    def _source_json(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        """A Graph call whose failure fails the whole source."""
        try:
            return self.client.json(method, path, what=what, **kwargs)
        except GraphError as exc:
            raise self._source_error(exc, what) from exc

    def _source_error(self, exc: GraphError, what: str) -> SourceError:
        if exc.status == 403:
            return SourceError(f"the app may not read {what} ({exc.code}: {exc.message}); {self.permission_hint}")
        if exc.status == 401:
            return SourceError(f"Graph refused the app's sign-in for {what} ({exc.message}); check AZURE_TENANT_ID")
        if exc.status == 404:
            return SourceError(f"{what} was not found in {self.root_uri} ({exc.message})")
        return SourceError(f"Graph failed on {what}: {exc}")

    @staticmethod
    def _asset_error(exc: GraphError, what: str) -> AssetError:
        """Gone for a 404; :class:`TransientError` when Graph stayed throttled or unreachable; else final."""
        if exc.status == 404:
            return AssetGone(f"{what}: the item is gone")
        if exc.status == 0 or exc.status in TRANSIENT_STATUS:
            return TransientError(f"{what} failed after the retries: {exc}")
        return AssetError(f"{what} failed: {exc}")

    def _pages(self, url: str, what: str) -> Iterator[dict[str, Any]]:
        """Every page of a collection, following ``@odata.nextLink``."""
        next_url: str | None = url
        while next_url:
            page = self.client.json("GET", next_url, what=what)
            yield page
            next_url = page.get("@odata.nextLink")

    # -- records --------------------------------------------------------------------------

    def drive_path(self, key: str) -> str:
        """The path in the drive of a key (a path relative to the scanned folder)."""
        return f"{self.folder}/{key}" if self.folder else key

    def uri_for(self, key: str) -> str:
        """The URI shown to users for a key."""
        return f"{self.root_uri}/{quote(self.drive_path(key))}"

    def record_for(self, item: Mapping[str, Any], key: str) -> AssetRecord:
        """Build a record from a driveItem and its key."""
        hashes = (item.get("file") or {}).get("hashes") or {}
        modified = item.get("lastModifiedDateTime")
        metadata = {"item_id": str(item["id"]), "drive_id": self.drive_id}
        if item.get("cTag"):
            metadata["ctag"] = str(item["cTag"])
        return AssetRecord(
            source=self.spec.uri,
            key=key,
            uri=self.uri_for(key),
            size=int(item.get("size") or 0),
            modified=datetime.fromisoformat(modified) if modified else None,
            store_hash=store_hash_of(hashes),
            etag=item.get("eTag"),
            name=str(item.get("name", posixpath.basename(key))),
            metadata=metadata,
            object_id=f"{self.drive_id}/{item['id']}",
        )

    def _item_path(self, record: AssetRecord) -> str:
        """The Graph path of a record's item: by id when the listing gave one, else by path."""
        item_id, drive_id = record.metadata.get("item_id"), record.metadata.get("drive_id")
        if item_id and drive_id:
            return f"/drives/{drive_id}/items/{item_id}"
        return f"/drives/{self.drive_id}/root:/{quote(self.drive_path(record.key))}:"

    # -- listing --------------------------------------------------------------------------

    def list_assets(self) -> Iterator[AssetRecord | ListingProblem]:
        """Enumerate every file under the folder (a full delta round)."""
        for entry in self._full_listing():
            if isinstance(entry, AssetRecord | ListingProblem):
                yield entry

    def list_changes(self, cursor: str | None) -> Iterator[Listing]:
        """What changed since ``cursor`` (everything when it is ``None``, unreadable or stale)."""
        state = DeltaState.decode(cursor) if cursor else None
        if state is None or (self._drive_id is not None and state.drive_id != self._drive_id):
            yield from self._full_listing()
            return
        self._drive_id = state.drive_id
        try:
            changes, link = self._collect_round(state.delta_link)
        except _ResyncRequired:
            log.info("Graph asked %s to resync its delta listing; listing everything", self.spec.label)
            yield from self._full_listing()
            return
        yield from self._apply_round(state, changes, link)

    def _delta_pages(self, url: str) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Pages of a delta round as (items, deltaLink or ``None`` until the last page)."""
        what = "the drive's changes (delta)"
        try:
            for page in self._pages(url, what):
                link = page.get("@odata.deltaLink")
                if not link and not page.get("@odata.nextLink"):
                    raise SourceError("Graph ended a delta listing with neither a nextLink nor a deltaLink")
                yield list(page.get("value") or []), link
        except GraphError as exc:
            if exc.status == 410:
                raise _ResyncRequired from exc
            raise self._source_error(exc, what) from exc

    def _full_listing(self) -> Iterator[Listing]:
        """A full delta round from nothing, ending with a ``full`` cursor. Restarts once on a 410."""
        drive_id, scope = self.drive_id, self.scope_id
        yielded: dict[str, tuple[str | None, str]] = {}
        for attempt in range(2):
            tree = DriveTree(scope)
            pending: list[dict[str, Any]] = []
            link: str | None = None
            try:
                for items, page_link in self._delta_pages(f"/drives/{drive_id}/root/delta"):
                    for item in items:
                        yield from self._take_full_item(tree, item, pending, yielded)
                    link = page_link or link
            except _ResyncRequired as exc:
                if attempt:
                    raise SourceError("Graph asked twice in a row to restart the drive's delta listing") from exc
                continue
            break
        for item in pending:
            path = tree.path(str(item["id"]))
            if isinstance(path, str):
                yield self.record_for(item, path)
            elif path is UNRESOLVED:
                yield ListingProblem(f"{self.root_uri}#{item['id']}", "its parent folder was not in the listing")
        for item_id, (_etag, path) in yielded.items():
            if item_id not in tree.nodes:  # listed before a restart, gone since
                yield Removed(path, self.uri_for(path))
        if link is None:
            raise SourceError("Graph ended a delta listing without a deltaLink")
        yield DeltaCursor(DeltaState(link, drive_id, tree.pruned()).encode(), full=True)

    def _take_full_item(
        self,
        tree: DriveTree,
        item: dict[str, Any],
        pending: list[dict[str, Any]],
        yielded: dict[str, tuple[str | None, str]],
    ) -> Iterator[Listing]:
        """Fold one item of a full round into the tree; yield its record once its path is known."""
        item_id = str(item["id"])
        if "deleted" in item:
            tree.remove(item_id)
            if item_id in yielded:
                path = yielded.pop(item_id)[1]
                yield Removed(path, self.uri_for(path))
            return
        tree.update(item)
        if "file" not in item:
            return
        path = tree.path(item_id)
        if path is UNRESOLVED:
            pending.append(item)
        elif isinstance(path, str) and yielded.get(item_id) != (item.get("eTag"), path):
            yielded[item_id] = (item.get("eTag"), path)
            yield self.record_for(item, path)

    def _collect_round(self, link: str) -> tuple[dict[str, dict[str, Any]], str]:
        """Fetch every page of an incremental round; the last state of each item wins."""
        latest: dict[str, dict[str, Any]] = {}
        new_link: str | None = None
        for items, page_link in self._delta_pages(link):
            for item in items:
                latest.pop(str(item["id"]), None)
                latest[str(item["id"])] = item
            new_link = page_link or new_link
        if new_link is None:
            raise SourceError("Graph ended a delta listing without a deltaLink")
        return latest, new_link

    def _apply_round(self, state: DeltaState, latest: dict[str, dict[str, Any]], link: str) -> Iterator[Listing]:
        """Turn one round of changes into records and removals: what it takes away is named by the paths
        before the round, what it brings by the paths after."""
        tree = state.tree
        removed: dict[str, Removed] = {}
        records: dict[str, AssetRecord] = {}
        moved_folders: list[str] = []
        files_before: dict[str, object] = {}

        def forget(path: object) -> None:
            if isinstance(path, str):
                removed[path] = Removed(path, self.uri_for(path))

        for item_id, item in latest.items():
            gone = "deleted" in item
            if tree.is_folder(item_id) and (gone or tree.changes_place(item)):
                if isinstance(tree.path(item_id), str) or (gone and item_id == tree.scope):
                    for file_id in tree.files_under(item_id):
                        forget(tree.path(file_id))
                if not gone:
                    moved_folders.append(item_id)
            elif gone:
                forget(tree.path(item_id))
            elif "file" in item:
                files_before[item_id] = tree.path(item_id)
        for item_id, item in latest.items():
            if "deleted" in item:
                tree.remove(item_id)
            else:
                tree.update(item)
        problems: list[ListingProblem] = []
        for item_id, old_path in files_before.items():
            new_path = tree.path(item_id)
            if old_path != new_path:
                forget(old_path)
            if isinstance(new_path, str):
                records[new_path] = self.record_for(latest[item_id], new_path)
            elif new_path is UNRESOLVED:  # listed again next scan: a round with a problem keeps the old cursor
                problems.append(
                    ListingProblem(f"{self.root_uri}#{item_id}", "its parent folder was not in the listing")
                )
        for folder_id in moved_folders:
            # Graph reports a moved or renamed folder but not its contents: walk them.
            if isinstance(tree.path(folder_id), str):
                for record in self._walk_folder(folder_id, tree):
                    records[record.key] = record
        for path in records:
            removed.pop(path, None)
        yield from removed.values()
        yield from records.values()
        yield from problems
        yield DeltaCursor(DeltaState(link, state.drive_id, tree.pruned()).encode(), full=False)

    def _walk_folder(self, folder_id: str, tree: DriveTree) -> Iterator[AssetRecord]:
        """Every file below a folder, through its children (used after a folder moved)."""
        stack = [folder_id]
        while stack:
            parent = stack.pop()
            what = "the contents of a moved folder"
            try:
                pages = list(self._pages(f"/drives/{self.drive_id}/items/{parent}/children", what))
            except GraphError as exc:
                raise self._source_error(exc, what) from exc
            for page in pages:
                for item in page.get("value") or []:
                    tree.update(item)
                    if "folder" in item:
                        stack.append(str(item["id"]))
                    elif "file" in item and isinstance(path := tree.path(str(item["id"])), str):
                        yield self.record_for(item, path)

    # -- reading --------------------------------------------------------------------------

    def open(self, record: AssetRecord) -> BinaryIO:
        """Stream the content: the item's ``/content`` answers 302 to a pre-authenticated URL, fetched without
        the bearer token."""
        what = f"download of {record.name or record.key}"
        try:
            response = self.client.request(
                "GET", f"{self._item_path(record)}/content", what=what, allow_redirects=False, stream=True
            )
            if response.status_code in REDIRECT_STATUS:
                location = urljoin(response.url, response.headers["Location"])
                response.close()
                response = self.client.request("GET", location, what=what, authenticated=False, stream=True)
        except GraphError as exc:
            raise self._asset_error(exc, what) from exc
        return io.BufferedReader(_Download(response), DOWNLOAD_CHUNK)

    def stat(self, key: str) -> AssetRecord | None:
        """The current record at ``key``, or ``None`` if no file is there."""
        what = f"the item {key}"
        try:
            item = self.client.json("GET", f"/drives/{self.drive_id}/root:/{quote(self.drive_path(key))}", what=what)
        except GraphError as exc:
            if exc.status == 404:
                return None
            raise self._asset_error(exc, what) from exc
        return self.record_for(item, key) if "file" in item else None

    # -- write side -----------------------------------------------------------------------

    def tags_kept(self) -> str:
        """The library column tags are written to."""
        return f"the library's {self.tag_column} column (JSON), shown in the document library's views"

    def get_tags(self, record: AssetRecord) -> dict[str, str]:
        """The tags kept as JSON in the library's tag column (``{}`` when it is empty)."""
        what = f"the list item fields of {record.key}"
        try:
            fields = self.client.json("GET", f"{self._item_path(record)}/listItem/fields", what=what)
        except GraphError as exc:
            raise self._write_error(exc, what) from exc
        raw = fields.get(self.tag_column)
        if not raw:
            return {}
        try:
            tags = json.loads(str(raw))
        except ValueError as exc:
            raise AssetError(f"the {self.tag_column} column of {record.key} does not hold JSON tags") from exc
        return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}

    def set_tags(self, record: AssetRecord, tags: Mapping[str, str]) -> None:
        """Write ``tags`` as JSON into the tag column (cleared when empty). SharePoint keeps a version of each."""
        what = f"the list item fields of {record.key}"
        value = json.dumps(dict(tags), ensure_ascii=False, sort_keys=True) if tags else None
        try:
            self.client.json(
                "PATCH", f"{self._item_path(record)}/listItem/fields", what=what, json={self.tag_column: value}
            )
        except GraphError as exc:
            if exc.status == 400 and self.tag_column in exc.message:
                raise SourceError(
                    f"the library has no '{self.tag_column}' column to keep tags in ({exc.message}). Create it as a "
                    "'Multiple lines of text' column (plain text) named exactly so, in the library settings or "
                    "with Graph (POST /sites/{site-id}/lists/{list-id}/columns); see docs/adapters/sharepoint.md"
                ) from exc
            raise self._write_error(exc, what) from exc

    def move(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Move the item to ``dest_key`` server-side (creating folders); it keeps its id, versions and sharing.

        One ``PATCH`` of ``parentReference`` and ``name``, ``If-Match`` the record's eTag and
        with ``@microsoft.graph.conflictBehavior=fail``, so a changed item (412) or an
        occupied destination (409) is refused and nothing changes. A retry whose first
        attempt moved the item is answered 412 (the move changed the eTag); the item is then
        found by id at the destination, and that is success.
        """
        parent = self._ensure_folder(posixpath.dirname(dest_key))
        what = f"move of {record.key} to {dest_key}"
        name = posixpath.basename(dest_key)
        body = {"parentReference": {"id": parent}, "name": name}
        headers = {"If-Match": record.etag} if record.etag else {}
        try:
            item = self.client.json(
                "PATCH",
                self._item_path(record),
                what=what,
                json=body,
                headers=headers,
                params={"@microsoft.graph.conflictBehavior": "fail"},
            )
        except GraphError as exc:
            arrived = self._moved_already(record, parent, name) if exc.status == 412 else None
            if arrived is None:
                raise self._write_error(exc, what) from exc
            item = arrived
        return self.record_for(item, dest_key)

    def _moved_already(self, record: AssetRecord, parent: str, name: str) -> dict[str, Any] | None:
        """The item, if it already sits under ``parent`` as ``name`` with the record's content (a lost answer)."""
        if not record.metadata.get("item_id"):
            return None
        try:
            item = self.client.json("GET", self._item_path(record), what=f"the item {record.key}")
        except GraphError:
            return None
        same_place = (item.get("parentReference") or {}).get("id") == parent and item.get("name") == name
        return item if same_place and item.get("cTag") == _ctag(record) else None

    def copy(self, record: AssetRecord, dest_key: str) -> AssetRecord:
        """Copy server-side to ``dest_key`` and wait for Graph's copy to finish; never overwrite.

        The copy is a new item: it has none of the source's version history or sharing
        (:meth:`move` keeps those). ``POST …/copy`` is not idempotent, so it is sent once
        (repeated only after a 429); after a lost answer the destination is looked up
        instead, and a copy Graph made meanwhile is returned if its content matches.
        """
        what = f"copy of {record.key} to {dest_key}"
        self._check_unchanged(record, what)
        if self.stat(dest_key) is not None:
            raise AssetError(f"will not overwrite {self.uri_for(dest_key)}")
        parent = self._ensure_folder(posixpath.dirname(dest_key))
        body = {"parentReference": {"driveId": self.drive_id, "id": parent}, "name": posixpath.basename(dest_key)}
        try:
            response = self.client.request(
                "POST",
                f"{self._item_path(record)}/copy",
                what=what,
                json=body,
                params={"@microsoft.graph.conflictBehavior": "fail"},
                idempotent=False,
            )
            response.close()
            item_id = self._await_copy(response.headers["Location"], what)
            item = self.client.json("GET", f"/drives/{self.drive_id}/items/{item_id}", what=what)
        except GraphError as exc:
            failure = self._write_error(exc, what)
            if isinstance(failure, TransientError):
                landed = self.stat(dest_key)
                if landed is not None and landed.store_hash == record.store_hash and landed.size == record.size:
                    return landed
            raise failure from exc
        return self.record_for(item, dest_key)

    def _check_unchanged(self, record: AssetRecord, what: str) -> None:
        """Refuse unless the record's item still holds the content listed (its cTag and size).

        Graph's copy takes no ``If-Match``, so this is checked just before; the copy's hash
        is what the caller verifies.
        """
        try:
            item = self.client.json("GET", self._item_path(record), what=f"the item {record.key}")
        except GraphError as exc:
            raise self._write_error(exc, what) from exc
        current = self.record_for(item, record.key)
        if _ctag(current) != _ctag(record) or current.size != record.size or current.store_hash != record.store_hash:
            raise AssetError(f"{what}: the item's content changed since it was listed; not copied")

    def _await_copy(self, monitor: str, what: str) -> str:
        """Poll a copy's monitor URL (pre-authenticated) until it completes; return the new item's id."""
        deadline = time.monotonic() + COPY_WAIT_SECONDS
        wait = 0.1
        while True:
            status = self.client.json("GET", monitor, what=f"{what} (progress)", authenticated=False)
            if status.get("status") == "completed" and status.get("resourceId"):
                return str(status["resourceId"])
            if status.get("status") == "failed" or time.monotonic() > deadline:
                raise AssetError(f"{what} did not complete: {status.get('status', 'no status')}")
            time.sleep(wait)
            wait = min(wait * 2, 5.0)

    def delete(self, record: AssetRecord) -> dict[str, str]:
        """Delete the item (to the site's recycle bin) if its content is still what ``record`` describes.

        Already gone is success, and so is a 404 to a retried ``DELETE`` whose first attempt
        succeeded. The ``DELETE`` is ``If-Match`` the current eTag, so an item changed in
        between is refused (412) and kept. Nothing to journal (``{}``): the recycle bin keeps
        the item, with its versions, for the site's retention period.
        """
        current = self.stat(record.key)
        if current is None:
            return {}
        if current.size != record.size or current.store_hash != record.store_hash or _ctag(current) != _ctag(record):
            raise AssetError("the item's content changed since it was checked; not deleted")
        what = f"delete of {record.key}"
        headers = {"If-Match": current.etag} if current.etag else {}
        try:
            self.client.request("DELETE", self._item_path(current), what=what, headers=headers).close()
        except GraphError as exc:
            if exc.status == 404:
                return {}
            raise self._write_error(exc, what) from exc
        return {}

    def write_object(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> AssetRecord:
        """Upload a small file (a ``.url`` redirect stub) at ``key``; never overwrite. ``metadata`` becomes its tags."""
        parent = self._ensure_folder(posixpath.dirname(key))
        what = f"upload of {key}"
        try:
            item = self.client.json(
                "PUT",
                f"/drives/{self.drive_id}/items/{parent}:/{quote(posixpath.basename(key))}:/content",
                what=what,
                params={"@microsoft.graph.conflictBehavior": "fail"},
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            )
        except GraphError as exc:
            record = self._written_already(key, data) if exc.status == 409 else None
            if record is None:
                raise self._write_error(exc, what) from exc
        else:
            record = self.record_for(item, key)
        if metadata:
            self.set_tags(record, metadata)
        return record

    def _written_already(self, key: str, data: bytes) -> AssetRecord | None:
        """The file at ``key`` if it holds exactly ``data``: an earlier attempt wrote it and its answer was lost."""
        existing = self.stat(key)
        if existing is None or existing.size != len(data):
            return None
        with self.open(existing) as stream:
            return existing if stream.read(len(data) + 1) == data else None

    def _ensure_folder(self, rel_dir: str) -> str:
        """The id of a folder under the scope, creating missing folders on the way."""
        parent = self.scope_id
        for name in [part for part in rel_dir.split("/") if part]:
            what = f"folder {name}"
            try:
                item = self.client.json("GET", f"/drives/{self.drive_id}/items/{parent}:/{quote(name)}", what=what)
            except GraphError as exc:
                if exc.status != 404:
                    raise self._write_error(exc, what) from exc
                item = self._create_folder(parent, name, what)
            if "folder" not in item:
                raise AssetError(f"{name} is a file, not a folder")
            parent = str(item["id"])
        return parent

    def _create_folder(self, parent: str, name: str, what: str) -> dict[str, Any]:
        """Create a folder (``POST``, sent once); after a conflict or a lost answer, look it up instead."""
        body = {"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}
        children = f"/drives/{self.drive_id}/items/{parent}/children"
        try:
            return self.client.json("POST", children, what=what, json=body, idempotent=False)
        except GraphError as create_exc:
            try:
                return self.client.json("GET", f"/drives/{self.drive_id}/items/{parent}:/{quote(name)}", what=what)
            except GraphError:
                raise self._write_error(create_exc, f"creating {what}") from create_exc

    def _write_error(self, exc: GraphError, what: str) -> AssetError | SourceError:
        if exc.status == 403:
            return SourceError(
                f"the app may not change {what} ({exc.message}); grant it the write role on this site through "
                "Sites.Selected (see docs/adapters/sharepoint.md)"
            )
        if exc.status == 409:
            return AssetError(f"{what}: will not overwrite an existing item ({exc.message})")
        if exc.status == 412:
            return AssetError(f"{what}: the item changed since it was checked ({exc.message})")
        if exc.status == 423:
            return AssetError(f"{what}: the item is locked, checked out or open for editing ({exc.message})")
        return self._asset_error(exc, what)

    def close(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            self._client.close()


def _ctag(record: AssetRecord) -> str | None:
    return record.metadata.get("ctag")


class _Download(io.RawIOBase):
    """The body of a download response as a raw stream; closing it releases the connection."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self._raw = response.raw
        self._raw.decode_content = True

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer``; a broken connection is an :class:`AssetError`."""
        from urllib3.exceptions import HTTPError as Urllib3Error

        try:
            data = self._raw.read(len(buffer))
        except (OSError, Urllib3Error) as exc:
            raise AssetError(f"the download broke off: {type(exc).__name__}") from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Release the connection."""
        if not self.closed:
            self._response.close()
        super().close()


SITE_PATHS = ("sites", "teams")
"""The path segments under which SharePoint keeps site collections."""


class SharePointAdapter(GraphDriveAdapter):
    """A folder of a SharePoint document library: ``sharepoint://{host}/sites/{site}/{library}/{folder}``."""

    scheme = "sharepoint"
    description = "SharePoint document libraries through Microsoft Graph (sharepoint://host/sites/site/library/path)"
    permission_hint = (
        "grant the app Sites.Selected with the read role on this site (or Sites.Read.All); "
        "see docs/adapters/sharepoint.md"
    )

    @classmethod
    def parse(cls, uri: str) -> tuple[str, str]:
        """``sharepoint://host/sites/site/library/a/b`` -> (``sharepoint://host/sites/site/library``, ``a/b``)."""
        parts = urlsplit(uri)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if parts.scheme != "sharepoint" or not parts.netloc or len(segments) < 3 or segments[0] not in SITE_PATHS:
            raise ConfigError(f"'{uri}' is not a SharePoint URI: use sharepoint://HOST/sites/SITE/LIBRARY[/FOLDER]")
        root = f"sharepoint://{parts.netloc.lower()}/{segments[0]}/{quote(segments[1])}/{quote(segments[2])}"
        return root, "/".join(segments[3:])

    def find_drive(self) -> str:
        """Find the site by host and path, then the library among its drives by name or URL."""
        parts = urlsplit(self.root_uri)
        collection, site, library = (unquote(s) for s in parts.path.strip("/").split("/"))
        label = f"the site {parts.netloc}/{collection}/{site}"
        site_item = self._source_json("GET", f"/sites/{parts.netloc}:/{collection}/{quote(site)}", label)
        drives: list[dict[str, Any]] = []
        try:
            for page in self._pages(f"/sites/{site_item['id']}/drives", f"the libraries of {label}"):
                drives.extend(page.get("value") or [])
        except GraphError as exc:
            raise self._source_error(exc, f"the libraries of {label}") from exc
        for drive in drives:
            url_name = unquote(urlsplit(str(drive.get("webUrl", ""))).path.rstrip("/").rsplit("/", 1)[-1])
            if library.casefold() in (str(drive.get("name", "")).casefold(), url_name.casefold()):
                return str(drive["id"])
        names = ", ".join(sorted(str(d.get("name")) for d in drives)) or "none the app may see"
        raise SourceError(f"{label} has no document library '{library}' (it has: {names})")


class OneDriveAdapter(GraphDriveAdapter):
    """A folder of a user's OneDrive for Business: ``onedrive://{user}/{folder}``."""

    scheme = "onedrive"
    description = "OneDrive for Business through Microsoft Graph (onedrive://user@domain/path)"
    permission_hint = (
        "grant the app Files.Read.All, or Sites.Selected with the read role on the user's OneDrive site; "
        "see docs/adapters/sharepoint.md"
    )

    @classmethod
    def parse(cls, uri: str) -> tuple[str, str]:
        """``onedrive://user@contoso.com/a/b`` -> (``onedrive://user@contoso.com``, ``a/b``)."""
        parts = urlsplit(uri)
        if parts.scheme != "onedrive" or not parts.netloc:
            raise ConfigError(f"'{uri}' is not a OneDrive URI: use onedrive://USER@DOMAIN[/FOLDER]")
        folder = "/".join(unquote(s) for s in parts.path.split("/") if s)
        return f"onedrive://{unquote(parts.netloc).lower()}", folder

    def find_drive(self) -> str:
        """The user's OneDrive."""
        user = self.root_uri[len("onedrive://") :]
        drive = self._source_json("GET", f"/users/{quote(user)}/drive", f"the OneDrive of {user}")
        return str(drive["id"])


@hookimpl
def dam_dedupe_adapters() -> list[type[SourceAdapter]]:
    """Contribute the SharePoint and OneDrive adapters."""
    return [SharePointAdapter, OneDriveAdapter]
