"""Where the S3 adapter keeps an object's tags: S3 object tags first, user metadata when they are full.

S3 allows at most 10 tags per object, keys of up to 128 and values of up to 256
characters drawn from letters, digits, spaces and ``+ - = . _ : / @``; keys must not
start with ``aws:``. The adapter keeps as many tags as fit as real S3 tags, because
lifecycle rules, IAM conditions and other tools read those. Tags already on the object
keep their place; new ones take the free slots in the caller's order. Whatever does not
fit (an eleventh tag, a value with other characters) goes into one user-metadata entry,
``x-amz-meta-dam-dedupe-tags``, holding a JSON object (ASCII, sorted keys).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from urllib.parse import urlencode

TAG_LIMIT = 10
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
METADATA_KEY = "dam-dedupe-tags"
METADATA_LIMIT = 2048
"""S3's limit on all user-defined metadata of one object, in bytes of keys and values."""

_TAG_CHARS = re.compile(r"[\w +\-=.:/@]*")


def storable_as_tag(key: str, value: str) -> bool:
    """Whether S3 accepts this pair as an object tag."""
    return (
        0 < len(key) <= TAG_KEY_MAX
        and len(value) <= TAG_VALUE_MAX
        and not key.lower().startswith("aws:")
        and _TAG_CHARS.fullmatch(key) is not None
        and _TAG_CHARS.fullmatch(value) is not None
    )


def split_tags(tags: Mapping[str, str], on_object: Collection[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split ``tags`` into those stored as S3 tags and the overflow kept in metadata.

    Args:
        tags: every tag the object should have.
        on_object: the keys that are S3 tags on the object now; they keep their place.

    Returns ``(s3_tags, overflow)``; together they hold exactly ``tags``.
    """
    fits = [k for k in tags if storable_as_tag(k, tags[k])]
    order = [k for k in fits if k in on_object] + [k for k in fits if k not in on_object]
    chosen = set(order[:TAG_LIMIT])
    s3_tags = {k: v for k, v in tags.items() if k in chosen}
    overflow = {k: v for k, v in tags.items() if k not in chosen}
    return s3_tags, overflow


def encode_overflow(overflow: Mapping[str, str]) -> str:
    """The metadata value holding the overflow tags (ASCII JSON, so any text survives HTTP headers)."""
    return json.dumps(dict(overflow), ensure_ascii=True, sort_keys=True, separators=(",", ":"))


def decode_overflow(metadata: Mapping[str, str]) -> dict[str, str]:
    """The overflow tags kept in an object's user metadata, or ``{}``."""
    raw = metadata.get(METADATA_KEY)
    if not raw:
        return {}
    return {str(k): str(v) for k, v in json.loads(raw).items()}


def metadata_size(metadata: Mapping[str, str]) -> int:
    """Bytes S3 counts against :data:`METADATA_LIMIT`."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())


def tag_set(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """Tags in the ``TagSet`` shape of ``PutObjectTagging``."""
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tagging_header(tags: Mapping[str, str]) -> str:
    """Tags in the URL-encoded form of the ``Tagging`` parameter of ``PutObject`` and ``CopyObject``."""
    return urlencode(dict(tags))
