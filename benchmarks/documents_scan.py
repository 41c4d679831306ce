"""Measure scanning documents for the images inside them: documents per second, images per second.

    python benchmarks/documents_scan.py --documents 200 --images-each 10 --workers 2

Writes ``--documents`` documents with real writers, a third each of PowerPoint decks
(python-pptx), Word documents (python-docx) and PDFs (Pillow), each holding ``--images-each``
distinct photographs-like pictures (640x480 JPEG or PNG, about 60 KB each); one picture in ten
is also a file of its own, so the scan finds clusters spanning files and documents. Then it
times, with the CLI in a child process as a user runs it, a first scan (every document read once,
every picture fingerprinted, analysed by the installed analysers and matched), an unchanged
rescan, and a first scan into a new catalog with the analysers off (``[analysis] disabled``: the
faces detector costs more than reading); then reading and fingerprinting alone, in this process
on one core (no analysers, no matching). Needs the ``documents`` extra and the ``test`` extra
(python-pptx, python-docx).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw


def picture(seed: int) -> Image.Image:
    """A distinct 640x480 picture per seed: gradients, lines and a disc."""
    img = Image.new("RGB", (640, 480), ((seed * 53) % 256, (seed * 97) % 256, (seed * 29) % 256))
    draw = ImageDraw.Draw(img)
    for i in range(0, 640, 10 + seed % 13):
        draw.line([(i, 0), (i + seed % 90, 480)], fill=((seed * 11 + i) % 256, (i * 3) % 256, 200), width=3)
    r = 30 + seed % 60
    cx, cy = (seed * 37) % 640, (seed * 61) % 480
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, 250 - seed % 200, 10))
    return img


def encoded(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()


def write_documents(root: Path, documents: int, each: int) -> int:
    """Write the documents and the standalone copies; return the number of pictures inside documents."""
    from docx import Document
    from docx.shared import Inches as DocxInches
    from pptx import Presentation
    from pptx.util import Inches

    (root / "library").mkdir(parents=True)
    seed = 0
    for n in range(documents):
        pictures = [picture(seed + k) for k in range(each)]
        for k, img in enumerate(pictures):
            if (seed + k) % 10 == 0:
                img.save(root / "library" / f"picture {seed + k}.jpg", quality=90)
        seed += each
        kind = n % 3
        if kind == 0:
            deck = Presentation()
            for k, img in enumerate(pictures):
                slide = deck.slides.add_slide(deck.slide_layouts[6])
                data = encoded(img, "PNG" if k % 2 else "JPEG")
                slide.shapes.add_picture(io.BytesIO(data), Inches(1), Inches(1), width=Inches(5))
            deck.save(str(root / f"deck {n:03d}.pptx"))
        elif kind == 1:
            doc = Document()
            for img in pictures:
                doc.add_picture(io.BytesIO(encoded(img, "JPEG")), width=DocxInches(4))
            doc.save(str(root / f"document {n:03d}.docx"))
        else:
            first, *rest = pictures
            first.save(root / f"report {n:03d}.pdf", "PDF", save_all=True, append_images=rest)
    return documents * each


def scan(root: Path, catalog: Path, workers: int, config: Path | None = None) -> tuple[float, dict[str, object]]:
    """Scan ``root`` with the CLI in a child process; return the time taken and the JSON summary."""
    options = ["--config", str(config)] if config else []
    command = [sys.executable, "-m", "dam_dedupe", "--catalog", str(catalog), *options, "scan", str(root)]
    started = time.perf_counter()
    done = subprocess.run([*command, "--workers", str(workers), "--json"], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(done.stdout.strip().splitlines()[-1])


def read_alone(root: Path) -> tuple[float, int]:
    """Read every document and fingerprint its images in this process; return the time and the images read."""
    from dam_dedupe.containers import extractor_for, read_document

    started, images = time.perf_counter(), 0
    for path in sorted(root.glob("*.*")):
        extractor = extractor_for(path.name)
        if extractor is not None:
            with path.open("rb") as stream:
                images += len(read_document(extractor, stream).parts)
    return time.perf_counter() - started, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--images-each", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dam-dedupe-docs-") as tmp:
        root = Path(tmp) / "archive"
        started = time.perf_counter()
        images = write_documents(root, args.documents, args.images_each)
        made = time.perf_counter() - started
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(f"wrote {args.documents} documents holding {images} images ({size / 2**20:.0f} MiB) in {made:.0f} s")
        first, summary = scan(root, Path(tmp) / "c.sqlite", args.workers)
        print(f"first scan: {first:.1f} s, {args.documents / first:.1f} documents/s, {images / first:.1f} images/s")
        print(f"  summary: {summary}")
        again, summary = scan(root, Path(tmp) / "c.sqlite", args.workers)
        print(f"unchanged rescan: {again:.1f} s ({summary.get('fingerprinted')} fingerprinted)")
        quiet = Path(tmp) / "no-analysers.toml"
        quiet.write_text('[analysis]\ndisabled = ["faces", "rights"]\n', encoding="utf-8")
        bare, summary = scan(root, Path(tmp) / "bare.sqlite", args.workers, quiet)
        rates = f"{args.documents / bare:.1f} documents/s, {images / bare:.1f} images/s"
        print(f"first scan, analysers off: {bare:.1f} s, {rates}")
        alone, read = read_alone(root)
        rates = f"{args.documents / alone:.1f} documents/s, {read / alone:.1f} images/s"
        print(f"read and fingerprint alone, one core: {alone:.1f} s, {rates}")
        print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
