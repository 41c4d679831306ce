"""The second, finer check on 64x64 thumbnails: what the 32x32 check alone would group wrongly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from dam_dedupe.matcher import PRESETS, compare, find_groups
from dam_dedupe.matcher.compare import judge
from dam_dedupe.records import Fingerprint
from tests.test_matcher_groups import fingerprint, watermarked, window

BALANCED = PRESETS["balanced"]
COARSE_ONLY = dataclasses.replace(BALANCED, max_fine_residual=float("inf"), max_hotspot=float("inf"))
"""``balanced`` without the finer check, to show that each case needs it."""


def template(headline: str) -> Image.Image:
    """A flat banner: shapes, a headline and a footer bar, as marketing templates are made."""
    img = Image.new("RGB", (1200, 800), (245, 243, 238))
    draw = ImageDraw.Draw(img)
    for x, y, r in ((80, 90, 140), (1020, 260, 100), (560, 760, 130)):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(200, 60, 50))
    draw.rectangle((80, 560, 1120, 700), fill=(30, 30, 40))
    draw.text((100, 180), headline, font=ImageFont.load_default(size=110), fill=(30, 30, 40))
    draw.text((110, 590), "example.com  |  +1 555 0100", font=ImageFont.load_default(size=60), fill=(245, 243, 238))
    return img


def smooth_scene(size: tuple[int, int] = (1200, 900)) -> Image.Image:
    """A low-detail picture (a sky with soft shapes), where a shifted view leaves little residual."""
    rng = np.random.default_rng(7)
    fields = [
        Image.fromarray(rng.integers(40, 220, (4, 5), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
        for _ in range(3)
    ]
    return Image.merge("RGB", fields)


@pytest.fixture(scope="module")
def banner() -> Fingerprint:
    return fingerprint(template("Summer Sale"), "PNG")


def test_a_template_with_another_headline_is_not_a_copy(banner: Fingerprint) -> None:
    other = fingerprint(template("Open Day"), "PNG")
    assert find_groups([banner, other], BALANCED) == []
    assert judge(banner, other, "identity", BALANCED) is None
    assert find_groups([banner, other], COARSE_ONLY) == [[0, 1]]


def test_a_template_watermarked_in_a_corner_or_reencoded_is_a_copy(banner: Fingerprint) -> None:
    copies = [fingerprint(watermarked(template("Summer Sale"))), fingerprint(template("Summer Sale"), quality=60)]
    assert find_groups([banner, *copies], BALANCED) == [[0, 1, 2]]
    result = compare(banner, copies[0], BALANCED)
    assert result is not None and result.evidence["fine"] is not None


def test_a_shifted_turned_view_of_a_smooth_scene_is_not_a_copy_but_its_crop_is() -> None:
    source = smooth_scene()
    original = fingerprint(window(source, 0.05, 0.05, 0.9, 0.9))
    burst = fingerprint(window(source.rotate(2.0, Image.Resampling.BICUBIC), 0.08, 0.06, 0.9, 0.9))
    crop = fingerprint(window(source, 0.08, 0.06, 0.86, 0.88))
    assert find_groups([original, burst], COARSE_ONLY) == [[0, 1]]
    assert find_groups([original, burst], BALANCED) == []
    assert find_groups([original, crop], BALANCED) == [[0, 1]]


def test_fingerprints_of_an_older_kind_match_byte_for_byte_only_until_renewed(banner: Fingerprint) -> None:
    old = dataclasses.replace(banner, perceptual={k: v for k, v in banner.perceptual.items() if k != "tone"}, version=2)
    renamed_copy = dataclasses.replace(old)
    near_copy = fingerprint(template("Summer Sale"), quality=60)
    assert find_groups([banner, near_copy], BALANCED) == [[0, 1]]
    assert find_groups([old, near_copy, renamed_copy], BALANCED) == [[0, 2]]
    assert compare(old, near_copy, BALANCED) is None


def faint_wallpaper(size: int = 1400) -> Image.Image:
    """A flat purple wallpaper with a faint pattern of dots and a soft glow, a few grey levels deep
    (as GNOME's ``symbolic`` wallpapers are)."""
    rng = np.random.default_rng(11)
    glow = Image.fromarray(rng.integers(0, 4, (3, 3), dtype=np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    picture = Image.merge("RGB", [Image.new("L", (size, size), level) for level in (112, 62, 148)])
    layer = np.asarray(picture, dtype=np.int16) + np.asarray(glow, dtype=np.int16)[:, :, None]
    for x, y in rng.integers(0, size, (1500, 2)):
        layer[y : y + 14, x : x + 14] += 3
    return Image.fromarray(np.clip(layer, 0, 255).astype(np.uint8))


def test_a_faint_pattern_keeps_its_copies_together_and_its_windows_apart() -> None:
    # Stored as raw grey levels, the pattern would be one or two levels deep: brightened or
    # watermarked copies would not match, while any two windows of it would (one colour).
    wallpaper = faint_wallpaper()
    original = fingerprint(wallpaper, quality=92)
    brighter = fingerprint(wallpaper.point(lambda v: min(255, int(v * 1.15))), quality=92)
    greyscale = fingerprint(wallpaper.convert("L"), quality=92)
    marked = fingerprint(watermarked(wallpaper), quality=92)
    for copy in (brighter, greyscale, marked):
        assert compare(original, copy, BALANCED) is not None
    assert find_groups([original, brighter, greyscale, marked], BALANCED) == [[0, 1, 2, 3]]
    first, second = window(wallpaper, 0.0, 0.0, 0.7, 0.7), window(wallpaper, 0.3, 0.3, 0.7, 0.7)
    assert find_groups([fingerprint(first, quality=92), fingerprint(second, quality=92)], BALANCED) == []


def gravel(size: tuple[int, int] = (1000, 800)) -> Image.Image:
    """A fine grey texture of small stones, with detail near the thumbnail's resolution."""
    rng = np.random.default_rng(5)
    stones = Image.fromarray(rng.integers(60, 200, (size[1] // 20, size[0] // 20), dtype=np.uint8))
    return stones.resize(size, Image.Resampling.BICUBIC).convert("RGB")


def test_a_cropped_texture_is_a_copy_but_a_shifted_one_of_the_same_size_is_not() -> None:
    texture = gravel()
    original = fingerprint(texture, quality=92)
    cropped = fingerprint(window(texture, 0.03, 0.02, 0.93, 0.95), quality=92)
    assert judge(original, cropped, "identity", BALANCED) is not None
    shifted = fingerprint(texture.transform(texture.size, Image.Transform.AFFINE, (1, 0, 40, 0, 1, 0)), quality=92)
    assert judge(original, shifted, "identity", BALANCED) is None
