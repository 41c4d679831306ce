"""Blob index tags with room for more: the 10-tag limit and the metadata fallback.

Azure allows at most 10 index tags per blob, keys of 1–128 and values of 0–256 characters
drawn from letters, digits, space and ``+ - . / : = _``. :func:`split_tags` keeps as many
tags as fit, in the caller's order, as index tags; the rest (and any tag Azure would
refuse) are stored as JSON in one metadata entry, :data:`FALLBACK_METADATA_KEY`.
``get_tags`` reads both and merges them, so callers see one mapping.

Index tags change neither the blob's ETag nor its Last-Modified time. Metadata does
change both, so a blob that needed the fallback is read again by the next scan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

MAX_INDEX_TAGS = 10
FALLBACK_METADATA_KEY = "dam_dedupe_tags"
"""The metadata entry that holds, as ASCII JSON, the tags that are not index tags."""

_TAG_TEXT = re.compile(r"[A-Za-z0-9 +\-./:=_]*")


def fits_index(key: str, value: str) -> bool:
    """Whether Azure accepts ``key: value`` as a blob index tag."""
    return (
        0 < len(key) <= 128
        and len(value) <= 256
        and _TAG_TEXT.fullmatch(key) is not None
        and _TAG_TEXT.fullmatch(value) is not None
    )


def split_tags(tags: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split tags into (index tags, fallback tags): the first ten that fit, and the rest."""
    index: dict[str, str] = {}
    fallback: dict[str, str] = {}
    for key, value in tags.items():
        if len(index) < MAX_INDEX_TAGS and fits_index(key, value):
            index[key] = value
        else:
            fallback[key] = value
    return index, fallback


def merge_metadata(metadata: Mapping[str, str], fallback: Mapping[str, str]) -> dict[str, str]:
    """Blob metadata with the fallback entry set to ``fallback`` (removed when it is empty)."""
    merged = {k: v for k, v in metadata.items() if k != FALLBACK_METADATA_KEY}
    if fallback:
        merged[FALLBACK_METADATA_KEY] = json.dumps(dict(fallback), ensure_ascii=True, sort_keys=True)
    return merged


def fallback_tags(metadata: Mapping[str, str]) -> dict[str, str]:
    """The tags held in a blob's metadata fallback entry (empty if there is none or it is unreadable)."""
    raw = metadata.get(FALLBACK_METADATA_KEY)
    if not raw:
        return {}
    try:
        loaded = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
