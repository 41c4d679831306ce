"""The pair decision at the shape of real archives: tone versions of one design, wide crops, 16-bit copies."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from dam_dedupe.fingerprint import fingerprint_stream
from dam_dedupe.matcher import PRESETS, compare, find_groups
from dam_dedupe.matcher.compare import judge
from dam_dedupe.records import Fingerprint
from tests.test_matcher_fine import gravel
from tests.test_matcher_groups import ORIGINAL, SOURCE, fingerprint, scene, window

BALANCED = PRESETS["balanced"]


def stripe_levels(size: tuple[int, int] = (900, 560)) -> np.ndarray:
    """A striped design's shape as levels 0..1: diagonal stripes of uneven widths, a glow and a disc."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    position = (x + 0.5 * y) / size[0]
    stripes = (np.searchsorted(np.cumsum(rng.uniform(0.03, 0.12, 40)), position) % 2).astype(np.float32)
    glow = np.exp(-(((x / size[0] - 0.7) ** 2) + ((y / size[1] - 0.3) ** 2)) * 6)
    disc = ((x - 0.3 * size[0]) ** 2 + (y - 0.5 * size[1]) ** 2 <= (0.16 * size[1]) ** 2).astype(np.float32)
    return np.clip(0.55 * stripes + 0.25 * glow + 0.6 * disc, 0.0, 1.0)


def striped(background: tuple[int, int, int], ink: tuple[int, int, int]) -> Image.Image:
    """The striped design drawn from ``background`` (level 0) to ``ink`` (level 1)."""
    start, end = np.array(background, dtype=np.float32), np.array(ink, dtype=np.float32)
    return Image.fromarray(np.rint(start + (end - start) * stripe_levels()[:, :, None]).astype(np.uint8))


LIGHT = striped((240, 240, 236), (170, 176, 192))
DARK = striped((48, 50, 58), (20, 21, 28))
"""The dark version has the light one's shape and polarity: only the tone tells them apart."""


def tone_copies(img: Image.Image) -> list[Fingerprint]:
    """Copies that keep a picture's identity: brightness +-15%, contrast +-25%, greyscale."""
    return [
        fingerprint(ImageEnhance.Brightness(img).enhance(0.85), quality=90),
        fingerprint(ImageEnhance.Brightness(img).enhance(1.15), quality=90),
        fingerprint(ImageEnhance.Contrast(img).enhance(0.75), quality=90),
        fingerprint(ImageEnhance.Contrast(img).enhance(1.25), quality=90),
        fingerprint(img.convert("L"), quality=90),
    ]


def test_light_and_dark_versions_of_one_design_stay_apart_while_their_copies_join() -> None:
    light, dark = fingerprint(LIGHT, "PNG"), fingerprint(DARK, "PNG")
    assert compare(light, dark, BALANCED) is None
    library = [light, *tone_copies(LIGHT), dark, *tone_copies(DARK)]
    assert find_groups(library, BALANCED) == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]


def test_a_copy_with_brightness_contrast_or_colour_changed_says_so_in_its_evidence() -> None:
    light = fingerprint(LIGHT, "PNG")
    darker = fingerprint(ImageEnhance.Brightness(LIGHT).enhance(0.85), quality=90)
    result = compare(light, darker, BALANCED)
    assert result is not None and "brightness changed" in result.evidence["relation"]  # type: ignore[operator]
    assert 0.1 < float(result.evidence["tone_change"]) < 0.2  # type: ignore[arg-type]


def test_a_negative_is_not_a_copy_of_its_picture() -> None:
    for picture in (LIGHT, ORIGINAL):
        original = fingerprint(picture, "PNG")
        negative = fingerprint(ImageOps.invert(picture), "PNG")
        assert compare(original, negative, BALANCED) is None
        assert find_groups([original, negative], BALANCED) == []


@pytest.mark.parametrize("margin", [0.04, 0.045, 0.05])
def test_a_crop_of_four_to_five_percent_a_side_is_found(margin: float) -> None:
    crop = window(ORIGINAL, margin, margin * 0.9, 1 - margin - margin * 1.1, 1 - margin * 0.9 - margin)
    original, cropped = fingerprint(ORIGINAL, quality=92), fingerprint(crop, quality=92)
    assert find_groups([original, cropped], BALANCED) == [[0, 1]]
    result = compare(original, cropped, BALANCED)
    assert result is not None
    relation = result.evidence["relation"]
    assert "cropped" in relation or "cropped or reshaped (margins not measured)" in relation  # type: ignore[operator]


def test_a_crop_that_moves_every_hash_is_found_through_the_middle_of_its_original() -> None:
    # Cropping 4-5% a side rescales every frequency by 10%: this crop's dct hash is 12 bits from
    # its original's, its low hash 9 and its centre hash 10, beyond every radius; the dct hash of
    # the original's middle 91% (its inner hash) is 1 bit from the crop's.
    picture = window(scene(0), 0.05, 0.05, 0.9, 0.9)
    crop = window(picture, 0.045, 0.042, 0.907, 0.912)
    original, cropped = fingerprint(picture, quality=92), fingerprint(crop, quality=85)
    assert find_groups([original, cropped], BALANCED) == [[0, 1]]
    assert find_groups([cropped, original], BALANCED) == [[0, 1]]


def test_a_resized_copy_is_not_said_to_be_cropped() -> None:
    original = fingerprint(ORIGINAL, quality=92)
    half = fingerprint(ORIGINAL.resize((ORIGINAL.width // 2, ORIGINAL.height // 2)), quality=92)
    result = compare(original, half, BALANCED)
    assert result is not None and "resized" in result.evidence["relation"]  # type: ignore[operator]
    assert not any("crop" in word for word in result.evidence["relation"])  # type: ignore[attr-defined]


def test_a_shifted_view_is_still_not_a_crop() -> None:
    original = fingerprint(ORIGINAL, quality=92)
    shifted = fingerprint(window(SOURCE, 0.10, 0.05, 0.9, 0.9), quality=92)
    assert find_groups([original, shifted], BALANCED) == []


def png16(img: Image.Image) -> bytes:
    """``img`` (``L`` or ``RGB``) as a 16-bit PNG, each 8-bit level v stored as 257 x v; Pillow
    writes no 16-bit colour PNG, so the chunks are written here."""
    samples = np.asarray(img, dtype=">u2") * 257
    height, width = samples.shape[:2]
    rows = b"".join(b"\x00" + row.tobytes() for row in samples.reshape(height, -1))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, 0 if samples.ndim == 2 else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_sixteen_bit_png_copy_joins_its_eight_bit_original(mode: str) -> None:
    picture = ORIGINAL.convert(mode)
    original = fingerprint(picture, quality=92)
    copy = fingerprint_stream(io.BytesIO(png16(picture)))
    assert copy.format == "PNG"
    assert find_groups([original, copy], BALANCED) == [[0, 1]]
    eight_bit_png = fingerprint(picture, "PNG")
    assert copy.perceptual["dct"] == eight_bit_png.perceptual["dct"]


def test_a_wide_crop_of_a_fine_texture_is_verified_as_a_copy() -> None:
    # The wider the crop, the further its resampling is from the original's: a crop of 4.5%
    # a side of small stones leaves more residual than a crop of 1% does, and must still pass.
    texture = gravel()
    original = fingerprint(texture, quality=92)
    cropped = fingerprint(window(texture, 0.045, 0.045, 0.91, 0.91), quality=92)
    verdict = judge(original, cropped, "identity", BALANCED)
    assert verdict is not None and verdict.cropped == "second"
    assert all(0.035 <= margin <= 0.055 for margin in verdict.crop)


def test_a_wide_crop_of_a_photographed_texture_joins_its_original() -> None:
    # scikit-image's gravel cut by 4-4.5% a side: nominated only through the inner hash, and its
    # crop leaves a residual of 0.278 (1.26x max_residual) on small stones resampled differently.
    skimage = pytest.importorskip("skimage")
    with Image.open(Path(skimage.data_dir) / "gravel.png") as source:
        picture = window(source.convert("RGB"), 0.05, 0.05, 0.9, 0.9)
    crop = window(picture, 0.045, 0.04, 0.91, 0.92)
    original, cropped = fingerprint(picture, quality=92), fingerprint(crop, quality=92)
    assert find_groups([original, cropped], BALANCED) == [[0, 1]]


def test_a_sixteen_bit_copy_of_a_fine_pixel_pattern_joins_its_original() -> None:
    # A 16-bit greyscale picture must be reduced like an 8-bit one before it is described:
    # at full size a pattern of small squares aliases otherwise and no longer matches.
    cells = np.random.default_rng(2).integers(0, 2, (240, 240), dtype=np.uint8) * 40 + 150
    pattern = Image.fromarray(cells).resize((1200, 1200), Image.Resampling.NEAREST)
    original = fingerprint(pattern.convert("RGB"), quality=92)
    copy = fingerprint_stream(io.BytesIO(png16(pattern)))
    assert find_groups([original, copy], BALANCED) == [[0, 1]]
