"""Perceptual descriptions of an image: hashes by family, a colour signature and a thumbnail.

Everything is computed from one greyscale picture of ``WORK_SIDE`` square, reduced in
floating point (the aspect ratio is squashed away; :attr:`Fingerprint.width`/``height`` keep it):

- ``dct``: 64-bit DCT hash. The signs of the 63 lowest AC coefficients (the 8x8 corner
  of the 2-D DCT-II of the 32x32 thumbnail, DC left out; bit 63 is always 0). Signs,
  not a median threshold, so that a rotated or mirrored copy's hash is an exact bit
  permutation and sign flip of the original's (:func:`dct_dihedral`): the index finds
  ``transformed`` copies without decoding anything again.
- ``low``: 63-bit hash of the 21 lowest DCT frequencies, 3 bits each (:func:`low_hash_of`):
  finds cropped copies the ``dct`` hash misses.
- ``centre``: the ``dct`` hash of the middle 75% (:func:`centre_hash_of`): finds copies with
  a logo or watermark near the edge.
- ``inner``: the ``dct`` hash of the middle ``1 - 2 x INNER_MARGIN`` (:func:`inner_hash_of`): the
  ``dct`` hash that a crop of about 4.5% a side has, so the index can match a picture's ``inner``
  code with its crop's ``dct`` code when the crop has moved every frequency too far for the others.
- ``grad``: 128-bit gradient hash (dHash): for a 9x8 and an 8x9 reduction, whether each
  pixel is brighter than its right (then lower) neighbour. A second family, so that a
  match needs two kinds of evidence to agree.
- ``chroma``: a 4x4 grid of mean YCbCr chroma (Cb, Cr minus 128, signed bytes), to tell
  the colour themes of one design apart while accepting greyscale copies.
- ``tone``: the working picture's mean grey level and standard deviation (without its
  ``TONE_TRIM`` darkest and brightest pixels), as two decimals separated by a comma. A
  standard deviation under ``FEATURELESS_STD`` is a flat colour.

The stored thumbnail (``FINE_SIDE`` square, raw bytes row by row, 4 KiB) is the
greyscale picture *normalised*: its mean grey level and standard deviation are kept apart
(``tone``), and the thumbnail holds ``TONE_CENTRE + TONE_SCALE`` x (standard scores), so a
faint pattern on an almost flat wallpaper keeps its shape instead of being rounded away
into one or two grey levels. The thumbnail is what pairs are verified against and, toned back
(:func:`viewable_thumbnail`), what the report shows. Its ``THUMBNAIL_SIDE`` square
reduction (:func:`thumbnail_array`) is what the hashes but ``inner`` are computed from, so
that a verifier can recompute them for any symmetry; the full 64x64 (:func:`fine_array`) is the
second, finer check of a pair.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

THUMBNAIL_SIDE = 32
FINE_SIDE = 64
WORK_SIDE = FINE_SIDE
CHROMA_GRID = 4
DCT_BLOCK = 8
TONE_CENTRE = 128.0
TONE_SCALE = 32.0
"""A thumbnail byte is ``TONE_CENTRE + TONE_SCALE`` x the pixel's standard score (clipped to 0..255)."""
TONE_TRIM = 0.025
"""Share of the darkest and of the brightest pixels left out of the ``tone`` (see :func:`robust_tone`)."""
INNER_MARGIN = 0.045
"""Share of each side that the ``inner`` hash leaves out: the middle of the crops of 4-5% a side."""
FEATURELESS_STD = 0.5
"""Working pictures flatter than this (standard deviation in grey levels) have no structure
to match: a flat colour, matched by colour alone."""


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix of size ``n`` (rows are frequencies)."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(THUMBNAIL_SIDE)[:DCT_BLOCK]
# Bit i of the dct hash is the sign of coefficient (_U[i], _V[i]): row frequency u, column frequency v.
_U, _V = (a.ravel()[1:] for a in np.indices((DCT_BLOCK, DCT_BLOCK)))


def dct_coefficients(grey: np.ndarray) -> np.ndarray:
    """The 8x8 lowest-frequency 2-D DCT-II coefficients of a 32x32 float picture."""
    return _DCT @ grey @ _DCT.T


def dct_hash_of(grey: np.ndarray) -> int:
    """The 64-bit ``dct`` hash (as an int) of a 32x32 float picture."""
    return _pack(dct_coefficients(grey)[_U, _V] > 0)


def _pack(bits: np.ndarray) -> int:
    """Bits (index 0 = least significant) packed into an int."""
    return int.from_bytes(np.packbits(np.asarray(bits, dtype=bool), bitorder="little").tobytes(), "little")


_ZIGZAG = np.argsort((_U + _V) * DCT_BLOCK + _U, kind="stable")[:21]
_CENTRE = slice(4, 28)


def low_hash_of(grey: np.ndarray) -> int:
    """The 63-bit ``low`` hash (as an int) of a 32x32 float picture.

    The 21 lowest AC coefficients, each as a 3-bit thermometer code: above zero, above
    their median magnitude, below minus their median magnitude. A coefficient that moves a
    little flips one bit, not a sign: robust to crops, which shift the higher frequencies.
    """
    coefficients = dct_coefficients(grey)[_U, _V][_ZIGZAG]
    level = float(np.median(np.abs(coefficients)))
    return _pack(np.concatenate([coefficients > 0, coefficients > level, coefficients < -level]))


def centre_hash_of(grey: np.ndarray) -> int:
    """The 64-bit ``centre`` hash (as an int): the dct hash of the middle 75% of the picture.

    Watermarks and logos sit near the edges and corners; this hash does not see them.
    """
    centre = Image.fromarray(np.ascontiguousarray(grey[_CENTRE, _CENTRE], dtype=np.float32), mode="F")
    return dct_hash_of(np.asarray(centre.resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)))


def inner_hash_of(fine: np.ndarray) -> int:
    """The 64-bit ``inner`` hash (as an int): the dct hash of the middle of a ``FINE_SIDE`` square
    float picture, ``INNER_MARGIN`` of each side left out.

    Reduced from the 64x64 picture (an area mean over the window), not the 32x32 one: the window's
    edges fall between the 32x32 pixels.
    """
    low, high = INNER_MARGIN * FINE_SIDE, (1 - INNER_MARGIN) * FINE_SIDE
    image = Image.fromarray(np.ascontiguousarray(fine, dtype=np.float32), mode="F")
    inner = image.resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX, box=(low, low, high, high))
    return dct_hash_of(np.asarray(inner))


def grad_hash_of(grey: np.ndarray) -> int:
    """The 128-bit ``grad`` hash (as an int) of a square float picture."""
    image = Image.fromarray(grey.astype(np.float32), mode="F")
    wide = np.asarray(image.resize((9, 8), Image.Resampling.BOX))
    tall = np.asarray(image.resize((8, 9), Image.Resampling.BOX))
    bits = np.concatenate([(wide[:, 1:] > wide[:, :-1]).ravel(), (tall[1:, :] > tall[:-1, :]).ravel()])
    return _pack(bits)


# The eight symmetries of the square, as operations on a 2-D array (numpy's conventions).
DIHEDRAL: dict[str, object] = {
    "identity": lambda a: a,
    "rotate-90": lambda a: np.rot90(a, 1),
    "rotate-180": lambda a: np.rot90(a, 2),
    "rotate-270": lambda a: np.rot90(a, 3),
    "mirror-horizontal": lambda a: a[:, ::-1],
    "mirror-vertical": lambda a: a[::-1, :],
    "transpose": lambda a: np.swapaxes(a, 0, 1),
    "transverse": lambda a: np.swapaxes(np.rot90(a, 2), 0, 1),
}
"""Name to function for each symmetry of the first two axes; ``rotate-90`` turns
counter-clockwise as numpy does."""


def _dihedral_bit_maps() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each symmetry, the (source bit, sign flip) of every bit of the transformed dct hash.

    Transposing swaps u and v; mirroring columns negates coefficients of odd v, mirroring
    rows those of odd u. Derived numerically from random pictures so it cannot drift from
    :data:`DIHEDRAL`.
    """
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    base = dct_coefficients(probe)[_U, _V]
    maps = {}
    for name, op in DIHEDRAL.items():
        moved = dct_coefficients(np.ascontiguousarray(op(probe)))[_U, _V]  # type: ignore[operator]
        source = np.array([int(np.argmin(np.abs(np.abs(base) - abs(c)))) for c in moved])
        flip = np.sign(moved) != np.sign(base[source])
        maps[name] = (source, flip)
    return maps


_BIT_MAPS = _dihedral_bit_maps()


@lru_cache(maxsize=1 << 14)
def dct_dihedral(value: int, symmetry: str) -> int:
    """The dct hash a copy would have after ``symmetry`` (a :data:`DIHEDRAL` name) of the original."""
    source, flip = _BIT_MAPS[symmetry]
    bits = np.array([(value >> i) & 1 for i in range(63)], dtype=bool)
    return _pack(bits[source] ^ flip)


def dct_dihedral_array(values: np.ndarray, symmetry: str) -> np.ndarray:
    """:func:`dct_dihedral` for a uint64 array at once."""
    source, flip = _BIT_MAPS[symmetry]
    codes = np.ascontiguousarray(values, dtype="<u8")
    bits = np.unpackbits(codes.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    moved = np.zeros_like(bits)
    moved[:, :63] = bits[:, source] ^ flip
    return np.packbits(moved, axis=1, bitorder="little").view("<u8").ravel().astype(np.uint64)


def chroma_signature(rgb: Image.Image) -> np.ndarray:
    """A CHROMA_GRID square grid of mean (Cb, Cr) minus 128, as an int8 array of shape (g, g, 2)."""
    small = rgb.convert("YCbCr").resize((CHROMA_GRID, CHROMA_GRID), Image.Resampling.BOX, reducing_gap=2.0)
    return (np.asarray(small, dtype=np.int16)[:, :, 1:] - 128).clip(-128, 127).astype(np.int8)


def describe(image: Image.Image) -> tuple[dict[str, str], bytes]:
    """Return the image's perceptual hashes (family name to text) and its normalised thumbnail.

    ``image`` must be ``L`` or ``RGB`` (as :func:`dam_dedupe.imaging.decode` returns).
    The thumbnail is ``FINE_SIDE`` square, one byte a pixel, row by row (see the module notes).
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    grey = rgb.convert("F").resize((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    fine = np.asarray(grey, dtype=np.float32)
    half = _halve(fine)
    mean, std = robust_tone(fine)
    hashes = {
        "dct": f"{dct_hash_of(half):016x}",
        "low": f"{low_hash_of(half):016x}",
        "centre": f"{centre_hash_of(half):016x}",
        "inner": f"{inner_hash_of(fine):016x}",
        "grad": f"{grad_hash_of(half):032x}",
        "chroma": chroma_signature(rgb).tobytes().hex(),
        "tone": f"{mean:.2f},{std:.2f}",
    }
    scores = (fine - mean) / max(std, 1e-3)
    thumbnail = np.clip(np.rint(TONE_CENTRE + TONE_SCALE * scores), 0, 255).astype(np.uint8)
    return hashes, thumbnail.tobytes()


def robust_tone(picture: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) of the picture's grey levels between its ``TONE_TRIM`` and
    1 - ``TONE_TRIM`` quantiles: a logo or watermark on a faint wallpaper then does not set the
    scale that the wallpaper's own pattern is stored at."""
    low, high = np.quantile(picture, (TONE_TRIM, 1 - TONE_TRIM))
    kept = picture[(picture >= low) & (picture <= high)]
    return float(kept.mean()), float(kept.std())


def tone_of(perceptual: dict[str, str]) -> tuple[float, float] | None:
    """(mean grey level, standard deviation) from a fingerprint's hashes, or ``None`` if it has none."""
    if "tone" not in perceptual:
        return None
    return _tone(perceptual["tone"])


@lru_cache(maxsize=4096)
def _tone(text: str) -> tuple[float, float]:
    """A stored ``tone`` read (cached: a representative's is read for every member it is compared with)."""
    mean, std = text.split(",")
    return float(mean), float(std)


def viewable_thumbnail(thumbnail: bytes, perceptual: dict[str, str]) -> bytes:
    """A stored thumbnail with its tone put back: grey levels as the picture shows them."""
    tone = tone_of(perceptual)
    if tone is None:
        return thumbnail
    scores = (np.frombuffer(thumbnail, dtype=np.uint8).astype(np.float32) - TONE_CENTRE) / TONE_SCALE
    return np.clip(np.rint(tone[0] + tone[1] * scores), 0, 255).astype(np.uint8).tobytes()


def _halve(fine: np.ndarray) -> np.ndarray:
    """A FINE_SIDE square picture as a THUMBNAIL_SIDE square float array (2x2 means)."""
    return fine.astype(np.float32).reshape(THUMBNAIL_SIDE, 2, THUMBNAIL_SIDE, 2).mean(axis=(1, 3))


@lru_cache(maxsize=1024)
def thumbnail_array(thumbnail: bytes) -> np.ndarray:
    """A stored thumbnail as a float 32x32 array (read-only: it is cached, as each thumbnail
    is compared with many others)."""
    array = _halve(np.frombuffer(thumbnail, dtype=np.uint8).reshape(FINE_SIDE, FINE_SIDE))
    array.flags.writeable = False
    return array


@lru_cache(maxsize=512)
def fine_array(thumbnail: bytes) -> np.ndarray:
    """A stored thumbnail as a read-only float 64x64 array."""
    array = np.frombuffer(thumbnail, dtype=np.uint8).reshape(FINE_SIDE, FINE_SIDE).astype(np.float32)
    array.flags.writeable = False
    return array


@lru_cache(maxsize=4096)
def chroma_array(hex_value: str) -> np.ndarray:
    """A stored ``chroma`` signature as a read-only float (g, g, 2) array (cached, as :func:`thumbnail_array`)."""
    raw = np.frombuffer(bytes.fromhex(hex_value), dtype=np.int8)
    array = raw.reshape(CHROMA_GRID, CHROMA_GRID, 2).astype(np.float32)
    array.flags.writeable = False
    return array
