"""Small mappers from DAMs' own webhook payloads to an :class:`~dam_dedupe.service.ingest.IngestEvent`.

Neither Bynder nor Canto sends the bytes or a storage URI: each names the asset (and, for a new
version, the version), and an integration has the asset's file where dam-dedupe can read it (an export
bucket or folder the DAM mirrors to). ``[service] bynder_uri`` / ``canto_uri`` say where, as a template
with ``{asset_id}``, ``{version}`` and ``{name}`` (URL-quoted). The field names accepted are those the
vendors document (``docs/integrations.md``), with the few spellings seen in the wild; anything else is a
clear 422, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from dam_dedupe.service.ingest import IngestEvent, IngestRefused

BYNDER_EVENTS = frozenset({"asset_bank.media.create", "asset_bank.media.updated"})
"""Bynder notifications that bring new bytes (an upload, a new version); others are acknowledged and ignored."""


class IgnoredEvent(Exception):
    """A well-formed event that brings no new bytes (a metadata change, an SNS subscription message)."""


def _first(table: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = table.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _uri(template: str | None, dam: str, asset_id: str, version: str, name: str) -> str:
    if not template:
        raise IngestRefused(f"[service] {dam}_uri is not set: say where {dam} assets are read (docs/integrations.md)")
    return template.format(asset_id=quote(asset_id, safe=""), version=quote(version, safe=""), name=quote(name))


def from_bynder(payload: Mapping[str, Any], template: str | None) -> IngestEvent:
    """Map a Bynder notification (an Amazon SNS ``Notification`` whose ``Message`` is the event as JSON).

    Raises :class:`IgnoredEvent` for SNS subscription messages and events without new bytes, and
    :class:`IngestRefused` for a payload that is not a Bynder notification.
    """
    kind = payload.get("Type")
    if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        raise IgnoredEvent("SNS subscription messages are not followed automatically: confirm it in the AWS console")
    message = payload.get("Message")
    if kind != "Notification" or not isinstance(message, str):
        raise IngestRefused("not an Amazon SNS notification (Type 'Notification' with a 'Message')")
    try:
        event = json.loads(message)
    except json.JSONDecodeError as exc:
        raise IngestRefused("the SNS Message is not JSON") from exc
    if not isinstance(event, dict):
        raise IngestRefused("the SNS Message is not a JSON object")
    name = _first(event, "name", "event", "type") or ""
    if name and name not in BYNDER_EVENTS:
        raise IgnoredEvent(f"{name} brings no new bytes")
    asset_id = _first(event, "media_id", "mediaId", "id")
    if asset_id is None:
        raise IngestRefused("the Bynder event names no media id (media_id, mediaId or id)")
    version = _first(event, "version", "media_version", "timestamp") or _first(payload, "Timestamp") or "1"
    filename = _first(event, "filename", "fileName", "media_name") or ""
    return IngestEvent(_uri(template, "bynder", asset_id, version, filename), asset_id, version)


def from_canto(payload: Mapping[str, Any], template: str | None) -> IngestEvent:
    """Map a Canto webhook (a JSON object naming the content: ``id``, ``scheme``, and for a new version its number).

    Raises :class:`IgnoredEvent` for content that is not an image and :class:`IngestRefused` for a
    payload without an id.
    """
    scheme = _first(payload, "scheme")
    if scheme is not None and scheme != "image":
        raise IgnoredEvent(f"Canto content of scheme {scheme!r} is not an image")
    asset_id = _first(payload, "id", "contentId", "content_id")
    if asset_id is None:
        raise IngestRefused("the Canto event names no content id (id or contentId)")
    version = _first(payload, "version", "versionNumber", "time", "timestamp") or "1"
    name = _first(payload, "displayName", "name") or ""
    return IngestEvent(_uri(template, "canto", asset_id, version, name), asset_id, version)
