"""The ASGI application (FastAPI): routes, bearer-token scopes and error answers (the body limit is :mod:`.limits`).

Every answer to a caller's mistake is a 4xx with ``{"detail": "..."}``; the only 5xx is 503 (try again)
when the catalog is busy past its timeout or an ingest's store cannot be read just now. Request bodies
are never logged, tokens never leave the ``Authorization`` header, and a check reads nothing but the
body it was sent.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at run time,
and those naming the scope dependencies refer to names local to :func:`create_app`.
"""

import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from dam_dedupe.catalog.base import ApiToken, CatalogAsset, StoredCluster
from dam_dedupe.errors import DamDedupeError
from dam_dedupe.service import dams
from dam_dedupe.service.ingest import IngestDeferred, IngestEvent, IngestRefused, ingest
from dam_dedupe.service.state import ServiceState
from dam_dedupe.service.tokens import find_token, now
from dam_dedupe.service.upload import UnusableUpload, fingerprint_upload

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="A token from 'dam-dedupe tokens create NAME --scope SCOPE'.")
TOUCH_EVERY = 60.0
"""Seconds between updates of a token's ``last_used`` (a write per request would contend with scans)."""
BODY_TYPES = ("image/", "application/octet-stream")


class IngestBody(BaseModel):
    """A DAM event in the service's own shape (``docs/integrations.md`` maps Bynder's and Canto's onto it)."""

    model_config = ConfigDict(extra="forbid")
    uri: str = Field(min_length=1, max_length=4096, description="Where an enabled adapter reads the asset.")
    asset_id: str = Field(min_length=1, max_length=512, description="The DAM's id of the asset.")
    version: str = Field(min_length=1, max_length=512, description="The DAM's version of the asset.")


class PlanBody(BaseModel):
    """What ``dam-dedupe plan`` takes on its command line."""

    model_config = ConfigDict(extra="forbid")
    action: str = Field(min_length=1, max_length=100)
    params: dict[str, str] = {}
    sources: list[str] = []
    match: list[Literal["exact", "near", "transformed"]] = []
    clusters: list[str] = []
    min_confidence: float = Field(default=0.0, ge=0, le=1)


def create_app(state: ServiceState) -> FastAPI:
    """The service's application over ``state`` (see ``docs/integrations.md`` for every route)."""
    app = FastAPI(
        title="dam-dedupe",
        summary="Duplicate checks at upload, DAM webhooks and the catalog over HTTP.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    touched: dict[str, float] = {}

    def scope(name: str) -> Callable[..., Awaitable[ApiToken]]:
        async def authorised(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> ApiToken:
            if credentials is None or not credentials.credentials:
                raise HTTPException(401, "send 'Authorization: Bearer TOKEN'", {"WWW-Authenticate": "Bearer"})
            token = await run_in_threadpool(_look_up, credentials.credentials)
            if token is None:
                raise HTTPException(401, "unknown or revoked token", {"WWW-Authenticate": "Bearer"})
            if name not in token.scopes:
                raise HTTPException(403, f"this token lacks the '{name}' scope")
            return token

        return authorised

    def _look_up(secret: str) -> ApiToken | None:
        """The token in force for ``secret``, its use recorded (at most every ``TOUCH_EVERY`` seconds)."""
        token = find_token(state.catalog(), secret)
        if token is not None and time.monotonic() - touched.get(token.name, -TOUCH_EVERY) >= TOUCH_EVERY:
            touched[token.name] = time.monotonic()
            try:
                state.catalog().touch_token(token.name, now())
            except sqlite3.OperationalError:  # busy: the next request records it
                touched.pop(token.name, None)
        return token

    @app.exception_handler(sqlite3.OperationalError)
    async def busy(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        log.warning("catalog busy: %s", exc)
        return JSONResponse({"detail": "the catalog is busy; try again"}, 503, {"Retry-After": "2"})

    @app.get("/v1/health", summary="Liveness: 200 while the service answers.")
    def health() -> dict[str, Any]:
        return {"status": "ok", "images": len(state.index)}

    @app.post(
        "/v1/check",
        summary="Is this image (the body) a copy of a catalogued one? Nothing is stored.",
        responses={
            401: {"description": "No token, or an unknown or revoked one."},
            403: {"description": "The token lacks the 'check' scope."},
            413: {"description": "The body is over [service] max_body_bytes."},
            415: {"description": "The body is not sent as image/* or application/octet-stream."},
            422: {"description": "Not a decodable image, or a decompression bomb."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def check(request: Request, _: Annotated[ApiToken, Depends(scope("check"))]) -> JSONResponse:
        content_type = request.headers.get("content-type", "").lower()
        if not content_type.startswith(BODY_TYPES):
            raise HTTPException(415, "send the image's bytes as image/* or application/octet-stream")
        body = await request.body()  # within [service] max_body_bytes: see limits.BodyLimit

        def run() -> tuple[dict[str, Any], str]:
            started = time.perf_counter()
            fingerprint = fingerprint_upload(body, state.settings.max_pixels)
            fingerprinted = time.perf_counter()
            answer = state.answer(fingerprint)
            spent = f"fingerprint;dur={(fingerprinted - started) * 1000:.1f}, "
            return answer, spent + f"match;dur={(time.perf_counter() - fingerprinted) * 1000:.1f}"

        try:
            answer, timing = await run_in_threadpool(run)
        except UnusableUpload as exc:
            raise HTTPException(422, str(exc)) from exc
        # Server-Timing: where the service spent the check, for integrators measuring their upload path
        return JSONResponse(answer, headers={"Server-Timing": timing})

    async def _ingest(event: IngestEvent) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            done = ingest(state.catalog(), state.config, state.host, event)
            if done.catalogued:
                state.index.add(done.asset)
            assert done.asset.fingerprint is not None
            answer = state.answer(done.asset.fingerprint, exclude=done.asset.id)
            answer["ingest"] = {
                "asset_id": event.asset_id,
                "version": event.version,
                "uri": done.asset.record.uri,
                "catalogued": done.catalogued,
            }
            return answer

        try:
            return await run_in_threadpool(run)
        except IngestDeferred as exc:  # DAMs resend a webhook that was not accepted
            raise HTTPException(503, str(exc), {"Retry-After": "30"}) from exc
        except DamDedupeError as exc:  # outside the sources, no such asset, not an image, no adapter or SDK
            raise HTTPException(422, str(exc)) from exc

    @app.post("/v1/ingest", summary="A DAM asset version was uploaded: catalogue it once, answer as a check.")
    async def ingest_event(body: IngestBody, _: Annotated[ApiToken, Depends(scope("ingest"))]) -> dict[str, Any]:
        return await _ingest(IngestEvent(body.uri, body.asset_id, body.version))

    @app.post("/v1/ingest/{dam}", summary="A Bynder (SNS) or Canto webhook, mapped onto /v1/ingest.")
    async def ingest_dam(
        dam: str, request: Request, _: Annotated[ApiToken, Depends(scope("ingest"))]
    ) -> dict[str, Any]:
        mappers = {
            "bynder": (dams.from_bynder, state.settings.bynder_uri),
            "canto": (dams.from_canto, state.settings.canto_uri),
        }
        if dam not in mappers:
            raise HTTPException(404, f"no mapper for {dam!r}; known: {', '.join(sorted(mappers))}")
        payload = await _json_body(request)
        mapper, template = mappers[dam]
        try:
            event = mapper(payload, template)
        except dams.IgnoredEvent as exc:
            return {"ignored": str(exc)}
        except IngestRefused as exc:
            raise HTTPException(422, str(exc)) from exc
        return await _ingest(event)

    @app.get("/v1/clusters", summary="The catalog's clusters, a page at a time (pass next_cursor back as cursor).")
    def clusters(
        _: Annotated[ApiToken, Depends(scope("read"))],
        cursor: Annotated[str, Query(max_length=100)] = "",
        limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    ) -> dict[str, Any]:
        catalog = state.catalog()
        page = catalog.cluster_page(cursor, limit or state.settings.page_size)
        assets = catalog.assets_by_id({m[0] for c in page for m in c.members})
        more = len(page) == (limit or state.settings.page_size)
        return {
            "clusters": [_cluster_json(c, assets, members=False) for c in page],
            "next_cursor": page[-1].id if page and more else None,
        }

    @app.get("/v1/clusters/{cluster_id}", summary="One cluster with its members and their evidence.")
    def cluster(cluster_id: str, _: Annotated[ApiToken, Depends(scope("read"))]) -> dict[str, Any]:
        catalog = state.catalog()
        found = catalog.cluster_by_id(cluster_id)
        if found is None:
            raise HTTPException(404, f"no cluster {cluster_id!r} in the catalog")
        return _cluster_json(found, catalog.assets_by_id(m[0] for m in found.members), members=True)

    @app.get("/v1/assets", summary="The catalogued assets at a URI (or under it, when it ends in '/').")
    def assets(
        _: Annotated[ApiToken, Depends(scope("read"))],
        uri: Annotated[str, Query(min_length=1, max_length=4096)],
        cursor: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    ) -> dict[str, Any]:
        catalog = state.catalog()
        size = limit or state.settings.page_size
        page = catalog.assets_page(uri, cursor, size)
        clusters = catalog.clusters_of(a.id for a in page)
        return {
            "assets": [_asset_json(a, clusters.get(a.id)) for a in page],
            "next_cursor": page[-1].id if len(page) == size else None,
        }

    @app.post("/v1/plans", summary="Make a plan as 'dam-dedupe plan' does; sign-off and apply stay with governance.")
    def make_plan_route(body: PlanBody, token: Annotated[ApiToken, Depends(scope("plan"))]) -> dict[str, Any]:
        from dam_dedupe.governance.planner import Selection, make_plan

        config = state.config
        try:
            selection = Selection(
                tuple(config.source(s).uri for s in body.sources),
                tuple(body.match),
                tuple(body.clusters),
                body.min_confidence,
            )
            plan = make_plan(
                state.catalog(), state.host, config, body.action, body.params, selection, None, f"token:{token.name}"
            )
        except DamDedupeError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"plan_id": plan.id, "steps": len(plan.body["steps"]), "plan": plan.to_json()}

    @app.get("/v1/plans/{plan_id}", summary="A plan the catalog holds, with its sign-offs so far.")
    def get_plan(plan_id: str, _: Annotated[ApiToken, Depends(scope("plan"))]) -> dict[str, Any]:
        catalog = state.catalog()
        body = catalog.plan_body(plan_id)
        if body is None:
            raise HTTPException(404, f"no plan {plan_id!r} in the catalog")
        signoffs = [{"role": s.role, "signed_by": s.signed_by, "at": s.at} for s in catalog.signoffs(plan_id)]
        return {"id": plan_id, **json.loads(body), "signoffs": signoffs}

    return app


async def _json_body(request: Request) -> dict[str, Any]:
    """A JSON object body (DAM payloads); 422 for anything else."""
    raw = await request.body()
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(422, "the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise HTTPException(422, "the body is not a JSON object")
    return payload


def _asset_json(asset: CatalogAsset, cluster: tuple[str, str] | None) -> dict[str, Any]:
    fp = asset.fingerprint
    return {
        "id": asset.id,
        "uri": asset.record.uri,
        "name": asset.record.name,
        "size": asset.record.size,
        "modified": asset.record.modified.isoformat() if asset.record.modified else None,
        "presence": asset.state.presence,
        "content": asset.state.content,
        "error": asset.state.error,
        "sha256": fp.sha256 if fp else None,
        "width": fp.width if fp else None,
        "height": fp.height if fp else None,
        "format": fp.format if fp else None,
        "cluster_id": cluster[0] if cluster else None,
        "canonical_uri": cluster[1] if cluster else None,
    }


def _cluster_json(cluster: StoredCluster, assets: dict[int, CatalogAsset], members: bool) -> dict[str, Any]:
    canonical = assets.get(cluster.canonical_asset_id)
    listed = [
        {"uri": assets[asset_id].record.uri, "match": match, **({"evidence": evidence} if members else {})}
        for asset_id, match, evidence in cluster.members
        if asset_id in assets
    ]
    return {
        "id": cluster.id,
        "canonical_uri": canonical.record.uri if canonical else None,
        "canonical_reason": cluster.canonical_reason,
        "preset": cluster.preset,
        "size": len(cluster.members),
        "members": listed,
    }
