"""A Microsoft Graph and Entra ID emulator on pytest-httpserver, over HTTPS with a test CA.

It speaks the real wire format for what the SharePoint and OneDrive adapters use, so
that msal signs in against it unpatched and the adapter's HTTP calls go over a real
socket: OpenID discovery and the client-credentials token endpoint (client secret, or a
certificate assertion whose signature is checked), sites and drives lookup, driveItems
by id and by path, ``root/delta`` with ``@odata.nextLink`` / ``@odata.deltaLink`` paging,
deleted items as ``{"id", "deleted": {"state": "deleted"}}``, 410 ``resyncRequired`` for
stale tokens, ``/content`` answering 302 to a pre-authenticated download URL, list item
fields, move, copy with a monitor URL, upload and delete. Faults are injected on demand:
429/503 with ``Retry-After``, and 401 ``InvalidAuthenticationToken`` for a token revoked
early, or an answer lost after the write was done. Every request is logged with its arrival time, and
each download with the bytes the client took.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jwt
import numpy as np
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pytest_httpserver import HTTPServer, URIPattern
from werkzeug import Request, Response

TENANT = "contoso-tenant"
CLIENT_ID = "dam-dedupe-test-app"
CLIENT_SECRET = "emulator-secret"
HOST = "contoso.sharepoint.com"
SITE = "marketing"
LIBRARY_NAME = "Documents"
LIBRARY_URL_NAME = "Shared Documents"
USER = "alice@contoso.com"


def quick_xor_hash(data: bytes) -> str:
    """Microsoft's QuickXorHash (base64), as ``file.hashes.quickXorHash`` carries it."""
    width, mask = 160, (1 << 160) - 1
    arr = np.frombuffer(data, dtype=np.uint8)
    padded = np.concatenate([arr, np.zeros((-len(arr)) % width, np.uint8)])
    folded = np.bitwise_xor.reduce(padded.reshape(-1, width), axis=0) if len(arr) else np.zeros(width, np.uint8)
    value = 0
    for index, byte in enumerate(folded.tolist()):
        shift = (index * 11) % width
        value ^= ((byte << shift) | (byte >> (width - shift))) & mask
    out = bytearray(value.to_bytes(20, "little"))
    for i, b in enumerate(len(data).to_bytes(8, "little")):
        out[12 + i] ^= b
    return base64.b64encode(bytes(out)).decode()


@dataclass
class Item:
    """One driveItem."""

    id: str
    name: str
    parent: str | None
    folder: bool
    content: bytes = b""
    hashes: tuple[str, ...] = ("quickXorHash",)
    version: int = 1
    content_version: int = 1
    modified: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    fields: dict[str, Any] = field(default_factory=dict)
    guid: str = field(default_factory=lambda: str(uuid.uuid4()).upper())
    _digests: tuple[int, dict[str, str]] | None = None

    def digests(self) -> dict[str, str]:
        """Every hash Graph can give for the content (computed once per content version)."""
        if self._digests is None or self._digests[0] != self.content_version:
            self._digests = (
                self.content_version,
                {
                    "quickXorHash": quick_xor_hash(self.content),
                    "sha1Hash": hashlib.sha1(self.content).hexdigest().upper(),
                    "sha256Hash": hashlib.sha256(self.content).hexdigest().upper(),
                },
            )
        return self._digests[1]


@dataclass
class Drive:
    """An in-memory document library: items, a change sequence and the columns its list has."""

    id: str
    web_url: str
    items: dict[str, Item] = field(default_factory=dict)
    columns: set[str] = field(default_factory=set)
    seq: int = 0
    changed: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    token_floor: int = 0
    root_id: str = ""
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _children: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root_id = self._new(Item("", "root", None, True)).id

    def _new(self, item: Item) -> Item:
        item.id = "01" + hashlib.sha1(f"{self.id}-{next(self._ids)}".encode()).hexdigest()[:30].upper()
        self.items[item.id] = item
        self._index(item)
        self.touch(item)
        return item

    def _index(self, item: Item) -> None:
        if item.parent is not None:
            self._children.setdefault(item.parent, {})[item.name.casefold()] = item.id

    def relink(self, item: Item, parent: str, name: str) -> None:
        """Move or rename an item in place (same id, version history kept)."""
        if item.parent is not None:
            self._children[item.parent].pop(item.name.casefold(), None)
        item.parent, item.name = parent, name
        self._index(item)
        item.version += 1
        self.touch(item)

    def touch(self, item: Item) -> None:
        """Record a change to ``item`` for the delta feed."""
        self.seq += 1
        self.changed[item.id] = self.seq

    def children(self, parent: str) -> list[Item]:
        """The live children of a folder."""
        return [self.items[i] for i in self._children.get(parent, {}).values()]

    def child(self, parent: str, name: str) -> Item | None:
        """A child by name (case-insensitive, as SharePoint compares names)."""
        found = self._children.get(parent, {}).get(name.casefold())
        return self.items[found] if found else None

    def resolve(self, base: str, rel: str) -> Item | None:
        """The item at ``rel`` below the item ``base``."""
        item: Item | None = self.items.get(base)
        for name in [p for p in rel.split("/") if p]:
            item = self.child(item.id, name) if item is not None else None
        return item

    def path_of(self, item: Item) -> str:
        """``/a/b`` for an item (``""`` for the root)."""
        names: list[str] = []
        current: Item | None = item
        while current is not None and current.parent is not None:
            names.append(current.name)
            current = self.items.get(current.parent)
        return "/" + "/".join(reversed(names)) if names else ""

    def folder_at(self, path: str) -> Item:
        """The folder at ``path``, created with its parents if missing."""
        current = self.items[self.root_id]
        for name in [p for p in path.split("/") if p]:
            found = self.child(current.id, name)
            current = found or self._new(Item("", name, current.id, True))
        return current

    def put(self, path: str, content: bytes, hashes: tuple[str, ...] = ("quickXorHash",)) -> Item:
        """Create or overwrite the file at ``path``."""
        parent_path, _, name = path.rpartition("/")
        parent = self.folder_at(parent_path)
        existing = self.child(parent.id, name)
        if existing is not None:
            existing.content = content
            existing.version += 1
            existing.content_version += 1
            existing.modified = datetime.now(UTC)
            self.touch(existing)
            return existing
        return self._new(Item("", name, parent.id, False, content, hashes, modified=datetime.now(UTC)))

    def at(self, path: str) -> Item:
        """The item at ``path`` (it must exist)."""
        item = self.resolve(self.root_id, path)
        assert item is not None, path
        return item

    def remove(self, item: Item) -> None:
        """Delete an item and everything below it."""
        for child in self.children(item.id):
            self.remove(child)
        del self.items[item.id]
        if item.parent is not None:
            self._children[item.parent].pop(item.name.casefold(), None)
        self.changed.pop(item.id, None)
        self.seq += 1
        self.deleted[item.id] = self.seq

    def move(self, path: str, new_path: str) -> Item:
        """Move or rename an item (the delta feed reports only the item itself, as Graph does)."""
        item = self.at(path)
        parent_path, _, name = new_path.rpartition("/")
        self.relink(item, self.folder_at(parent_path).id, name)
        return item

    def expire_tokens(self) -> None:
        """Make every delta token handed out so far stale (410 resyncRequired)."""
        self.token_floor = self.seq

    def item_json(self, item: Item, base: str, with_path: bool = True) -> dict[str, Any]:
        """The driveItem resource."""
        body: dict[str, Any] = {
            "id": item.id,
            "name": item.name,
            "eTag": f'"{{{item.guid}}},{item.version}"',
            "cTag": f'"c:{{{item.guid}}},{item.content_version}"',
            "createdDateTime": "2026-01-01T00:00:00Z",
            "lastModifiedDateTime": item.modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "webUrl": f"{self.web_url}{quote(self.path_of(item))}",
        }
        if item.parent is None:
            body["root"] = {}
            body["folder"] = {"childCount": len(self.children(item.id))}
            body["size"] = 0
            return body
        parent = {"driveId": self.id, "driveType": "documentLibrary", "id": item.parent}
        if with_path:
            parent["path"] = f"/drives/{self.id}/root:{self.path_of(self.items[item.parent])}"
        body["parentReference"] = parent
        if item.folder:
            body["folder"] = {"childCount": len(self.children(item.id))}
            body["size"] = 0
        else:
            hashes = {k: v for k, v in item.digests().items() if k in item.hashes}
            body["file"] = {"mimeType": "application/octet-stream", **({"hashes": hashes} if hashes else {})}
            body["size"] = len(item.content)
        return body


@dataclass(frozen=True)
class LogEntry:
    """One request the emulator answered."""

    at: float
    method: str
    path: str
    query: str
    status: int
    authorization: bool


@dataclass
class Fault:
    """Answer the next ``times`` requests whose path and query contain ``match`` with an error (or revoke tokens).

    With ``lose`` the request is carried out first and its answer replaced by the error, as
    when a proxy or the network loses the answer to a write that was done; ``method``
    limits the fault to one HTTP method.
    """

    match: str
    status: int
    code: str
    retry_after: str | None = None
    times: int = 1
    revoke: bool = False
    lose: bool = False
    method: str | None = None


class _AnyPath(URIPattern):
    def match(self, uri: str) -> bool:
        return True


class GraphEmulator:
    """The emulated tenant: one SharePoint site with one library, and one user's OneDrive."""

    def __init__(self, server: HTTPServer, ca_pem: str) -> None:
        self.server = server
        self.base = f"https://localhost:{server.port}"
        self.ca_pem = ca_pem
        self._lock = threading.RLock()
        server.expect_request(_AnyPath()).respond_with_handler(self._handle)
        self.reset()

    def reset(self) -> None:
        """Start afresh: empty drives, no faults, no tokens, empty log."""
        with self._lock:
            self.library = Drive("b!library", f"https://{HOST}/sites/{SITE}/{quote(LIBRARY_URL_NAME)}")
            self.onedrive = Drive("b!onedrive", "https://contoso-my.sharepoint.com/personal/alice/Documents")
            self.drives = {d.id: d for d in (self.library, self.onedrive)}
            self.log: list[LogEntry] = []
            self.faults: list[Fault] = []
            self.tokens: dict[str, float] = {}
            self.token_lifetime = 3600
            self.page_size = 50
            self.certificate_thumbprint: str | None = None
            self.certificate_key: Any = None
            self._monitors: dict[str, str] = {}
            self.download_bytes: list[int] = []
            self.left_out_of_delta: set[str] = set()
            self._counter = itertools.count(1)

    # -- test controls --------------------------------------------------------------------

    def leave_out_of_delta(self, *items: Item) -> None:
        """Leave ``items`` out of every delta page until :meth:`reset` (a listing that silently misses a folder)."""
        with self._lock:
            self.left_out_of_delta |= {item.id for item in items}

    def fail(self, match: str, status: int, code: str, retry_after: str | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests whose path contains ``match`` with ``status``."""
        with self._lock:
            self.faults.append(Fault(match, status, code, retry_after, times))

    def lose_answer(self, match: str, method: str, status: int = 503, times: int = 1) -> None:
        """Carry out the next ``times`` ``method`` requests whose path contains ``match``, then answer ``status``."""
        with self._lock:
            self.faults.append(Fault(match, status, "serviceNotAvailable", None, times, lose=True, method=method))

    def revoke_tokens_at(self, match: str) -> None:
        """When a request whose path contains ``match`` arrives, revoke every token first (as if expired early)."""
        with self._lock:
            self.faults.append(Fault(match, 401, "InvalidAuthenticationToken", revoke=True))

    def trust_certificate(self, cert_pem: bytes) -> None:
        """Register an app certificate, as uploading it to the app registration does."""
        cert = x509.load_pem_x509_certificate(cert_pem)
        self.certificate_thumbprint = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).decode().rstrip("=")
        self.certificate_key = cert.public_key()

    def requests(self, contains: str = "", method: str | None = None) -> list[LogEntry]:
        """Logged requests whose path contains ``contains``."""
        with self._lock:
            return [e for e in self.log if contains in e.path and (method is None or e.method == method)]

    def graph_requests(self) -> list[LogEntry]:
        """Logged requests to the Graph API itself (not sign-in, downloads or monitors)."""
        return self.requests("/v1.0/")

    # -- dispatch -------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        with self._lock:
            response = self._dispatch(request)
            self.log.append(
                LogEntry(
                    time.monotonic(),
                    request.method,
                    request.path,
                    request.query_string.decode(),
                    response.status_code,
                    "Authorization" in request.headers,
                )
            )
            return response

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        target = f"{path}?{request.query_string.decode()}"
        for fault in self.faults:
            if fault.times > 0 and fault.match in target and fault.method in (None, request.method):
                fault.times -= 1
                if fault.revoke:
                    self.tokens.clear()
                    break
                if fault.lose:
                    self._answer(request)  # done, and the answer lost
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return _error(fault.status, fault.code, "injected by the test", headers)
        return self._answer(request)

    def _answer(self, request: Request) -> Response:
        path = request.path
        if path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
            return _json(
                {
                    "token_endpoint": f"{self.base}/{TENANT}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{self.base}/{TENANT}/oauth2/v2.0/authorize",
                    "issuer": f"{self.base}/{TENANT}/v2.0",
                }
            )
        if path == f"/{TENANT}/oauth2/v2.0/token" and request.method == "POST":
            return self._token(request)
        if path.startswith("/download/"):
            _, _, drive_id, item_id = path.split("/", 3)
            item = self.drives[drive_id].items.get(item_id)
            if item is None:
                return _error(404, "itemNotFound", "The resource could not be found.")
            return Response(self._counted(item.content), 200, content_type="application/octet-stream")
        if path.startswith("/monitor/"):
            resource = self._monitors[path.rsplit("/", 1)[1]]
            return _json({"status": "completed", "percentageComplete": 100.0, "resourceId": resource})
        if not path.startswith("/v1.0/"):
            return _error(404, "notFound", "no such endpoint")
        auth = request.headers.get("Authorization", "")
        expiry = self.tokens.get(auth.removeprefix("Bearer "))
        if expiry is None or expiry < time.time():
            return _error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        return self._graph(request, path[len("/v1.0") :])

    def _counted(self, content: bytes) -> Iterator[bytes]:
        """A download's body in 64 KiB pieces; ``download_bytes`` gets how many the client took before hanging up."""
        sent = 0
        try:
            for start in range(0, len(content), 64 * 1024):
                piece = content[start : start + 64 * 1024]
                yield piece
                sent += len(piece)
        finally:
            self.download_bytes.append(sent)

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("client_id") != CLIENT_ID or form.get("grant_type") != "client_credentials":
            return _json({"error": "unauthorized_client", "error_description": "AADSTS700016: unknown app"}, 400)
        if "client_assertion" in form:
            if not self._assertion_ok(form["client_assertion"]):
                return _json({"error": "invalid_client", "error_description": "AADSTS700027: bad assertion"}, 401)
        elif form.get("client_secret") != CLIENT_SECRET:
            return _json({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."}, 401)
        token = f"emulated-token-{next(self._counter)}-{uuid.uuid4().hex}"
        self.tokens[token] = time.time() + self.token_lifetime
        return _json({"token_type": "Bearer", "expires_in": self.token_lifetime, "access_token": token})

    def _assertion_ok(self, assertion: str) -> bool:
        if self.certificate_key is None:
            return False
        header = jwt.get_unverified_header(assertion)
        if str(header.get("x5t", "")).rstrip("=") != self.certificate_thumbprint:
            return False
        key_pem = self.certificate_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:
            jwt.decode(
                assertion,
                key_pem,
                algorithms=["RS256", "PS256"],
                audience=f"{self.base}/{TENANT}/oauth2/v2.0/token",
            )
        except jwt.PyJWTError:
            return False
        return True

    def _graph(self, request: Request, path: str) -> Response:
        method = request.method
        if method == "GET" and path == f"/sites/{HOST}:/sites/{SITE}":
            return _json({"id": f"{HOST},site-guid,web-guid", "name": SITE, "webUrl": f"https://{HOST}/sites/{SITE}"})
        if method == "GET" and path == f"/sites/{HOST},site-guid,web-guid/drives":
            return _json(
                {
                    "value": [
                        {
                            "id": self.library.id,
                            "name": LIBRARY_NAME,
                            "driveType": "documentLibrary",
                            "webUrl": self.library.web_url,
                        }
                    ]
                }
            )
        if method == "GET" and path == f"/users/{USER}/drive":
            return _json({"id": self.onedrive.id, "driveType": "business", "webUrl": self.onedrive.web_url})
        match = re.match(r"^/drives/([^/]+)/(.*)$", path)
        if match is None or match.group(1) not in self.drives:
            return _error(404, "itemNotFound", "The resource could not be found.")
        return self._drive_call(request, self.drives[match.group(1)], match.group(2))

    def _drive_call(self, request: Request, drive: Drive, rest: str) -> Response:
        parts = rest.split(":")
        tail = ""
        if len(parts) == 1:
            head = re.match(r"^(root|items/[^/]+)(/.*)?$", rest)
            if head is None:
                return _error(400, "invalidRequest", "Invalid request")
            base, tail = head.group(1), head.group(2) or ""
            rel = ""
        else:
            base, rel = parts[0], parts[1]
            tail = parts[2] if len(parts) > 2 else ""
        base_id = drive.root_id if base == "root" else base.removeprefix("items/")
        if base_id not in drive.items:
            return _error(404, "itemNotFound", "The resource could not be found.")
        item = drive.resolve(base_id, rel)
        method = request.method
        if tail == "/delta":
            if base_id != drive.root_id or rel:
                return _error(400, "invalidRequest", "Delta is only supported on the root of a drive.")
            return self._delta(request, drive)
        if method == "PUT" and tail == "/content":
            return self._upload(request, drive, base_id, rel, item)
        if item is None:
            return _error(404, "itemNotFound", "The resource could not be found.")
        if method == "GET" and tail == "":
            return _json(drive.item_json(item, self.base))
        if method == "GET" and tail == "/content":
            url = f"{self.base}/download/{drive.id}/{item.id}?tempauth={uuid.uuid4().hex}"
            return Response(status=302, headers={"Location": url})
        if tail == "/children" and method == "GET":
            return _json({"value": [drive.item_json(c, self.base) for c in drive.children(item.id)]})
        if tail == "/children" and method == "POST":
            return self._create_folder(request, drive, item)
        if tail == "/listItem/fields":
            return self._fields(request, drive, item)
        if method == "PATCH" and tail == "":
            return self._patch_item(request, drive, item)
        if method == "POST" and tail == "/copy":
            return self._copy(request, drive, item)
        if method == "DELETE" and tail == "":
            if_match = request.headers.get("If-Match")
            if if_match and if_match != drive.item_json(item, self.base)["eTag"]:
                return _error(412, "preconditionFailed", "ETag does not match current item's value")
            drive.remove(item)
            return Response(status=204)
        return _error(400, "invalidRequest", f"unsupported {method} {tail}")

    def _delta(self, request: Request, drive: Drive) -> Response:
        token, skip = request.args.get("token"), request.args.get("$skiptoken")
        if skip:
            since, snapshot, offset = (int(x) for x in skip.split("."))
        else:
            since, snapshot, offset = (int(token) if token else -1), drive.seq, 0
        if since >= 0 and since < drive.token_floor:
            return _error(410, "resyncRequired", "Resync required. Replace any local items with the server's version.")
        if since < 0:  # everything, in id order (so children often come before their parents)
            ids = sorted(drive.items)
        else:  # what changed since the token, in the order it changed
            changes = [(seq, i) for i, seq in drive.changed.items() if since < seq <= snapshot]
            changes += [(seq, i) for i, seq in drive.deleted.items() if since < seq <= snapshot]
            ids = [i for _, i in sorted(changes)]
        page = [
            drive.item_json(drive.items[i], self.base, with_path=False)
            if i in drive.items
            else {"id": i, "deleted": {"state": "deleted"}, "parentReference": {"driveId": drive.id}}
            for i in ids[offset : offset + self.page_size]
            if i not in self.left_out_of_delta
        ]
        body: dict[str, Any] = {"value": page}
        root = f"{self.base}/v1.0/drives/{drive.id}/root/delta"
        if offset + self.page_size < len(ids):
            body["@odata.nextLink"] = f"{root}?$skiptoken={since}.{snapshot}.{offset + self.page_size}"
        else:
            body["@odata.deltaLink"] = f"{root}?token={snapshot}"
        return _json(body)

    def _upload(self, request: Request, drive: Drive, base_id: str, rel: str, item: Item | None) -> Response:
        if item is not None and request.args.get("@microsoft.graph.conflictBehavior") == "fail":
            return _error(409, "nameAlreadyExists", "The specified item name already exists.")
        parent_rel, _, name = rel.strip("/").rpartition("/")
        parent = drive.resolve(base_id, parent_rel)
        if parent is None or not parent.folder:
            return _error(404, "itemNotFound", "The parent folder does not exist.")
        created = drive.put(drive.path_of(parent) + "/" + name, request.get_data(), ("quickXorHash",))
        return _json(drive.item_json(created, self.base), 200 if item else 201)

    def _create_folder(self, request: Request, drive: Drive, parent: Item) -> Response:
        body = request.get_json()
        if drive.child(parent.id, body["name"]) is not None:
            return _error(409, "nameAlreadyExists", "The specified item name already exists.")
        folder = drive.folder_at(drive.path_of(parent) + "/" + body["name"])
        return _json(drive.item_json(folder, self.base), 201)

    def _fields(self, request: Request, drive: Drive, item: Item) -> Response:
        if request.method == "PATCH":
            updates = request.get_json()
            for name in updates:
                if name not in drive.columns:
                    return _error(400, "invalidRequest", f"Field '{name}' is not recognized")
            for name, value in updates.items():
                if value is None:
                    item.fields.pop(name, None)
                else:
                    item.fields[name] = value
            item.version += 1
            item.modified = datetime.now(UTC)
            drive.touch(item)
        values = {k: v for k, v in item.fields.items() if v is not None}
        return _json({"id": "1", "FileLeafRef": item.name, "ContentType": "Document", **values})

    def _patch_item(self, request: Request, drive: Drive, item: Item) -> Response:
        """Rename or move an item in place: it keeps its id, cTag, fields and versions; its eTag changes.

        ``If-Match`` a stale eTag answers 412; a name taken in the target folder answers 409
        ``nameAlreadyExists`` unless ``@microsoft.graph.conflictBehavior`` (query or body)
        is ``replace`` or ``rename``, as Graph does.
        """
        if_match = request.headers.get("If-Match")
        if if_match and if_match != drive.item_json(item, self.base)["eTag"]:
            return _error(412, "preconditionFailed", "ETag does not match current item's value")
        body = request.get_json()
        behaviour = request.args.get("@microsoft.graph.conflictBehavior") or body.get(
            "@microsoft.graph.conflictBehavior", "fail"
        )
        parent = body.get("parentReference", {}).get("id", item.parent)
        if parent not in drive.items or not drive.items[parent].folder:
            return _error(400, "invalidRequest", "The parent reference is not a folder.")
        name = body.get("name", item.name)
        clash = drive.child(parent, name)
        if clash is not None and clash is not item:
            if behaviour == "replace":
                drive.remove(clash)
            elif behaviour == "rename":
                stem, dot, ext = name.rpartition(".")
                name = f"{stem} 1{dot}{ext}" if dot else f"{name} 1"
            else:
                return _error(409, "nameAlreadyExists", "The specified item name already exists.")
        drive.relink(item, parent, name)
        return _json(drive.item_json(item, self.base))

    def _copy(self, request: Request, drive: Drive, item: Item) -> Response:
        body = request.get_json()
        parent = drive.items[body["parentReference"]["id"]]
        name = body.get("name", item.name)
        if drive.child(parent.id, name) is not None:
            return _error(409, "nameAlreadyExists", "The specified item name already exists.")
        copied = drive.put(drive.path_of(parent) + "/" + name, item.content, item.hashes)
        monitor = uuid.uuid4().hex
        self._monitors[monitor] = copied.id
        return Response(status=202, headers={"Location": f"{self.base}/monitor/{monitor}"})


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status, content_type="application/json")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "innerError": {"date": datetime.now(UTC).isoformat()}}}
    return Response(json.dumps(body), status, headers=headers or {}, content_type="application/json")


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def graph_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    """A test CA and the path of its PEM, which the adapter is told to trust."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("graph-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


@pytest.fixture(scope="session")
def graph_server(graph_ca: tuple[trustme.CA, str]) -> Iterator[GraphEmulator]:
    """The emulator over HTTPS on localhost, for the whole session."""
    ca, ca_pem = graph_ca
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = HTTPServer(host="localhost", port=0, ssl_context=context, threaded=True)
    server.start()
    try:
        yield GraphEmulator(server, ca_pem)
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def graph(graph_server: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> GraphEmulator:
    """A fresh emulated tenant, with the environment set as an admin would set it for the app."""
    graph_server.reset()
    for name in ("AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", graph_server.base)
    monkeypatch.setenv("DAM_DEDUPE_GRAPH_ENDPOINT", graph_server.base)
    monkeypatch.setenv("DAM_DEDUPE_CA_BUNDLE", graph_server.ca_pem)
    return graph_server


def library_uri(folder: str = "") -> str:
    """The sharepoint:// URI of the emulated library, or of a folder in it."""
    uri = f"sharepoint://{HOST}/sites/{SITE}/{quote(LIBRARY_URL_NAME)}"
    return f"{uri}/{quote(folder)}" if folder else uri
