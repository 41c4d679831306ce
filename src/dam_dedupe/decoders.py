"""Decoders that plugins contribute (camera RAW, PSD/PSB, a vendor's format), and how one is chosen.

Pillow opens the common formats itself (JPEG, PNG, GIF, WebP, TIFF, BMP, AVIF; HEIC with the
``heic`` extra). A :class:`Decoder` is asked first, by the file's first bytes and name, so it can
also take over a format Pillow would misread (a camera RAW file is a TIFF to Pillow, whose first
picture is a thumbnail or raw sensor data). Decoders are loaded once per process through the
``dam_dedupe_decoders`` hook, so the scan's worker processes find the same ones.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from functools import cache
from typing import IO, ClassVar

from PIL import Image, features

from dam_dedupe.errors import MissingExtra

HEAD_BYTES = 64
"""How many first bytes a decoder is shown to recognise its format."""


@dataclass(frozen=True, slots=True)
class Picture:
    """What a decoder made of a file.

    Attributes:
        image: the picture to fingerprint, opened (it may still be lazy, as ``Image.open`` leaves it)
            or decoded; any mode :func:`dam_dedupe.imaging.normalise_mode` knows.
        width, height: the full-resolution size as the file stores it (before EXIF orientation).
        format: the format name recorded in the catalog (``DNG``, ``NEF``, ``PSD``, …).
        frames: how many pages, frames or layers the file holds besides the one fingerprinted, plus one.
        orientation: the EXIF orientation (1 to 8) to apply, when the picture does not carry it.
    """

    image: Image.Image
    width: int
    height: int
    format: str
    frames: int = 1
    orientation: int = 1


class Decoder(abc.ABC):
    """One format (or family of formats) a plugin decodes.

    Subclasses set :attr:`name`, :attr:`description`, :attr:`extensions` and, when they need an
    optional library, :attr:`extra` (the ``pip install 'dam-dedupe[EXTRA]'`` that brings it).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    extensions: ClassVar[frozenset[str]] = frozenset()
    extra: ClassVar[str | None] = None
    pillow_reads: ClassVar[bool] = False
    """Whether Pillow reads the format well enough when this decoder's library is missing; when it
    does not, a file this decoder accepts is an error naming the extra to install."""

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`~dam_dedupe.errors.MissingExtra` when the library this decoder needs is missing."""

    @classmethod
    @abc.abstractmethod
    def accepts(cls, head: bytes, name: str) -> bool:
        """Whether this decoder reads a file that starts with ``head`` and is called ``name``.

        Look at the content first; the name may settle formats that share a container (a
        Nikon NEF and a plain TIFF both start ``II*``). Must be cheap and never raise.
        """

    @abc.abstractmethod
    def open(self, fp: IO[bytes], size: int, min_side: int) -> Picture:
        """Decode the file in ``fp`` (seekable, ``size`` bytes), reduced where that is cheap.

        ``min_side`` is the smallest short side the fingerprint needs. Raise
        :class:`~dam_dedupe.errors.AssetError` with a reason a user can act on for a corrupt,
        truncated or unsupported file. Memory should stay proportional to the picture, not the file.
        """


def _installed(cls: type[Decoder]) -> bool:
    try:
        cls.check_available()
    except MissingExtra:
        return False
    return True


@cache
def registered_decoders() -> tuple[type[Decoder], ...]:
    """Every decoder the installed plugins contribute, loaded once per process."""
    from dam_dedupe.host import installed_plugins

    return decoders_of(installed_plugins())


def decoders_of(pm: object) -> tuple[type[Decoder], ...]:
    """The decoders a plugin manager's plugins contribute, in registration order."""
    from dam_dedupe.host import contributed

    return contributed(pm.hook.dam_dedupe_decoders)  # type: ignore[attr-defined]


def decoder_for(head: bytes, name: str, decoders: tuple[type[Decoder], ...] | None = None) -> type[Decoder] | None:
    """The first decoder that accepts a file, or ``None`` (Pillow then opens it).

    A decoder whose library is missing is passed over when Pillow reads its format
    (:attr:`Decoder.pillow_reads`); otherwise it is returned, and its ``check_available`` says
    which extra to install.
    """
    for cls in registered_decoders() if decoders is None else decoders:
        if cls.accepts(head, name) and (_installed(cls) or not cls.pillow_reads):
            return cls
    return None


def has_decoder_extension(name: str) -> bool:
    """Whether a file name ends as a contributed decoder's format does (``.cr2``, ``.psd``, …)."""
    ending = os.path.splitext(name)[1].lower()
    return any(ending in cls.extensions for cls in registered_decoders())


PILLOW_FORMATS = (
    ("avif", "AVIF still images (first picture)", "AVIF"),
    ("tiff", "TIFF, multi-page: first page, page count recorded", "TIFF"),
    ("gif", "GIF, animated: first frame, frame count recorded", "GIF"),
    ("webp", "WebP, animated: first frame, frame count recorded", "WEBP"),
)
"""Formats Pillow reads itself that archives need, listed by ``dam-dedupe plugins``."""


def decoder_rows(pm: object) -> list[tuple[str, str, str]]:
    """``(name, description, status)`` for every decoder, for ``dam-dedupe plugins``.

    The status is ``ready`` or the install command of the missing extra.
    """
    rows = []
    for cls in decoders_of(pm):
        try:
            cls.check_available()
            status = "ready"
        except MissingExtra as exc:
            status = f"needs: pip install 'dam-dedupe[{exc.extra}]'"
        rows.append((cls.name, cls.description + (f" (extra: {cls.extra})" if cls.extra else ""), status))
    Image.init()
    heic = "HEIF" in Image.OPEN  # pillow-heif registers its opener on import (dam_dedupe.imaging)
    status = "ready" if heic else "needs: pip install 'dam-dedupe[heic]'"
    rows.append(("heic", "HEIC/HEIF (iPhone photos) (extra: heic)", status))
    for name, description, pillow_format in PILLOW_FORMATS:
        ready = pillow_format in Image.OPEN and (name != "avif" or bool(features.check("avif")))
        rows.append((name, description + " (built into Pillow)", "ready" if ready else "not in this Pillow build"))
    return rows
