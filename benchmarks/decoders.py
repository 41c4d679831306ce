"""Compare reduced decoders on the corpus: dam-dedupe's decode (Pillow's draft for JPEG,
libvips for PNG and WebP, Pillow for the rest) and libvips's ``thumbnail_buffer``
(shrink-on-load) for every format, per format, one process.

Run: ``python benchmarks/decoders.py benchmarks/out/corpus``.
"""

from __future__ import annotations

import io
import sys
import time
from collections import defaultdict
from pathlib import Path

from dam_dedupe.imaging import DECODE_SIZE, decode


def ours(data: bytes) -> tuple[int, int]:
    """dam-dedupe's decode: the reduced picture's size."""
    return decode(io.BytesIO(data), len(data)).image.size


def vips(data: bytes) -> tuple[int, int]:
    """libvips shrink-on-load into a 2 x DECODE_SIZE box, oriented, into memory (0, 0 when
    libvips cannot read the format: pyvips-binary has no HEVC decoder for HEIC)."""
    import pyvips

    try:
        image = pyvips.Image.thumbnail_buffer(data, 2 * DECODE_SIZE, height=2 * DECODE_SIZE, size="down")
        image.write_to_memory()
    except pyvips.Error:
        return 0, 0
    return image.width, image.height


def main() -> None:
    """Time both decoders per file extension (bytes read beforehand)."""
    corpus = Path(sys.argv[1])
    files = [p for p in sorted(corpus.iterdir()) if p.suffix != ".json"]
    by_ext: dict[str, list[bytes]] = defaultdict(list)
    for path in files:
        by_ext[path.suffix.lower()].append(path.read_bytes())
    print(f"{'format':8s} {'files':>5s} {'ours s':>9s} {'libvips s':>9s} {'ratio':>6s}")
    for ext, blobs in sorted(by_ext.items()):
        times = []
        for decoder in (ours, vips):
            started = time.perf_counter()
            for data in blobs:
                decoder(data)
            times.append(time.perf_counter() - started)
        print(f"{ext:8s} {len(blobs):5d} {times[0]:9.2f} {times[1]:9.2f} {times[0] / times[1]:6.2f}")


if __name__ == "__main__":
    main()
