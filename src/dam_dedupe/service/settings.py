"""The ``[service]`` section of ``dam-dedupe.toml``: request limits and index refresh."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

MAX_BODY_BYTES = 50 * 1024 * 1024
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
"""Pillow's own decompression-bomb threshold: a picture it would warn about is refused, never decoded."""


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Limits and timings of the service (see ``docs/configuration.md``).

    Attributes:
        max_body_bytes: largest request body; larger is refused with 413 before it is read.
        max_pixels: largest picture (width x height, from the file's header) decoded at all, in
            any format; larger is refused with 422 as a decompression bomb. The default is Pillow's
            warning threshold (89 million pixels), half what a scan accepts: an upload check has no
            reason to decode a bigger picture.
        refresh_seconds: how often the catalog is asked whether its images changed (the
            in-memory index of hash codes is then reloaded in the background).
        page_size: items per page of ``/v1/clusters`` and ``/v1/assets`` when none is asked.
        bynder_uri, canto_uri: templates making the URI of a Bynder or Canto asset from the
            webhook's ``{asset_id}`` and ``{version}`` (see ``docs/integrations.md``).
    """

    max_body_bytes: int = MAX_BODY_BYTES
    max_pixels: int = MAX_PIXELS
    refresh_seconds: float = 2.0
    page_size: int = 100
    bynder_uri: str | None = None
    canto_uri: str | None = None

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> ServiceSettings:
        """From the (schema-checked) ``[service]`` table."""
        values = {key: value for key, value in section.items() if key in cls.__dataclass_fields__}
        if values.get("max_pixels") is None:
            values.pop("max_pixels", None)
        return cls(**values)
