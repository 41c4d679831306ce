"""A small sample library for the quick start: made here, deterministic, nothing downloaded.

It mimics a department share: the same pictures saved under other names and folders
(Traditional Chinese names included), resized and re-encoded copies, and the damaged
files every real archive holds.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ORIGINALS = 12


def _picture(seed: int, size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A photo-like picture: a sky-to-ground gradient with soft shapes, different for each seed."""
    rng = random.Random(seed)
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    top = tuple(rng.randrange(60, 200) for _ in range(3))
    bottom = tuple(rng.randrange(0, 120) for _ in range(3))
    for y in range(size[1]):
        t = y / size[1]
        draw.line([(0, y), (size[0], y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    for _ in range(rng.randrange(5, 10)):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        r = rng.randrange(30, 160)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        else:
            draw.rectangle([x - r, y - r // 2, x + r, y + r // 2], fill=colour)
    return img.filter(ImageFilter.GaussianBlur(2))


def make_sample_library(root: Path) -> Path:
    """Write the sample library under ``root`` (created if missing) and return ``root``."""
    folders = {
        "brand": root / "品牌" / "已批准",
        "marketing": root / "Marketing" / "Campaign 2026",
        "events": root / "活動相片" / "維港夜景",
        "archive": root / "archive" / "old exports",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for n in range(ORIGINALS):
        picture = _picture(n)
        original = folders["brand"] / f"master_{n:02d}.jpg"
        picture.save(original, "JPEG", quality=92)
        data = original.read_bytes()
        if n % 2 == 0:  # byte-identical copies under other names and folders
            (folders["marketing"] / f"IMG_{4000 + n}.JPG").write_bytes(data)
        if n % 3 == 0:
            (folders["events"] / f"相片 {n} 🙂.jpg").write_bytes(data)
            (folders["archive"] / f"copy of master_{n:02d}.jpeg").write_bytes(data)
        if n % 4 == 1:  # re-saved copies: resized, re-encoded, converted
            picture.resize((400, 300)).save(folders["archive"] / f"thumb_{n:02d}.jpg", "JPEG", quality=75)
            picture.save(folders["marketing"] / f"web_{n:02d}.png", "PNG")
    damaged = folders["archive"]
    (damaged / "empty.jpg").write_bytes(b"")
    (damaged / "truncated.jpg").write_bytes((folders["brand"] / "master_00.jpg").read_bytes()[:5000])
    (damaged / "notes.jpg").write_text("this file is a text note named as a picture\n", encoding="utf-8")
    (damaged / "readme.txt").write_text("not an image\n", encoding="utf-8")
    return root
