"""The service's bearer tokens: made once, shown once, stored only as a hash.

A token is 32 random bytes (URL-safe base64, prefixed ``ddt_`` so that a leaked one is easy to
recognise in a secret scanner). It is stored as its SHA-256: with that much entropy a plain hash
cannot be reversed or guessed, and a lookup per request stays one indexed query, so revoking a
token takes effect on the next request.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from datetime import UTC, datetime

from dam_dedupe.catalog.base import ApiToken, Catalog
from dam_dedupe.errors import ConfigError

SCOPES = ("check", "read", "plan", "ingest")
"""What a token may do: ``check`` an upload, ``read`` the catalog, make a ``plan``, ``ingest`` DAM events."""
PREFIX = "ddt_"


def now() -> str:
    """The current time as the catalog keeps it (ISO 8601 UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(catalog: Catalog, name: str, scopes: Collection[str]) -> str:
    """Store a new token named ``name`` with ``scopes`` and return its secret (the only time it exists whole)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ConfigError(f"scopes must be some of {', '.join(SCOPES)}; not {', '.join(unknown) or 'none'}")
    if not name or not name.isprintable() or len(name) > 100:
        raise ConfigError("a token name must be 1 to 100 printable characters")
    token = PREFIX + secrets.token_urlsafe(32)
    catalog.add_token(name, hash_token(token), scopes, now())
    return token


def find_token(catalog: Catalog, token: str) -> ApiToken | None:
    """The token in force that ``token`` is the secret of, or ``None`` (unknown or revoked)."""
    found = catalog.token_by_hash(hash_token(token))
    return found if found is not None and found.revoked is None else None
