"""Grouping and comparing: every copy kind is found, look-alikes are not, nothing chains."""

from __future__ import annotations

import dataclasses
import io
import itertools
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from dam_dedupe.config import matching_settings
from dam_dedupe.errors import ConfigError
from dam_dedupe.fingerprint import fingerprint_stream
from dam_dedupe.matcher import PRESETS, compare, find_groups
from dam_dedupe.matcher.compare import judge
from dam_dedupe.matcher.formation import form_groups
from dam_dedupe.records import Fingerprint

BALANCED = PRESETS["balanced"]


def scene(seed: int, size: tuple[int, int] = (900, 700)) -> Image.Image:
    """A deterministic photograph-like picture: smooth colour fields, shapes and fine texture."""
    rng = np.random.default_rng(seed)
    fields = [
        Image.fromarray(rng.integers(0, 256, (7, 9), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
        for _ in range(3)
    ]
    img = Image.merge("RGB", fields)
    draw = ImageDraw.Draw(img)
    for _ in range(14):
        x, y = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        r = int(rng.integers(20, 110))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x - r, y - r, x + r, y + r), fill=colour)
    noise = rng.normal(0, 6, (size[1], size[0], 1))
    return Image.fromarray(np.clip(np.asarray(img, dtype=float) + noise, 0, 255).astype(np.uint8))


def window(img: Image.Image, left: float, top: float, width: float, height: float) -> Image.Image:
    """A window of ``img`` in fractions of its size."""
    w, h = img.size
    return img.crop((round(left * w), round(top * h), round((left + width) * w), round((top + height) * h)))


def fingerprint(img: Image.Image, fmt: str = "JPEG", **params: object) -> Fingerprint:
    """Encode ``img`` in ``fmt`` and fingerprint the bytes as the scan does."""
    out = io.BytesIO()
    img.save(out, fmt, **params)
    out.seek(0)
    return fingerprint_stream(out)


SOURCE = scene(1)
ORIGINAL = window(SOURCE, 0.05, 0.05, 0.9, 0.9)


def watermarked(img: Image.Image) -> Image.Image:
    """A small semi-transparent text watermark in a corner."""
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(
        (20, img.height - 40), "© Example 2024", font=ImageFont.load_default(size=24), fill=(255, 255, 255, 170)
    )
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def with_logo(img: Image.Image, corner: str) -> Image.Image:
    """An opaque red disc logo (about 1.2% of the area) in a bottom corner."""
    out = img.copy()
    side = int(min(img.size) * 0.11)
    x = 10 if corner == "left" else img.width - side - 10
    ImageDraw.Draw(out).ellipse((x, img.height - side - 10, x + side, img.height - 10), fill=(220, 30, 40))
    return out


def exif_turned(img: Image.Image) -> Fingerprint:
    """Pixels stored turned clockwise with an EXIF tag that turns them back."""
    exif = Image.Exif()
    exif[0x0112] = 8
    return fingerprint(img.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=90, exif=exif.tobytes())


COPIES: dict[str, Callable[[], Fingerprint]] = {
    "reencode": lambda: fingerprint(ORIGINAL, "JPEG", quality=50),
    "png": lambda: fingerprint(ORIGINAL, "PNG"),
    "webp": lambda: fingerprint(ORIGINAL, "WEBP", quality=75),
    "tiff": lambda: fingerprint(ORIGINAL, "TIFF"),
    "thumbnail-eighth": lambda: fingerprint(ORIGINAL.resize((286, 223), Image.Resampling.BICUBIC)),
    "exif-orientation": lambda: exif_turned(ORIGINAL),
    "crop": lambda: fingerprint(window(ORIGINAL, 0.03, 0.01, 0.95, 0.96)),
    "brightness": lambda: fingerprint(ImageEnhance.Brightness(ORIGINAL).enhance(1.15)),
    "contrast": lambda: fingerprint(ImageEnhance.Contrast(ORIGINAL).enhance(0.8)),
    "colour-shift": lambda: fingerprint(ImageEnhance.Color(ORIGINAL).enhance(1.2)),
    "watermark": lambda: fingerprint(watermarked(ORIGINAL)),
    "logo": lambda: fingerprint(with_logo(ORIGINAL, "right"), "PNG"),
    "greyscale": lambda: fingerprint(ORIGINAL.convert("L")),
}

LOOKALIKES: dict[str, Callable[[], Fingerprint]] = {
    "burst": lambda: fingerprint(window(SOURCE, 0.1, 0.06, 0.9, 0.9).rotate(2.0, Image.Resampling.BICUBIC)),
    "stereo": lambda: fingerprint(window(SOURCE, 0.0, 0.05, 0.9, 0.9)),
    "overlapping crop": lambda: fingerprint(window(SOURCE, 0.3, 0.3, 0.7, 0.7)),
    "dark theme": lambda: fingerprint(Image.eval(ORIGINAL, lambda v: 255 - v)),
    "colour theme": lambda: fingerprint(Image.merge("RGB", ORIGINAL.split()[::-1])),
    "other scene": lambda: fingerprint(window(scene(2), 0.05, 0.05, 0.9, 0.9)),
}


@pytest.fixture(scope="module")
def original() -> Fingerprint:
    return fingerprint(ORIGINAL, "JPEG", quality=92)


@pytest.mark.parametrize("kind", list(COPIES))
def test_each_copy_kind_is_grouped_as_near(original: Fingerprint, kind: str) -> None:
    copy = COPIES[kind]()
    assert find_groups([original, copy], BALANCED) == [[0, 1]]
    result = compare(original, copy, BALANCED)
    assert result is not None and result.match == "near"
    hashes = result.evidence["hashes"]
    assert min(hashes[f]["distance"] for f in ("dct", "low", "centre")) <= BALANCED.candidate_radius  # type: ignore[index]
    assert result.evidence["relation"]


@pytest.mark.parametrize("kind", list(LOOKALIKES))
def test_lookalikes_are_not_grouped(original: Fingerprint, kind: str) -> None:
    lookalike = LOOKALIKES[kind]()
    assert find_groups([original, lookalike], BALANCED) == []
    assert compare(original, lookalike, BALANCED) is None


@pytest.mark.parametrize(
    "turn",
    [
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_180,
        Image.Transpose.ROTATE_270,
        Image.Transpose.FLIP_LEFT_RIGHT,
    ],
)
def test_rotated_and_mirrored_copies_are_transformed(original: Fingerprint, turn: Image.Transpose) -> None:
    turned = fingerprint(ORIGINAL.transpose(turn))
    assert find_groups([original, turned], BALANCED) == [[0, 1]]
    result = compare(original, turned, BALANCED)
    assert result is not None and result.match == "transformed"
    assert result.evidence["symmetry"] != "identity"
    without = BALANCED.with_overrides(transforms=False)
    assert find_groups([original, turned], without) == []


def test_identical_bytes_are_exact(original: Fingerprint) -> None:
    result = compare(original, original, PRESETS["exact"])
    assert result is not None and result.match == "exact"
    assert find_groups([original, COPIES["png"](), original], PRESETS["exact"]) == [[0, 2]]


def tinted(img: Image.Image, shift: int) -> Image.Image:
    """``img`` with its blue-difference chroma raised by ``shift``: the grey picture (and so every
    hash) is unchanged, only the colour moves."""
    luma, blue, red = img.convert("YCbCr").split()
    return Image.merge("YCbCr", (luma, blue.point(lambda v: min(255, v + shift)), red)).convert("RGB")


def test_no_chaining_through_an_intermediate() -> None:
    # B = A tinted by 16: a copy of A. C = A tinted by 32: a copy of B, but not of A (twice
    # the colour change, beyond the group slack). The hashes of all three are alike, so every
    # pair is a candidate; single linkage along A-B and B-C would make one group of all three.
    a, b, c = (fingerprint(tinted(ORIGINAL, shift), "PNG") for shift in (0, 16, 32))
    assert judge(a, b, "identity", BALANCED) is not None
    assert judge(b, c, "identity", BALANCED) is not None
    assert compare(a, c, BALANCED) is None
    # Whichever comes first (and becomes the representative), A and C never end up in one group.
    for order in itertools.permutations(range(3)):
        fps = [[a, b, c][i] for i in order]
        groups = [sorted(order[i] for i in group) for group in find_groups(fps, BALANCED)]
        assert groups in ([[0, 1]], [[1, 2]]), order


def test_a_lookalike_that_came_first_gives_up_the_crop_it_claimed() -> None:
    # 0 is a burst a pixel wider than the original, so it is taken first, and claims 3, a crop
    # that is a copy of either view; 1 (a mirrored copy) claims 2, the original; 4 (a small copy)
    # joins them through 2. No one asks for 3's candidates again: only 4 meets it, in the burst's
    # group. The two groups must then be checked as one, and the burst (no copy of the others) leave.
    copies = {frozenset(pair) for pair in [(0, 3), (1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]}
    nominated = {0: [3, 2], 1: [2], 2: [1, 3, 4], 3: [0, 2, 4], 4: [2, 3, 1]}

    def neighbours(asked: list[int]) -> list[list[tuple[int, str]]]:
        return [[(other, "identity") for other in nominated[image]] for image in asked]

    def edges(pairs: list[tuple[int, int, str]]) -> list[tuple[float, float] | None]:
        return [(0.1, 1.0) if frozenset((a, b)) in copies else None for a, b, _ in pairs]

    def consistent(pairs: list[tuple[int, int]]) -> list[bool]:
        return [frozenset(pair) in copies for pair in pairs]

    groups = form_groups(range(5), neighbours, edges, consistent)
    assert sorted(sorted(group) for group in groups) == [[0], [1, 2, 3, 4]]


def test_every_pair_in_a_group_is_explained(original: Fingerprint) -> None:
    fps = [original, *(make() for make in COPIES.values())]
    groups = find_groups(fps, BALANCED)
    assert groups and max(len(g) for g in groups) >= len(fps) // 2
    for group in groups:
        for i in group:
            for j in group:
                if i != j:
                    assert compare(fps[i], fps[j], BALANCED) is not None


def test_featureless_pictures_group_by_colour_only() -> None:
    grey = Image.new("RGB", (400, 300), (120, 120, 120))
    blue = Image.new("RGB", (400, 300), (40, 60, 200))
    fps = [fingerprint(grey), fingerprint(grey, "PNG"), fingerprint(blue), fingerprint(blue.resize((200, 150)), "PNG")]
    assert find_groups(fps, BALANCED) == [[0, 1], [2, 3]]


def test_presets_and_config() -> None:
    assert set(PRESETS) == {"exact", "strict", "balanced", "loose"}
    assert PRESETS["strict"].max_residual < BALANCED.max_residual < PRESETS["loose"].max_residual
    custom = matching_settings({"preset": "strict", "max_changed": 0.05})
    assert custom.preset == "strict" and custom.max_changed == 0.05
    with pytest.raises(ConfigError, match="unknown matching preset"):
        matching_settings({"preset": "fuzzy"})
    with pytest.raises(ConfigError, match="no setting"):
        matching_settings({"max_distance": 3})


def test_thumbnails_are_asked_for_only_where_a_pair_is_verified(original: Fingerprint) -> None:
    # A million fingerprints need not hold a million 4 KiB thumbnails: the matcher asks for
    # those of the candidate pairs only.
    copy = COPIES["reencode"]()
    others = [fingerprint(scene(seed)) for seed in (11, 12, 13)]
    full = [original, *others, copy]
    bare = [dataclasses.replace(fp, thumbnail=None) for fp in full]
    asked: list[int] = []

    def thumbnails(indices: list[int]) -> dict[int, bytes]:
        asked.extend(indices)
        return {i: full[i].thumbnail for i in indices if full[i].thumbnail}

    assert find_groups(bare, BALANCED, thumbnails) == find_groups(full, BALANCED) == [[0, 4]]
    assert sorted(asked) == [0, 4]
