"""Images inside documents: extractors that plugins contribute, and reading a document's images once.

A PowerPoint deck, a Word document or a PDF holds copies of library images that no duplicate
finder looks at. An :class:`Extractor` lists the images a document holds; each becomes an asset of
its own, named ``<document URI>#<part>`` (``…/deck.pptx#ppt/media/image3.png``,
``…/report.pdf#page=3&image=1``), fingerprinted and matched like any other image. Actions never
act on them: a document is never rewritten (they show as "referenced in <document>").

The document is read once, spooled (in memory up to :data:`SPOOL_MEMORY`, on disk beyond), and
every extractor is held to :class:`Limits`: a zip bomb, a document of thousands of images or a
part larger than a picture can be is an error for that document, never for the scan.
"""

from __future__ import annotations

import abc
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import IO, ClassVar, Protocol

from PIL import Image

from dam_dedupe.errors import AssetError, MissingExtra
from dam_dedupe.fingerprint import CHUNK, fingerprint_stream
from dam_dedupe.imaging import NotAnImage
from dam_dedupe.records import Fingerprint

SPOOL_MEMORY = 32 * 1024 * 1024
"""Bytes of a document kept in memory while it is read; the rest goes to a temporary file."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one document may cost to read; beyond any of them the document is an error.

    Attributes:
        max_parts: images read from one document; the rest are not read, and the document says so.
        max_part_bytes: largest single image, decompressed.
        max_total_bytes: all a document's images together, decompressed (the zip bomb bound).
    """

    max_parts: int = 1000
    max_part_bytes: int = 256 * 1024 * 1024
    max_total_bytes: int = 1024 * 1024 * 1024


class DocumentError(AssetError):
    """The document cannot be read (corrupt, truncated, password-protected, over a limit); recorded against it."""


@dataclass(frozen=True, slots=True)
class Part:
    """One image inside a document, as an extractor lists it.

    Attributes:
        name: the part's name inside the document, unique in it and stable across scans
            (``ppt/media/image3.png``, ``page=3&image=1``); it follows ``#`` in the asset's URI.
        open: opens the part's bytes as a readable stream (decompressed, bounded by :class:`Limits`).
        size: the part's size in bytes when the document says so (a zip's stated size), else 0.
    """

    name: str
    open: Callable[[], IO[bytes]]
    size: int = 0


class Extractor(abc.ABC):
    """One kind of document whose images a plugin lists.

    Subclasses set :attr:`name`, :attr:`description`, :attr:`extensions` (the endings it reads,
    lowercase with the dot) and, when they need an optional library, :attr:`extra`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    extensions: ClassVar[frozenset[str]]
    extra: ClassVar[str | None] = None

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`~dam_dedupe.errors.MissingExtra` when the library this extractor needs is missing."""

    @abc.abstractmethod
    def parts(self, fp: IO[bytes], limits: Limits) -> Iterator[Part]:
        """List the images in the document ``fp`` (seekable), in a stable order.

        Yield each part as it is found, so that memory stays bounded by one part; a part's
        ``open`` is called before the next part is asked for. Raise :class:`DocumentError` with a
        reason a user can act on when the document cannot be read at all (not a document of this
        kind, truncated, encrypted); a part that cannot be read is the part's error, raised from
        its stream. Enforce ``limits`` on what is decompressed (:class:`BoundedReader` helps).
        """


class Readable(Protocol):
    """What :class:`BoundedReader` reads from: a binary stream's ``read`` and ``close``."""

    def read(self, n: int = -1, /) -> bytes:
        """Read up to ``n`` bytes (all when ``n`` is negative)."""
        ...

    def close(self) -> None:
        """Release the stream."""
        ...


class BoundedReader:
    """A stream that raises :class:`DocumentError` once more than its share of bytes has come through.

    One :class:`Budget` is shared by every part of a document, so the document's total is bounded
    as well as each part.
    """

    def __init__(self, stream: Readable, limit: int, budget: Budget, what: str) -> None:
        self.stream = stream
        self.left = limit
        self.budget = budget
        self.what = what

    def read(self, n: int = -1) -> bytes:
        """Read as the stream does, counting the bytes against the part's and the document's limits."""
        data = self.stream.read(n if n >= 0 else CHUNK)
        self.left -= len(data)
        self.budget.spend(len(data))
        if self.left < 0:
            raise DocumentError(f"{self.what} is larger than a picture can be here (a zip bomb?)")
        return data

    def close(self) -> None:
        """Close the stream underneath."""
        self.stream.close()

    def __enter__(self) -> BoundedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class Budget:
    """Bytes left for all of one document's images together."""

    left: int

    def spend(self, count: int) -> None:
        """Take ``count`` bytes from the budget; raise :class:`DocumentError` when it runs out."""
        self.left -= count
        if self.left < 0:
            raise DocumentError("its images decompress to more than the limit for one document (a zip bomb?)")


@dataclass(frozen=True, slots=True)
class PartResult:
    """What reading one image inside a document found: a fingerprint, or the reason there is none.

    ``content`` is ``image`` with a fingerprint, ``skipped`` for a part no decoder knows (not counted
    as an error), or ``error``.
    """

    name: str
    size: int
    fingerprint: Fingerprint | None = None
    error: str | None = None
    content: str = "image"


@dataclass(frozen=True, slots=True)
class DocumentResult:
    """What reading a document found: its images, and a note for the document itself (``None`` when all went well)."""

    parts: tuple[PartResult, ...]
    note: str | None = None


@cache
def registered_extractors() -> tuple[type[Extractor], ...]:
    """Every extractor the installed plugins contribute, loaded once per process."""
    from dam_dedupe.host import installed_plugins

    return extractors_of(installed_plugins())


def extractors_of(pm: object) -> tuple[type[Extractor], ...]:
    """The extractors a plugin manager's plugins contribute, in registration order."""
    from dam_dedupe.host import contributed

    return contributed(pm.hook.dam_dedupe_extractors)  # type: ignore[attr-defined]


def extractor_for(name: str) -> type[Extractor] | None:
    """The extractor reading documents with this name's ending, or ``None``."""
    ending = os.path.splitext(name)[1].lower()
    return next((cls for cls in registered_extractors() if ending in cls.extensions), None)


def read_document(
    extractor: type[Extractor],
    stream: IO[bytes],
    inspect: Callable[[str, Image.Image, str], None] | None = None,
    limits: Limits | None = None,
) -> DocumentResult:
    """Read a document once and fingerprint every image it holds.

    ``inspect`` is called as ``inspect(part_name, image, sha256)`` for each image decoded (the
    analysers' seam). Raises :class:`~dam_dedupe.errors.MissingExtra` when the extractor's library
    is missing and :class:`DocumentError` when the document cannot be read at all; a single image
    that cannot be decoded is that part's error and the others are still read.
    """
    extractor.check_available()
    limits = limits or Limits()
    found: list[PartResult] = []
    note = None
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
        shutil.copyfileobj(stream, spool, CHUNK)
        spool.seek(0)
        for part in extractor().parts(spool, limits):
            if len(found) >= limits.max_parts:
                note = f"holds more than {limits.max_parts} images; only the first {limits.max_parts} were read"
                break
            found.append(_read_part(part, inspect))
    return DocumentResult(tuple(found), note)


def _read_part(part: Part, inspect: Callable[[str, Image.Image, str], None] | None) -> PartResult:
    """Fingerprint one part; its failure is its own error (a document-wide limit still stops the document)."""

    def seen(image: Image.Image, sha256: str) -> None:
        if inspect is not None:
            inspect(part.name, image, sha256)

    try:
        with part.open() as stream:
            fingerprint = fingerprint_stream(stream, seen, name=os.path.basename(part.name))
    except DocumentError:
        raise
    except NotAnImage as exc:
        return PartResult(part.name, part.size, error=str(exc), content="skipped")
    except AssetError as exc:
        return PartResult(part.name, part.size, error=str(exc), content="error")
    except (OSError, ValueError, EOFError) as exc:
        return PartResult(part.name, part.size, error=f"unreadable part: {type(exc).__name__}: {exc}", content="error")
    return PartResult(part.name, fingerprint.size, fingerprint)


def extractor_rows(pm: object) -> list[tuple[str, str, str]]:
    """``(name, description, status)`` for every extractor, for ``dam-dedupe plugins``."""
    rows = []
    for cls in extractors_of(pm):
        try:
            cls.check_available()
            status = "ready"
        except MissingExtra as exc:
            status = f"needs: pip install 'dam-dedupe[{exc.extra}]'"
        rows.append((cls.name, cls.description + (f" (extra: {cls.extra})" if cls.extra else ""), status))
    return rows
