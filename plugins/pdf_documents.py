"""Images inside PDF documents: each page's image XObjects, through ``pypdf`` (BSD licence; the ``documents`` extra).

A part is named ``page=N&image=M`` (both from 1). JPEG images are passed through as stored;
others are decoded by pypdf and handed over as PNG. An encrypted PDF that opens with an empty
password (permissions only) is read; one that needs a password is an error for that document.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, ClassVar, cast

from dam_dedupe import hookimpl
from dam_dedupe.containers import BoundedReader, Budget, DocumentError, Extractor, Limits, Part
from dam_dedupe.errors import MissingExtra


class PdfDocuments(Extractor):
    """PDF: every image drawn on every page."""

    name = "pdf"
    description = "PDF documents: the image XObjects of every page"
    extensions: ClassVar[frozenset[str]] = frozenset({".pdf"})
    extra = "documents"

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`MissingExtra` when pypdf is not installed."""
        try:
            import pypdf  # noqa: F401
        except ImportError as exc:
            raise MissingExtra("documents", "pypdf") from exc

    def parts(self, fp: IO[bytes], limits: Limits) -> Iterator[Part]:
        """Each page's images, page by page, one decoded at a time."""
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError

        if fp.read(5) != b"%PDF-":
            raise DocumentError("not a PDF (no %PDF- header)")
        fp.seek(0)
        try:
            reader = PdfReader(fp)
            if reader.is_encrypted and not reader.decrypt(""):
                raise DocumentError("password-protected PDF: it needs a password to open")
            pages = reader.pages
            count = len(pages)
        except DocumentError:
            raise
        except (PyPdfError, OSError, ValueError, KeyError, TypeError) as exc:
            raise DocumentError(f"corrupt or truncated PDF: {type(exc).__name__}: {exc}") from exc
        budget = Budget(limits.max_total_bytes)
        for number in range(count):
            try:
                images = [str(key) for key in pages[number].images.keys()]  # noqa: SIM118 (a virtual list)
            except (PyPdfError, OSError, ValueError, KeyError, TypeError) as exc:
                raise DocumentError(f"page {number + 1} cannot be read: {type(exc).__name__}: {exc}") from exc
            for index, key in enumerate(images, 1):
                yield Part(f"page={number + 1}&image={index}", _ImageOpener(pages[number], key, limits, budget))


class _ImageOpener:
    """Decodes one image of a page when its part is opened; a broken image is that part's error."""

    def __init__(self, page: object, key: str, limits: Limits, budget: Budget) -> None:
        self.page, self.key, self.limits, self.budget = page, key, limits, budget

    def __call__(self) -> IO[bytes]:
        from pypdf.errors import PyPdfError

        try:
            data = self.page.images[self.key].data  # type: ignore[attr-defined]
        except (PyPdfError, OSError, ValueError, KeyError, TypeError, NotImplementedError) as exc:
            raise OSError(f"pypdf cannot extract it: {type(exc).__name__}: {exc}") from exc
        return cast(IO[bytes], BoundedReader(io.BytesIO(data), self.limits.max_part_bytes, self.budget, self.key))


@hookimpl
def dam_dedupe_extractors() -> list[type[Extractor]]:
    """The PDF extractor (it names the ``documents`` extra when pypdf is missing)."""
    return [PdfDocuments]
