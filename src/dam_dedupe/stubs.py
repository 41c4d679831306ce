"""Redirect stubs: the small JSON objects the ``redirect`` action leaves in place of a duplicate.

A stub keeps the duplicate's name (``IMG_4001.JPG``) but holds, as UTF-8 JSON, the
canonical it stands for::

    {"redirect_to": "file:///srv/brand/master.jpg", "was": "file:///srv/marketing/IMG_4001.JPG",
     "sha256": "…", "cluster": "c-…"}

The scan recognises one by its bytes, so a later scan records it as skipped rather than
as a file "named as an image but not an image".
"""

from __future__ import annotations

import json

STUB_FIELDS = ("redirect_to", "was", "sha256", "cluster")

MAX_STUB_SIZE = 64 * 1024
"""Larger objects are never taken for stubs (a stub names two URIs and a hash)."""


def stub_bytes(redirect_to: str, was: str, sha256: str, cluster: str) -> bytes:
    """The body of a stub standing for ``was`` (content ``sha256``, of ``cluster``), pointing to ``redirect_to``."""
    body = {"redirect_to": redirect_to, "was": was, "sha256": sha256, "cluster": cluster}
    return json.dumps(body, ensure_ascii=False, indent=1).encode("utf-8")


def redirect_target(data: bytes) -> str | None:
    """The canonical URI a stub's whole body points to, or ``None`` when ``data`` is not a redirect stub."""
    if len(data) > MAX_STUB_SIZE or not data.lstrip().startswith(b"{"):
        return None
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(name), str) for name in STUB_FIELDS):
        return None
    return str(doc["redirect_to"])
