"""PNG and WebP decoded through libvips: the same reduced picture Pillow would make, and
Pillow's words for what libvips cannot decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dam_dedupe.errors import AssetError
from dam_dedupe.imaging import decode
from dam_dedupe.libvips import reduce_with_vips
from tests.test_matcher_accuracy import png16


def photo(size: tuple[int, int] = (1200, 900)) -> Image.Image:
    """A smooth picture with some texture, as photographs have."""
    rng = np.random.default_rng(3)
    base = [Image.fromarray(rng.integers(0, 255, (6, 8), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)]
    grain = rng.integers(-12, 12, (size[1], size[0]), dtype=np.int16)
    bands = [
        np.clip(np.asarray(base[0], dtype=np.int16) + grain + shift, 0, 255).astype(np.uint8) for shift in (0, 30, -30)
    ]
    return Image.merge("RGB", [Image.fromarray(b) for b in bands])


def encoded(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_libvips_reduces_as_pillow_does(fmt: str) -> None:
    picture = photo()
    data = encoded(picture, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    reduced = reduce_with_vips(io.BytesIO(data), len(data), fmt, 4)
    assert reduced is not None and reduced.mode == "RGB"
    expected = picture.reduce(4)
    assert abs(reduced.width - expected.width) <= 1 and abs(reduced.height - expected.height) <= 1
    same = reduced.resize(expected.size)
    assert float(np.abs(np.asarray(same, dtype=float) - np.asarray(expected, dtype=float)).mean()) < 2.0


def test_a_transparent_palette_png_is_flattened_like_pillows() -> None:
    picture = photo((800, 800)).quantize(64)
    picture.info["transparency"] = 0
    data = encoded(picture, "PNG", transparency=0)
    via_vips = reduce_with_vips(io.BytesIO(data), len(data), "PNG", 4)
    assert via_vips is not None and via_vips.mode == "RGBA"
    decoded = decode(io.BytesIO(data), len(data)).image
    assert decoded.mode == "RGB" and decoded.size == (200, 200)


def test_sixteen_bit_samples_are_scaled_to_eight_bits_not_left_to_pillow() -> None:
    deep = encoded(Image.fromarray(np.full((600, 600), 40000, dtype=np.uint16)), "PNG")
    reduced = reduce_with_vips(io.BytesIO(deep), len(deep), "PNG", 4)
    assert reduced is not None and reduced.mode == "L" and reduced.size == (150, 150)
    assert set(np.unique(np.asarray(reduced)).tolist()) == {round(40000 * 255 / 65535)}


def test_what_libvips_cannot_decode_is_left_to_pillow() -> None:
    truncated = encoded(photo(), "PNG")[:50_000]
    assert reduce_with_vips(io.BytesIO(truncated), len(truncated), "PNG", 4) is None
    with pytest.raises(AssetError, match="corrupt or truncated PNG"):
        decode(io.BytesIO(truncated), len(truncated))
    small = encoded(photo((200, 150)), "PNG")
    assert reduce_with_vips(io.BytesIO(small), len(small), "PNG", 1) is None  # nothing to reduce


def odd_modes() -> dict[str, Image.Image]:
    """Large enough pictures (reduced by 4) in every mode a PNG can hold."""
    rgb = photo((800, 600))
    grey = rgb.convert("L")
    only_alpha = Image.new("RGBA", rgb.size, (0, 0, 0, 0))
    only_alpha.putalpha(grey)  # the whole picture in the alpha channel over flat black
    return {
        "L": grey,
        "LA": Image.merge("LA", (grey, grey.point(lambda v: 255 - v // 2))),
        "RGB": rgb,
        "RGBA": only_alpha,
        "P": rgb.quantize(128),
        "I;16": Image.fromarray((np.asarray(grey, dtype=np.uint16) * 257).astype(np.uint16)),
        "RGB;16": rgb,
    }


@pytest.mark.parametrize("mode", list(odd_modes()))
def test_every_png_mode_decodes_through_libvips_as_through_pillow(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = png16(odd_modes()[mode]) if mode == "RGB;16" else encoded(odd_modes()[mode], "PNG")
    through_vips = decode(io.BytesIO(data), len(data)).image
    monkeypatch.setattr("dam_dedupe.imaging.reduce_with_vips", lambda *args: None)
    through_pillow = decode(io.BytesIO(data), len(data)).image
    assert through_vips.mode == through_pillow.mode and through_vips.size == through_pillow.size
    difference = np.abs(np.asarray(through_vips, dtype=float) - np.asarray(through_pillow, dtype=float))
    assert float(difference.mean()) < 1.0


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("decoder", ["libvips", "Pillow"])
def test_a_sixteen_bit_copy_decodes_to_its_eight_bit_picture(
    mode: str, decoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    picture = photo((800, 600)).convert(mode)
    if decoder == "Pillow":
        monkeypatch.setattr("dam_dedupe.imaging.reduce_with_vips", lambda *args: None)
    eight = encoded(picture, "PNG")
    sixteen = png16(picture)
    expected, found = (decode(io.BytesIO(data), len(data)).image for data in (eight, sixteen))
    assert found.mode == expected.mode == mode and found.size == expected.size == (200, 150)
    difference = np.abs(np.asarray(found, dtype=float) - np.asarray(expected, dtype=float))
    assert float(difference.max()) <= 1.0 and float(difference.mean()) < 0.5  # rounding of the averages
