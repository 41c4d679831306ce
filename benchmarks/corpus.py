"""Generate the labelled near-duplicate corpus from photographs that packages ship.

Sources (nothing is downloaded at run time):
- scikit-image's sample photographs (``pip install scikit-image``);
- Debian wallpaper packages (``apt-get install gnome-backgrounds ukui-wallpapers lomiri-wallpapers``),
  read from ``/usr/share/backgrounds``. GNOME ships light and dark versions of one design
  (``*-l`` / ``*-d``): they are look-alike negatives as they are.

Every source (but a flat colour: see ``FLAT_STD``) becomes an *original* (a central window of the photograph, at most
``MAX_SIDE`` pixels) and one file per variant kind. Look-alikes are separate assets that
must not be grouped with the original. ``labels.json`` lists every file with its group, kind
and, for look-alikes, the file it must not be grouped with.

Run: ``python benchmarks/corpus.py OUT_DIR [--limit N]``
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps, ImageStat

MAX_SIDE = 1600
FLAT_STD = 2.0
"""Sources whose grey levels vary less than this (standard deviation) are left out: a tile of
one flat colour has no content to recognise, and its brightened copy *is* another colour."""
WALLPAPERS = Path("/usr/share/backgrounds")
SKIMAGE_PHOTOS = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "camera.png",
    "coins.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "moon.png",
    "grass.png",
    "gravel.png",
    "brick.png",
    "page.png",
    "text.png",
    "cell.png",
    "motorcycle_left.png",
]

NEAR_KINDS = (
    "exact",
    "reencode",
    "png",
    "webp",
    "tiff",
    "heic",
    "resize-half",
    "thumbnail-eighth",
    "metadata",
    "exif-orientation",
    "crop",
    "crop-wide",
    "brightness",
    "contrast",
    "colour-shift",
    "watermark",
    "logo",
    "greyscale",
    "png16-grey",
    "png16-rgb",
)
"""Variant kinds that must be grouped with their original as ``exact`` or ``near``."""

TRANSFORMED_KINDS = ("rotate-90", "rotate-180", "rotate-270", "mirror")
"""Variant kinds that must be grouped as ``transformed``."""

LOOKALIKE_KINDS = ("burst", "stereo", "overlap", "template-text", "theme", "tone-version")
"""Kinds that must NOT be grouped with the asset they resemble."""


def sources() -> list[tuple[str, Path]]:
    """(name, path) of every usable source photograph, in a stable order."""
    found: list[tuple[str, Path]] = []
    try:
        import skimage

        data = Path(skimage.__file__).parent / "data"
        found += [(f"skimage-{Path(n).stem}", data / n) for n in SKIMAGE_PHOTOS if (data / n).exists()]
    except ImportError:
        print("scikit-image not installed: its photographs are left out", file=sys.stderr)
    for path in sorted(WALLPAPERS.rglob("*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp") and not path.is_symlink():
            found.append((f"wall-{path.stem}", path))
    return found


def load(path: Path) -> Image.Image:
    """The source photograph as RGB, at most ``MAX_SIDE`` / 0.9 pixels on its long side."""
    with Image.open(path) as img:
        img.draft("RGB", (MAX_SIDE, MAX_SIDE))
        rgb = ImageOps.exif_transpose(img).convert("RGB")
    rgb.thumbnail((int(MAX_SIDE / 0.9), int(MAX_SIDE / 0.9)), Image.Resampling.LANCZOS)
    return rgb


def window(img: Image.Image, left: float, top: float, width: float, height: float) -> Image.Image:
    """A window of ``img`` in fractions of its size."""
    w, h = img.size
    return img.crop((round(left * w), round(top * h), round((left + width) * w), round((top + height) * h)))


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels."""
    return ImageFont.load_default(size=max(8, size))


def jpeg(img: Image.Image, quality: int = 92, **params: object) -> bytes:
    """``img`` encoded as JPEG."""
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality, **params)
    return out.getvalue()


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    """``img`` encoded in ``fmt``."""
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def watermark(img: Image.Image, rng: random.Random) -> Image.Image:
    """A small semi-transparent text watermark in a corner."""
    out = img.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(10, out.height // 28)
    x = rng.choice([0.03, 0.6]) * out.width
    y = rng.choice([0.03, 0.92]) * out.height
    draw.text((x, y), "© Example Photo 2024", font=font(size), fill=(255, 255, 255, 170))
    return Image.alpha_composite(out, layer).convert("RGB")


def logo(img: Image.Image, rng: random.Random) -> Image.Image:
    """A small opaque logo (disc and bar) in a corner, about 1.5% of the area."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    side = int(min(out.size) * 0.11)
    x = int(rng.choice([0.02, 0.98]) * out.width - (side if out.width * 0.5 < rng.random() * out.width else 0))
    x = min(max(0, x), out.width - side)
    y = out.height - side - int(0.02 * out.height)
    draw.ellipse((x, y, x + side, y + side), fill=(220, 30, 40))
    draw.rectangle(
        (x + side // 4, y + side // 2 - side // 10, x + 3 * side // 4, y + side // 2 + side // 10), fill="white"
    )
    return out


def colour_shift(img: Image.Image) -> Image.Image:
    """A slight warm colour cast (red up, blue down) and more saturation."""
    r, g, b = img.split()
    shifted = Image.merge("RGB", (r.point(lambda v: min(255, int(v * 1.08))), g, b.point(lambda v: int(v * 0.92))))
    return ImageEnhance.Color(shifted).enhance(1.15)


def exif_rotated(img: Image.Image) -> bytes:
    """The pixels stored turned, with an EXIF Orientation tag that turns them back."""
    stored = img.transpose(Image.Transpose.ROTATE_270)  # clockwise 90
    exif = Image.Exif()
    exif[0x0112] = 8  # "turn 90 degrees counter-clockwise to display"
    return jpeg(stored, 92, exif=exif.tobytes())


def metadata_variant(img: Image.Image) -> bytes:
    """The same picture with other EXIF (artist, copyright, camera) and an XMP packet."""
    exif = Image.Exif()
    exif[0x013B] = "Someone Else"
    exif[0x8298] = "(c) Another Owner"
    exif[0x0110] = "Camera Model X"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    return jpeg(img, 90, exif=exif.tobytes(), xmp=xmp)


def near_variants(img: Image.Image, original: bytes, rng: random.Random) -> dict[str, tuple[str, bytes]]:
    """Every near and transformed variant of ``img``: kind to (suffix, bytes)."""
    w, h = img.size
    m = [rng.uniform(0.0, 0.05) for _ in range(4)]
    wide = random.Random(w * 10_007 + h)  # its own generator: the other kinds' draws stay as they were
    w4 = [wide.uniform(0.04, 0.05) for _ in range(4)]
    variants: dict[str, Callable[[], tuple[str, bytes]]] = {
        "exact": lambda: ("jpg", original),
        "reencode": lambda: ("jpg", jpeg(img, rng.choice([45, 55, 65]))),
        "png": lambda: ("png", encode(img, "PNG")),
        "webp": lambda: ("webp", encode(img, "WEBP", quality=80)),
        "tiff": lambda: ("tif", encode(img, "TIFF", compression="tiff_lzw")),
        "resize-half": lambda: ("jpg", jpeg(img.resize((w // 2, h // 2), Image.Resampling.LANCZOS))),
        "thumbnail-eighth": lambda: (
            "jpg",
            jpeg(img.resize((round(w / 8**0.5), round(h / 8**0.5)), Image.Resampling.BICUBIC), 85),
        ),
        "metadata": lambda: ("jpg", metadata_variant(img)),
        "exif-orientation": lambda: ("jpg", exif_rotated(img)),
        "crop": lambda: ("jpg", jpeg(window(img, m[0], m[1], 1 - m[0] - m[2], 1 - m[1] - m[3]))),
        "crop-wide": lambda: ("jpg", jpeg(window(img, w4[0], w4[1], 1 - w4[0] - w4[2], 1 - w4[1] - w4[3]))),
        "brightness": lambda: ("jpg", jpeg(ImageEnhance.Brightness(img).enhance(rng.choice([0.85, 1.15])))),
        "contrast": lambda: ("jpg", jpeg(ImageEnhance.Contrast(img).enhance(rng.choice([0.8, 1.25])))),
        "colour-shift": lambda: ("jpg", jpeg(colour_shift(img))),
        "watermark": lambda: ("jpg", jpeg(watermark(img, rng))),
        "logo": lambda: ("png", encode(logo(img, rng), "PNG")),
        "greyscale": lambda: ("jpg", jpeg(img.convert("L"))),
        "png16-grey": lambda: ("png", png16(img.convert("L"))),
        "png16-rgb": lambda: ("png", png16(img)),
        "rotate-90": lambda: ("jpg", jpeg(img.transpose(Image.Transpose.ROTATE_90))),
        "rotate-180": lambda: ("jpg", jpeg(img.transpose(Image.Transpose.ROTATE_180))),
        "rotate-270": lambda: ("png", encode(img.transpose(Image.Transpose.ROTATE_270), "PNG")),
        "mirror": lambda: ("jpg", jpeg(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))),
    }
    if _heic_available():
        variants["heic"] = lambda: ("heic", encode(img, "HEIF", quality=80))
    return {kind: make() for kind, make in variants.items()}


def png16(img: Image.Image) -> bytes:
    """``img`` (``L`` or ``RGB``) as a 16-bit PNG, each 8-bit level v stored as 257 x v (as
    raw converters and scanners write them). Pillow writes only greyscale at 16 bits, so the
    PNG is written here: the signature, IHDR, one IDAT and IEND."""
    samples = np.asarray(img, dtype=">u2") * 257
    height, width = samples.shape[:2]
    colour_type = 0 if samples.ndim == 2 else 2
    rows = b"".join(b"\x00" + row.tobytes() for row in samples.reshape(height, -1))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")


def _heic_available() -> bool:
    """Whether pillow-heif is installed (then HEIC variants are made)."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def photo_lookalikes(source: Image.Image, rng: random.Random) -> dict[str, Image.Image]:
    """Look-alikes of the original window (0.05, 0.05, 0.9, 0.9) of ``source``."""
    shifted = window(source, 0.05 + rng.choice([-1, 1]) * 0.05, 0.05 + rng.uniform(-0.02, 0.02), 0.9, 0.9)
    burst = shifted.rotate(rng.choice([-2.0, 2.0]), resample=Image.Resampling.BICUBIC, expand=False)
    # A stereo pair: the same scene seen from 8% of the width to one side.
    stereo = window(source, 0.05 + rng.choice([-1, 1]) * 0.08, 0.05, 0.9, 0.9)
    return {"burst": burst, "stereo": stereo}


def overlap_pair(source: Image.Image) -> tuple[Image.Image, Image.Image]:
    """Two overlapping windows (70% of each side, offset by 30%) of one large picture."""
    return window(source, 0.0, 0.0, 0.7, 0.7), window(source, 0.3, 0.3, 0.7, 0.7)


PALETTES = {
    "light": ((245, 245, 240), (30, 30, 40), (200, 60, 50)),
    "dark": ((25, 27, 35), (235, 235, 235), (240, 120, 90)),
    "blue": ((30, 80, 170), (250, 250, 250), (250, 200, 60)),
    "green": ((40, 140, 70), (250, 250, 250), (250, 200, 60)),
}


def design(seed: int, text: str, palette: str) -> Image.Image:
    """A flat template (banner with shapes and a headline) in one colour palette."""
    rng = random.Random(seed)
    background, ink, accent = PALETTES[palette]
    img = Image.new("RGB", (1200, 800), background)
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x, y, r = rng.randint(0, 1200), rng.randint(0, 800), rng.randint(60, 220)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=accent)
    draw.rectangle((80, 560, 1120, 700), fill=ink)
    draw.text((100, 120), text, font=font(110), fill=ink)
    draw.text((110, 590), "example.com  |  +1 555 0100", font=font(60), fill=background)
    return img


def stripe_levels(seed: int, size: tuple[int, int] = (1600, 1000)) -> np.ndarray:
    """The shape of a striped design, as levels 0..1: diagonal stripes of uneven widths, a
    soft glow and a disc (as desktop wallpapers are drawn)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    slope = (0.5, -0.8)[seed % 2]
    position = (x + slope * y) / size[0]
    edges = np.cumsum(rng.uniform(0.03, 0.12, 40))
    stripes = (np.searchsorted(edges, position + 1.0) % 2).astype(np.float32)
    glow = np.exp(-(((x / size[0] - 0.7) ** 2) + ((y / size[1] - 0.3) ** 2)) * 6)
    cx, cy, r = rng.uniform(0.2, 0.4) * size[0], rng.uniform(0.4, 0.6) * size[1], 0.16 * size[1]
    disc = ((x - cx) ** 2 + (y - cy) ** 2 <= r * r).astype(np.float32)
    return np.clip(0.55 * stripes + 0.25 * glow + 0.6 * disc, 0.0, 1.0)


STRIPE_VERSIONS = {
    "light": ((240, 240, 236), (170, 176, 192)),
    "dark": ((48, 50, 58), (20, 21, 28)),
}
"""Background and ink colour of each tone version: the dark one has the light one's shape
(the same polarity, so its normalised thumbnail is the same), only its tone differs."""


def striped(seed: int, version: str) -> Image.Image:
    """A striped design in one tone version: ``light``, ``dark`` or ``inverted`` (the light one's negative)."""
    if version == "inverted":
        return ImageOps.invert(striped(seed, "light"))
    background, ink = (np.array(c, dtype=np.float32) for c in STRIPE_VERSIONS[version])
    levels = stripe_levels(seed)[:, :, None]
    return Image.fromarray(np.rint(background + (ink - background) * levels).astype(np.uint8))


def tone_copies(img: Image.Image) -> list[tuple[str, str, bytes]]:
    """(kind, suffix, bytes) of the copies a design is kept as: re-encoded, resized, brightness
    and contrast changed both ways, greyscale and 16-bit."""
    w, h = img.size
    return [
        ("reencode", "jpg", jpeg(img, 60)),
        ("resize-half", "jpg", jpeg(img.resize((w // 2, h // 2), Image.Resampling.LANCZOS))),
        ("brightness", "jpg", jpeg(ImageEnhance.Brightness(img).enhance(0.85))),
        ("brightness", "jpg", jpeg(ImageEnhance.Brightness(img).enhance(1.15))),
        ("contrast", "jpg", jpeg(ImageEnhance.Contrast(img).enhance(0.75))),
        ("contrast", "jpg", jpeg(ImageEnhance.Contrast(img).enhance(1.25))),
        ("greyscale", "jpg", jpeg(img.convert("L"))),
        ("png16-grey", "png", png16(img.convert("L"))),
    ]


TEMPLATE_TEXTS = (
    ("Summer Sale", "Open Day"),
    ("Team Offsite", "Board Meeting"),
    ("New Arrivals", "Last Chance"),
    ("Welcome 2025", "Quarterly Report"),
)


def build(out: Path, limit: int | None) -> dict[str, object]:
    """Write the corpus into ``out`` and return its labels."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rng = random.Random(20241125)
    files: list[dict[str, object]] = []

    def write(name: str, data: bytes, group: str, kind: str, negative_of: str | None = None) -> str:
        (out / name).write_bytes(data)
        files.append({"file": name, "group": group, "kind": kind, "negative_of": negative_of})
        return name

    chosen = sources()[:limit] if limit else sources()
    for name, path in chosen:
        source = load(path)
        if ImageStat.Stat(source.convert("L")).stddev[0] < FLAT_STD:
            print(f"left out {path.name}: one flat colour, not a photograph", file=sys.stderr)
            continue
        img = window(source, 0.05, 0.05, 0.9, 0.9)
        original = jpeg(img, 92)
        base = write(f"{name}.jpg", original, name, "original")
        for kind, (suffix, data) in near_variants(img, original, rng).items():
            write(f"{name}~{kind}.{suffix}", data, name, kind)
        for kind, look in photo_lookalikes(source, rng).items():
            write(f"{name}~{kind}.jpg", jpeg(look), f"{name}~{kind}", kind, negative_of=base)
        if path.name == "motorcycle_left.png":  # a real stereo pair
            right = window(load(path.with_name("motorcycle_right.png")), 0.05, 0.05, 0.9, 0.9)
            write(f"{name}~stereo-real.jpg", jpeg(right), f"{name}~stereo-real", "stereo", negative_of=base)
        if min(source.size) >= 1000:
            first, second = overlap_pair(source)
            a = write(f"{name}~overlap-a.jpg", jpeg(first), f"{name}~overlap-a", "overlap-a")
            write(f"{name}~overlap-b.jpg", jpeg(second), f"{name}~overlap-b", "overlap", negative_of=a)
    for index, (first_text, second_text) in enumerate(TEMPLATE_TEXTS):
        stem = f"design{index}"
        light = write(f"{stem}-light.png", encode(design(index, first_text, "light"), "PNG"), f"{stem}-light", "design")
        write(f"{stem}-light~reencode.jpg", jpeg(design(index, first_text, "light"), 60), f"{stem}-light", "reencode")
        write(
            f"{stem}-light~greyscale.jpg",
            jpeg(design(index, first_text, "light").convert("L")),
            f"{stem}-light",
            "greyscale",
        )
        write(
            f"{stem}-other-text.png",
            encode(design(index, second_text, "light"), "PNG"),
            f"{stem}-other-text",
            "template-text",
            negative_of=light,
        )
        for palette in ("dark", "blue", "green"):
            write(
                f"{stem}-{palette}.png",
                encode(design(index, first_text, palette), "PNG"),
                f"{stem}-{palette}",
                "theme",
                negative_of=light,
            )
    for seed in range(2):
        light = ""
        for version in ("light", "dark", "inverted"):
            stem = f"stripes{seed}-{version}"
            img = striped(seed, version)
            design_file = write(f"{stem}.png", encode(img, "PNG"), stem, "design")
            if version == "light":
                light = design_file
            else:
                files[-1]["tone_version_of"] = light
            for index, (kind, suffix, data) in enumerate(tone_copies(img)):
                write(f"{stem}~{kind}{index}.{suffix}", data, stem, kind)
    _add_theme_pairs(files)
    labels: dict[str, object] = {"files": files}
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    return labels


def _add_theme_pairs(files: list[dict[str, object]]) -> None:
    """Label the GNOME light/dark wallpaper originals as theme look-alikes of each other."""
    originals = {f["group"]: f for f in files if f["kind"] == "original"}
    for group, record in originals.items():
        stem = str(group)
        if stem.startswith("wall-") and stem.endswith("-d") and f"{stem[:-2]}-l" in originals:
            record["theme_of"] = originals[f"{stem[:-2]}-l"]["file"]


def main() -> None:
    """Command-line entry: generate the corpus."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N sources")
    args = parser.parse_args()
    labels = build(args.out, args.limit)
    print(f"wrote {len(labels['files'])} files to {args.out}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
