"""Real files made by real writers for the formats tests: decks, Word documents, PDFs, a DNG, a PSD, an AVIF.

Each embeds or re-encodes a copy of one library image (scikit-image's astronaut), so a scan must
group every copy, wherever it lives, with the library original.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage import data


def library_image() -> Image.Image:
    """The library original: a photograph (512x512 RGB)."""
    return Image.fromarray(data.astronaut())


def other_image(seed: int) -> Image.Image:
    """A picture unlike the library image (a coffee cup, a chequerboard, shapes): a copy of nothing."""
    if seed == 0:
        return Image.fromarray(data.coffee())
    if seed == 1:
        return Image.fromarray(data.chelsea())
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (400, 300), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(0, 350, 2))
        draw.ellipse((x, y, x + 60, y + 40), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return img


def encoded(img: Image.Image, fmt: str, size: tuple[int, int] | None = None, quality: int = 85) -> bytes:
    """``img`` resized to ``size`` (when given) and encoded as ``fmt``."""
    if size is not None:
        img = img.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP", "AVIF") else {}))
    return out.getvalue()


def make_pptx(path: Path, pictures: list[bytes]) -> Path:
    """A PowerPoint deck (python-pptx) with one slide per picture."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for picture in pictures:
        slide = deck.slides.add_slide(deck.slide_layouts[6])
        slide.shapes.add_picture(io.BytesIO(picture), Inches(1), Inches(1), width=Inches(4))
    path.parent.mkdir(parents=True, exist_ok=True)
    deck.save(str(path))
    return path


def make_docx(path: Path, pictures: list[bytes]) -> Path:
    """A Word document (python-docx) with a paragraph and the pictures."""
    from docx import Document
    from docx.shared import Inches

    doc = Document()
    doc.add_paragraph("Brand guidelines: use the approved photograph only.")
    for picture in pictures:
        doc.add_picture(io.BytesIO(picture), width=Inches(3))
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(str(path))
    return path


def make_xlsx(path: Path, pictures: list[bytes]) -> Path:
    """An Excel workbook (openpyxl) with the pictures anchored on its first sheet."""
    from openpyxl import Workbook
    from openpyxl.drawing.image import Image as SheetImage

    book = Workbook()
    sheet = book.active
    sheet["A1"] = "Campaign assets"
    for row, picture in enumerate(pictures):
        sheet.add_image(SheetImage(io.BytesIO(picture)), f"B{2 + 20 * row}")
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(str(path))
    return path


def make_pdf(path: Path, pictures: list[Image.Image]) -> Path:
    """A PDF (Pillow's writer) with one page per picture, each page one image XObject."""
    path.parent.mkdir(parents=True, exist_ok=True)
    first, *rest = [p.convert("RGB") for p in pictures]
    first.save(path, "PDF", save_all=True, append_images=rest, resolution=72.0)
    return path


def encrypt_pdf(source: Path, target: Path, password: str) -> Path:
    """``source`` encrypted with a user password (pypdf's writer)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(source).pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-256")
    with target.open("wb") as out:
        writer.write(out)
    return target


XYZ_TO_LINEAR_SRGB = (3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570)
"""The DNG ``ColorMatrix1`` (XYZ to camera space) of a camera whose sensor sees linear sRGB."""


def make_dng(path: Path, img: Image.Image) -> Path:
    """A camera RAW file (DNG, written by pidng): ``img`` as 12-bit RGGB Bayer sensor data, no preview.

    Sensor data is linear light, so the sRGB picture is linearised first; LibRaw must demosaic
    it and apply its tone curve, as it does for a real camera's file. White balance is neutral.
    """
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, Orientation, PhotometricInterpretation

    srgb = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    rgb = np.rint(linear * 4095).astype(np.uint16)
    height, width = rgb.shape[:2]
    bayer = np.zeros((height, width), np.uint16)
    bayer[0::2, 0::2] = rgb[0::2, 0::2, 0]
    bayer[0::2, 1::2] = rgb[0::2, 1::2, 1]
    bayer[1::2, 0::2] = rgb[1::2, 0::2, 1]
    bayer[1::2, 1::2] = rgb[1::2, 1::2, 2]
    tags = DNGTags()
    for tag, value in (
        (Tag.ImageWidth, width),
        (Tag.ImageLength, height),
        (Tag.TileWidth, width),
        (Tag.TileLength, height),
        (Tag.Orientation, Orientation.Horizontal),
        (Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array),
        (Tag.SamplesPerPixel, 1),
        (Tag.BitsPerSample, 16),
        (Tag.CFARepeatPatternDim, [2, 2]),
        (Tag.CFAPattern, CFAPattern.RGGB),
        (Tag.BlackLevel, 0),
        (Tag.WhiteLevel, 4095),
        (Tag.ColorMatrix1, [[round(v * 10000), 10000] for v in XYZ_TO_LINEAR_SRGB]),
        (Tag.CalibrationIlluminant1, CalibrationIlluminant.D65),
        (Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]]),
        (Tag.Make, "dam-dedupe"),
        (Tag.Model, "test camera"),
        (Tag.DNGVersion, DNGVersion.V1_4),
        (Tag.DNGBackwardVersion, DNGVersion.V1_2),
    ):
        tags.set(tag, value)
    writer = RAW2DNG()
    writer.options(tags, path=str(path.parent), compress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.convert(bayer, filename=path.stem)
    written = path.parent / f"{path.stem}.dng"
    if written != path:
        written.rename(path)
    return path


def make_psd(path: Path, img: Image.Image) -> Path:
    """A layered Photoshop document (psd-tools' writer): the photograph, and a small badge layer over it."""
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer

    psd = PSDImage.new("RGB", img.size)
    psd.append(PixelLayer.frompil(img.convert("RGB"), psd, "photo"))
    psd.append(PixelLayer.frompil(Image.new("RGB", (24, 24), (250, 200, 0)), psd, "badge", top=8, left=8))
    path.parent.mkdir(parents=True, exist_ok=True)
    psd.save(str(path))
    return path
