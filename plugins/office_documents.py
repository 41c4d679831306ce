"""Images inside Office Open XML documents: PowerPoint (pptx), Word (docx) and Excel (xlsx).

These are zip archives whose pictures are stored as parts under ``ppt/media/``, ``word/media/``
and ``xl/media/``. Each part is streamed out of the archive (never the whole archive in memory),
its decompressed size bounded, so a zip bomb is an error for that document. Nothing beyond the
standard library is needed.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, ClassVar, cast

from dam_dedupe import hookimpl
from dam_dedupe.containers import BoundedReader, Budget, DocumentError, Extractor, Limits, Part

MEDIA_FOLDERS = ("ppt/media/", "word/media/", "xl/media/")
"""Where OOXML documents keep their pictures."""

VECTOR_MEDIA = frozenset({".emf", ".wmf", ".emz", ".wmz", ".svg", ".xml"})
"""Media parts that are drawings, not pictures (Office keeps an EMF or SVG beside a chart or an icon): not read."""

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
"""The compound-file signature of an encrypted OOXML document (and of pre-2007 Office files)."""


class OfficeDocuments(Extractor):
    """pptx, docx, xlsx (and their macro-enabled and template forms): the pictures in their media folders."""

    name = "office"
    description = "Office documents (pptx, docx, xlsx and their macro/template forms): pictures in their media parts"
    extensions: ClassVar[frozenset[str]] = frozenset(
        {".pptx", ".pptm", ".potx", ".ppsx", ".docx", ".docm", ".dotx", ".xlsx", ".xlsm", ".xltx"}
    )

    def parts(self, fp: IO[bytes], limits: Limits) -> Iterator[Part]:
        """Each media part, in name order, streamed and bounded."""
        head = fp.read(8)
        fp.seek(0)
        if head == OLE_SIGNATURE:
            raise DocumentError("password-protected (an encrypted Office file), or an old binary Office format")
        try:
            archive = zipfile.ZipFile(fp)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DocumentError(f"corrupt or truncated Office document: {exc}") from exc
        with archive:
            media = sorted(
                (info for info in archive.infolist() if _is_picture_part(info)),
                key=lambda info: info.filename,
            )
            stated = sum(info.file_size for info in media[: limits.max_parts])
            if stated > limits.max_total_bytes:
                raise DocumentError(
                    f"its pictures would decompress to {stated} bytes, more than the {limits.max_total_bytes} "
                    "allowed for one document (a zip bomb?)"
                )
            budget = Budget(limits.max_total_bytes)
            for info in media:
                if info.file_size > limits.max_part_bytes:
                    raise DocumentError(f"{info.filename} states {info.file_size} bytes decompressed (a zip bomb?)")
                yield Part(info.filename, _MemberOpener(archive, info, limits, budget), info.file_size)


def _is_picture_part(info: zipfile.ZipInfo) -> bool:
    """A media part that may be a picture: under a media folder, not a folder, not a vector drawing."""
    ending = info.filename[info.filename.rfind(".") :].lower() if "." in info.filename else ""
    return info.filename.startswith(MEDIA_FOLDERS) and not info.is_dir() and ending not in VECTOR_MEDIA


class _MemberOpener:
    """Opens one zip member as a bounded stream; a damaged member is that part's error."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits, budget: Budget) -> None:
        self.archive, self.info, self.limits, self.budget = archive, info, limits, budget

    def __call__(self) -> IO[bytes]:
        try:
            member = self.archive.open(self.info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            raise OSError(f"cannot open {self.info.filename} in the archive: {exc}") from exc
        checked = _ZipMember(member, self.info.filename)
        return cast(IO[bytes], BoundedReader(checked, self.limits.max_part_bytes, self.budget, self.info.filename))


class _ZipMember:
    """A zip member's stream whose damage (a bad CRC, a size that lies) is an ``OSError``: that part's error."""

    def __init__(self, member: IO[bytes], name: str) -> None:
        self.member, self.name = member, name

    def read(self, n: int = -1) -> bytes:
        """Read decompressed bytes, turning the archive's damage into an ``OSError`` naming the part."""
        try:
            return self.member.read(n)
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise OSError(f"damaged part {self.name}: {exc}") from exc

    def close(self) -> None:
        """Close the member."""
        self.member.close()


@hookimpl
def dam_dedupe_extractors() -> list[type[Extractor]]:
    """The Office Open XML extractor (standard library only: always available)."""
    return [OfficeDocuments]
