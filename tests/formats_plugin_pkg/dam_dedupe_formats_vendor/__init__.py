"""A vendor's formats plugin: a decoder for its own picture format and an extractor for comic-book archives.

- ``DAMT`` pictures: ``b"DAMT"``, width and height (two big-endian 16-bit integers), then RGB bytes.
- ``.cbz`` comic-book archives: a zip of page images; each page becomes an asset ``book.cbz#PAGE``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import IO

from PIL import Image

from dam_dedupe import hookimpl
from dam_dedupe.containers import BoundedReader, Budget, DocumentError, Extractor, Limits, Part
from dam_dedupe.decoders import Decoder, Picture
from dam_dedupe.errors import AssetError


class DamtDecoder(Decoder):
    name = "damt"
    description = "test: the vendor's DAMT raw RGB pictures"
    extensions = frozenset({".damt"})

    @classmethod
    def accepts(cls, head: bytes, name: str) -> bool:
        return head[:4] == b"DAMT"

    def open(self, fp: IO[bytes], size: int, min_side: int) -> Picture:
        header = fp.read(8)
        width, height = int.from_bytes(header[4:6], "big"), int.from_bytes(header[6:8], "big")
        pixels = fp.read(width * height * 3)
        if len(pixels) != width * height * 3:
            raise AssetError(f"truncated DAMT picture: {len(pixels)} of {width * height * 3} bytes")
        return Picture(Image.frombytes("RGB", (width, height), pixels), width, height, "DAMT")


class ComicBooks(Extractor):
    name = "cbz"
    description = "test: comic-book archives (.cbz), one asset per page"
    extensions = frozenset({".cbz"})

    def parts(self, fp: IO[bytes], limits: Limits) -> Iterator[Part]:
        try:
            archive = zipfile.ZipFile(fp)
        except zipfile.BadZipFile as exc:
            raise DocumentError(f"not a comic-book archive: {exc}") from exc
        budget = Budget(limits.max_total_bytes)
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            yield Part(
                info.filename,
                lambda info=info: BoundedReader(archive.open(info), limits.max_part_bytes, budget, info.filename),
                info.file_size,
            )


@hookimpl
def dam_dedupe_decoders():  # type: ignore[no-untyped-def]
    return [DamtDecoder]


@hookimpl
def dam_dedupe_extractors():  # type: ignore[no-untyped-def]
    return [ComicBooks]
