"""A small Python client of the service, for upload hooks and DAM connectors (standard library only).

    from dam_dedupe.service.client import Client

    client = Client("https://dedupe.example.org", token=os.environ["DAM_DEDUPE_TOKEN"])
    answer = client.check(open("upload.jpg", "rb").read())
    if answer.duplicates:
        ...

Every method returns the decoded JSON answer (``check`` and ``ingest`` as a :class:`CheckAnswer`) and
raises :class:`ServiceError` with the status and the service's ``detail`` for any 4xx or 5xx.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class ServiceError(Exception):
    """The service refused a request: ``status`` is the HTTP status, ``detail`` its reason."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CheckAnswer:
    """What ``/v1/check`` (and ``/v1/ingest``) answered: the body's SHA-256 and the catalogued copies."""

    sha256: str
    matches: list[dict[str, Any]]
    raw: dict[str, Any]

    @property
    def duplicates(self) -> bool:
        """Whether any catalogued asset is a copy."""
        return bool(self.matches)

    @property
    def exact(self) -> list[dict[str, Any]]:
        """The byte-identical copies."""
        return [m for m in self.matches if m["match"] == "exact"]


class Client:
    """Talks to one ``dam-dedupe serve`` with one bearer token."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def check(self, image: bytes, content_type: str = "application/octet-stream") -> CheckAnswer:
        """Ask whether ``image`` (its bytes) is a copy of a catalogued asset; nothing is stored."""
        return self._answer(self._call("POST", "/v1/check", image, content_type))

    def ingest(self, uri: str, asset_id: str, version: str) -> CheckAnswer:
        """Tell the service a DAM asset version was uploaded (catalogued once per asset id and version)."""
        body = json.dumps({"uri": uri, "asset_id": asset_id, "version": version}).encode("utf-8")
        return self._answer(self._call("POST", "/v1/ingest", body, "application/json"))

    def clusters(self, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every cluster of the catalog, fetched a page at a time."""
        cursor = ""
        while True:
            query = urllib.parse.urlencode({"cursor": cursor, "limit": page_size})
            page = self._call("GET", f"/v1/clusters?{query}")
            yield from page["clusters"]
            if page["next_cursor"] is None:
                return
            cursor = page["next_cursor"]

    def cluster(self, cluster_id: str) -> dict[str, Any]:
        """One cluster with its members and their evidence."""
        return self._call("GET", "/v1/clusters/" + urllib.parse.quote(cluster_id, safe=""))

    def assets(self, uri: str) -> list[dict[str, Any]]:
        """The catalogued assets at ``uri`` (or under it, when it ends in ``/``), every page."""
        found: list[dict[str, Any]] = []
        cursor = 0
        while True:
            page = self._call("GET", "/v1/assets?" + urllib.parse.urlencode({"uri": uri, "cursor": cursor}))
            found += page["assets"]
            if page["next_cursor"] is None:
                return found
            cursor = page["next_cursor"]

    def make_plan(self, action: str, **selection: Any) -> dict[str, Any]:
        """Make a plan as ``dam-dedupe plan`` does (``params``, ``sources``, ``match``, ``clusters``,
        ``min_confidence``); it still needs sign-off through the governance workflow."""
        body = json.dumps({"action": action, **selection}).encode("utf-8")
        return self._call("POST", "/v1/plans", body, "application/json")

    def plan(self, plan_id: str) -> dict[str, Any]:
        """A plan the catalog holds, with its sign-offs so far."""
        return self._call("GET", "/v1/plans/" + urllib.parse.quote(plan_id, safe=""))

    @staticmethod
    def _answer(raw: dict[str, Any]) -> CheckAnswer:
        return CheckAnswer(raw["sha256"], raw["matches"], raw)

    def _call(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> Any:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("detail", exc.reason)
            except (ValueError, AttributeError):
                detail = exc.reason
            raise ServiceError(exc.code, detail if isinstance(detail, str) else json.dumps(detail)) from exc
