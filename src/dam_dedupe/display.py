"""How the product names things to people: URIs and keys decoded, as a reviewer reads them."""

from __future__ import annotations

from urllib.parse import unquote


def display_path(uri: str) -> str:
    """A URI or key made readable: percent-escapes decoded (undecodable bytes shown as U+FFFD)."""
    return unquote(uri, errors="replace")
