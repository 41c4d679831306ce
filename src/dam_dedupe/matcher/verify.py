"""Verifying a candidate pair against the stored thumbnails.

Hash distances only nominate pairs. A pair is a copy when, after undoing a rotation or
mirroring (for ``transformed`` pairs) and the best small crop, the two normalised
thumbnails agree everywhere except in a small area (room for a watermark or logo):

1. both thumbnails are put on a common scale (mean 0, standard deviation 1), which makes
   brightness, contrast and greyscale conversion irrelevant;
2. a crop of one onto the other is searched: margins of up to ``MAX_MARGIN`` per side, by
   coordinate descent over area-resampling matrices, constrained to explain the change of
   aspect ratio;
3. the residual is measured as its RMS without the ``LOCAL_CHANGE`` share of worst pixels,
   as the share of pixels that differ by more than ``DIFF_LEVEL`` standard deviations (the
   *changed area*) and along each border (a shifted view shows new content there);
4. colour is compared when both images have colour, so that colour themes of one design do
   not match while a greyscale copy does.
"""

from __future__ import annotations

import math
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from dam_dedupe.matcher.perceptual import (
    DIHEDRAL,
    FINE_SIDE,
    THUMBNAIL_SIDE,
    chroma_array,
    fine_array,
    thumbnail_array,
)

MAX_MARGIN = 0.06
MARGIN_STEP = 0.005
DIFF_LEVEL = 0.6
NOISE_LEVELS = 3.0
"""A pixel counts as changed when it differs by more than ``DIFF_LEVEL`` and by more than this
many times the pair's trimmed residual: a crop of a fine texture differs a little everywhere,
which is not a local edit."""
ASPECT_TOLERANCE = 0.015
LOCAL_CHANGE = 0.07
"""Share of the thumbnail a local edit (watermark, logo) may change."""
DETAIL_FLOOR = 0.05
"""Added to the fine detail level before dividing by it, so that flat pictures are not judged by noise."""
HOTSPOT_FLOOR = 0.02
"""Added to the trimmed residual before dividing the interior peak by it."""
HOTSPOT_BLOCK = 4
HOTSPOT_MARGIN = 3 / 16
"""Share of each side, along the border, where a concentrated change (a watermark, logo or
credit line) is forgiven; a concentrated change further in counts as a different picture."""
"""Side, in pixels of the 64x64 thumbnail, of the blocks whose residual the hotspot compares."""
EDGE_QUANTILE = 0.25
"""The quantile of the residual along a border that ``edge_strip`` takes: a shifted view shows
new content along the whole border, while a watermark or logo covers less than this share of it."""
COLOURFUL = 6.0
"""Mean chroma magnitude above which an image counts as having colour."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What verification measured for one pair.

    Attributes:
        symmetry: the :data:`~dam_dedupe.matcher.perceptual.DIHEDRAL` name applied to the first image.
        rms: RMS residual of the normalised thumbnails after alignment (0 is identical; 1.41 unrelated).
        changed: share of thumbnail pixels that differ beyond ``DIFF_LEVEL``.
        trimmed_rms: RMS residual over all but the ``LOCAL_CHANGE`` share of pixels that differ
            most: room for a watermark or logo.
        edge_strip: the largest lower quartile of the absolute residual along one border (2 pixels
            deep): high when one picture shows content beyond the other's edge, as a
            shifted view does, while a logo or watermark covers only part of a border.
        crop: margins (left, top, right, bottom) in fractions, of the image that was cropped.
        cropped: ``"first"``, ``"second"`` or ``""``: which image looks like a crop of the other.
        colour_distance: mean chroma difference over the grid, or ``None`` when one image has no colour.
        greyscale: which image is greyscale while the other has colour (``"first"``, ``"second"`` or ``""``).
        crop_searched: whether the crop search ran (it is skipped when the uncropped fit is good enough).
        fine_residual: from :func:`refine` (or, uncropped, :func:`plain_verdicts`), on the
            64x64 thumbnails: the trimmed residual divided by the pictures' own fine detail (plus
            ``DETAIL_FLOOR``). A copy's residual is aliasing and compression, which scale with the
            detail; a shifted or turned view (burst, stereo pair) of a smooth scene leaves more.
            ``None`` before either.
        hotspot: as ``fine_residual``: how much the worst 4x4 block away from the border
            stands out from the rest of the residual. A watermark or logo sits near the
            border; a different headline or an object added or removed inside the picture
            is a concentrated change away from it.
    """

    symmetry: str
    rms: float
    changed: float
    trimmed_rms: float
    edge_strip: float
    crop: tuple[float, float, float, float]
    cropped: str
    colour_distance: float | None
    greyscale: str
    crop_searched: bool = True
    fine_residual: float | None = None
    hotspot: float | None = None


def _normalise(a: np.ndarray) -> np.ndarray:
    """Mean 0, standard deviation 1 (each picture of a stack, over its last two axes)."""
    axes = (-2, -1)
    return (a - a.mean(axis=axes, keepdims=True)) / (a.std(axis=axes, keepdims=True) + 1e-6)


@lru_cache(maxsize=1)
def _margins() -> np.ndarray:
    """Candidate margins per side."""
    return np.arange(0.0, MAX_MARGIN + 1e-9, MARGIN_STEP)


@lru_cache(maxsize=2)
def _resamplers(n: int = THUMBNAIL_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """Area-resampling matrices for every (low, high) margin pair along one axis of ``n`` pixels.

    Returns (matrices of shape (k, n, n), margin pairs of shape (k, 2)). Row i of a matrix
    averages the source pixels that the cropped picture's pixel i covers.
    """
    margins = _margins()
    pairs = np.array([(lo, hi) for lo in margins for hi in margins])
    edges = np.arange(n + 1) / n
    row = np.arange(n)[None, :, None]
    low, span = pairs[:, 0, None, None], (1.0 - pairs.sum(axis=1))[:, None, None]
    start, end = low + span * row / n, low + span * (row + 1) / n
    overlap = np.clip(np.minimum(edges[1:], end) - np.maximum(edges[:-1], start), 0, None)
    mats = overlap / overlap.sum(axis=2, keepdims=True)
    return mats, pairs


def _best_crops(
    big: np.ndarray, small: np.ndarray, aspect: np.ndarray, max_margin: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The crop of each of a stack of pictures ``big`` that best matches ``small``: (mean squared
    residual of each, margins l, t, r, b of each), all of them searched together.

    ``aspect`` is, for each pair, log(aspect ratio of small / aspect ratio of big) from the
    full-size dimensions, or NaN when unknown: a crop must explain it (within
    ``ASPECT_TOLERANCE``), so a shifted view of the same size, as in a burst or a stereo pair,
    cannot pass for a crop. ``max_margin`` is each pair's largest margin a side.
    """
    mats, pairs = _resamplers(big.shape[-1])
    sums = _resampler_sums(big.shape[-1])
    scales = np.log(1.0 - pairs.sum(axis=1))
    target = _normalise(small)
    unknown = np.isnan(aspect)[:, None]
    within = pairs.max(axis=1)[None, :] <= max_margin[:, None] + 1e-9

    def allowed(other_scale: np.ndarray, sign: float) -> np.ndarray:
        fits = np.abs(sign * (scales[None, :] - other_scale[:, None]) - aspect[:, None]) <= ASPECT_TOLERANCE
        return within & (fits | unknown)

    # First every centred crop (equal margins on the two sides of each axis), all in one call:
    # ok[p, y, x] for the crop with the y-th centred rows and x-th centred columns of pair p.
    centred = np.nonzero(pairs[:, 0] == pairs[:, 1])[0]
    count = len(centred)
    gaps = scales[centred][None, None, :] - scales[centred][None, :, None] - aspect[:, None, None]
    ok = within[:, None, centred] & ((np.abs(gaps) <= ASPECT_TOLERANCE) | unknown[:, :, None])
    # Each crop is scored from sums (see _column_crop_scores), without resampling the picture.
    rows = mats[centred] @ big[:, None]
    column_sums, flat_mats, grams = sums
    errs = _crop_scores(
        rows.sum(axis=2) @ column_sums[centred].T,
        (rows.swapaxes(-1, -2) @ rows).reshape(len(big), count, -1) @ grams[centred].T,
        (target.swapaxes(-1, -2)[:, None] @ rows).reshape(len(big), count, -1) @ flat_mats[centred].T,
        target[0].size,
    )
    errs[~ok] = np.inf
    y_at, x_at = np.divmod(errs.reshape(len(big), -1).argmin(axis=1), count)
    best_y, best_x = centred[y_at], centred[x_at]
    for _ in range(2):
        best_x, _ = _best_allowed(_column_crop_scores, mats[best_y] @ big, target, allowed(scales[best_y], 1.0))
        columns = big @ mats[best_x].swapaxes(-1, -2)
        best_y, score = _best_allowed(_row_crop_scores, columns, target, allowed(scales[best_x], -1.0))
    crops = np.stack((pairs[best_x, 0], pairs[best_y, 0], pairs[best_x, 1], pairs[best_y, 1]), axis=1)
    none = ~ok.reshape(len(big), -1).any(axis=1)
    score[none], crops[none] = np.inf, 0.0
    return score, crops


def _best_allowed(
    scores: Callable[[np.ndarray, np.ndarray, Sums], np.ndarray],
    pictures: np.ndarray,
    target: np.ndarray,
    allowed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(the allowed resampler with the lowest of ``scores``, that score) for each pair of a stack,
    scoring only the resamplers some pair of the stack may use."""
    some = np.nonzero(allowed.any(axis=0))[0]
    sums = _resampler_sums(pictures.shape[-1])
    errs = scores(pictures, target, (sums[0][some], sums[1][some], sums[2][some]))
    errs[~allowed[:, some]] = np.inf
    best = errs.argmin(axis=1)
    return some[best], errs[np.arange(len(errs)), best]


Sums = tuple[np.ndarray, np.ndarray, np.ndarray]
"""What :func:`_resampler_sums` gives, for all the resamplers or some of them (one row each)."""


@lru_cache(maxsize=2)
def _resampler_sums(n: int = THUMBNAIL_SIDE) -> Sums:
    """Of each of :func:`_resamplers`' matrices M for ``n`` pixels: its column sums, M and its
    Gram matrix MᵀM, the last two flattened (one row each): enough to score a crop from sums
    (:func:`_column_crop_scores`)."""
    mats, _ = _resamplers(n)
    grams = mats.transpose(0, 2, 1) @ mats
    return mats.sum(axis=1), mats.reshape(len(mats), -1), grams.reshape(len(mats), -1)


def _column_crop_scores(rows: np.ndarray, target: np.ndarray, sums: Sums) -> np.ndarray:
    """Mean squared residual of each normalised picture ``rows @ M.T`` (M each resampler of
    ``sums``) against the normalised ``target``, 2 - 2 x their correlation, computed from sums
    without forming the pictures: the sum of a picture is the
    column sums of M and of ``rows`` multiplied, its product with the target M's with
    ``target.T @ rows``, and its sum of squares MᵀM's with ``rows.T @ rows`` (three products of
    a matrix with a vector where each picture cost a 32x32 matrix product). ``rows`` and
    ``target`` may be stacks of pairs: then one row of scores for each."""
    column_sums, mats, grams = sums
    lead = rows.shape[:-2]
    return _crop_scores(
        rows.sum(axis=-2) @ column_sums.T,
        (rows.swapaxes(-1, -2) @ rows).reshape(*lead, -1) @ grams.T,
        (target.swapaxes(-1, -2) @ rows).reshape(*lead, -1) @ mats.T,
        target.shape[-1] * target.shape[-2],
    )


def _row_crop_scores(columns: np.ndarray, target: np.ndarray, sums: Sums) -> np.ndarray:
    """:func:`_column_crop_scores` for the pictures ``M @ columns`` (a crop along the other axis)."""
    column_sums, mats, grams = sums
    lead = columns.shape[:-2]
    return _crop_scores(
        columns.sum(axis=-1) @ column_sums.T,
        (columns @ columns.swapaxes(-1, -2)).reshape(*lead, -1) @ grams.T,
        (target @ columns.swapaxes(-1, -2)).reshape(*lead, -1) @ mats.T,
        target.shape[-1] * target.shape[-2],
    )


def _crop_scores(total: np.ndarray, squares: np.ndarray, products: np.ndarray, n: int) -> np.ndarray:
    """2 - 2 x the correlation of each candidate picture with the normalised target, from the
    candidate's sum, sum of squares and product with the target (``n`` pixels): the mean squared
    residual of the two normalised."""
    mean = total / n
    var = squares / n - mean**2
    return 2.0 - 2.0 * (products / n) / (np.sqrt(np.maximum(var, 0.0)) + 1e-6)


def _colours(asked: list[tuple[str | None, str | None, str]]) -> list[tuple[float | None, str]]:
    """:func:`_colour` of each (chroma a, chroma b, symmetry), measured together."""
    found: list[tuple[float | None, str]] = [(None, "")] * len(asked)
    both = [(k, first, second, symmetry) for k, (first, second, symmetry) in enumerate(asked) if first and second]
    if not both:
        return found
    a = np.stack([DIHEDRAL[symmetry](chroma_array(first)) for _, first, _, symmetry in both])  # type: ignore[operator]
    b = np.stack([chroma_array(second) for _, _, second, _ in both])
    colour_a = (np.hypot(a[..., 0], a[..., 1]).mean(axis=(1, 2)) > COLOURFUL).tolist()
    colour_b = (np.hypot(b[..., 0], b[..., 1]).mean(axis=(1, 2)) > COLOURFUL).tolist()
    distance = np.hypot(*(a - b).transpose(3, 0, 1, 2)).mean(axis=(1, 2)).tolist()
    for (k, _, _, _), first, second, apart in zip(both, colour_a, colour_b, distance, strict=True):
        if first and second:
            found[k] = (apart, "")
        elif first != second:
            found[k] = (None, "second" if first else "first")
    return found


@dataclass(frozen=True, slots=True)
class Asked:
    """One pair for :func:`verify`: ``thumb_b`` measured as a copy of ``thumb_a`` after ``symmetry``.

    Attributes:
        aspect: log(aspect ratio of b / aspect ratio of a after ``symmetry``) from the full-size
            dimensions, when known.
        search: whether a crop may be searched (it is skipped anyway when the two are nearly
            identical as they stand).
        max_margin: the largest margin a side a crop may have.
    """

    thumb_a: bytes
    thumb_b: bytes
    symmetry: str = "identity"
    chroma_a: str | None = None
    chroma_b: str | None = None
    aspect: float | None = None
    search: bool = True
    max_margin: float = MAX_MARGIN


def verify(asked: list[Asked]) -> list[Verdict]:
    """Measure how well each pair's second thumbnail is explained as a copy of its first, with the
    crop search where it runs done for all the pairs together (a crop search one pair at a time
    spent most of its time calling numpy on small arrays)."""
    if not asked:
        return []
    a = np.stack([DIHEDRAL[one.symmetry](thumbnail_array(one.thumb_a)) for one in asked])  # type: ignore[operator]
    b = np.stack([thumbnail_array(one.thumb_b) for one in asked])
    x, y = _normalise(a), _normalise(b)
    searched = np.array([one.search for one in asked]) & (((x - y) ** 2).mean(axis=(-2, -1)) > 0.005)
    crops = [NO_CROP] * len(asked)
    where = np.nonzero(searched)[0]
    limits = _limits([(asked[k].aspect, asked[k].max_margin) for k in where.tolist()])
    for k, found in zip(where.tolist(), _search_crops(a[where], b[where], *limits), strict=True):
        crops[k] = found
    x, y = _aligned(a, b, crops)
    coarse = zip(*(values.tolist() for values in _coarse_measures(x - y)), strict=True)
    colours = _colours([(one.chroma_a, one.chroma_b, one.symmetry) for one in asked])
    return [
        Verdict(one.symmetry, rms, changed, trimmed, edge, crop, cropped, distance, greyscale, bool(was_searched))
        for one, (rms, changed, trimmed, edge), (cropped, crop), (distance, greyscale), was_searched in zip(
            asked, coarse, crops, colours, searched.tolist(), strict=True
        )
    ]


def _limits(pairs: list[tuple[float | None, float]]) -> tuple[np.ndarray, np.ndarray]:
    """The (aspect change, largest margin) of each pair as two arrays, NaN where the aspect is unknown."""
    aspect = np.array([np.nan if change is None else change for change, _ in pairs], dtype=float)
    return aspect, np.array([margin for _, margin in pairs], dtype=float)


PAIRS_AT_ONCE = 64
"""Pairs measured in one stack by :func:`plain_verdicts`: enough to spread numpy's cost per call,
few enough that the stacks stay in the processor's cache and memory stays small."""
PREPARED = 1024
"""Thumbnails whose :class:`Prepared` arrays are kept (about 21 KiB each): a group's representative
and sample, asked about for every member, stay prepared."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """What verification needs of one thumbnail, computed once however many pairs it is in.

    Attributes:
        coarse: the 32x32 thumbnail normalised (mean 0, standard deviation 1).
        fine: the 64x64 thumbnail normalised.
        detail: the fine detail of ``fine`` (see :func:`_detail`); a symmetry does not change it.
    """

    coarse: np.ndarray
    fine: np.ndarray
    detail: float


_prepared: OrderedDict[bytes, Prepared] = OrderedDict()
_prepared_lock = threading.Lock()
"""Held while the prepared arrays are read or changed: two matches may run in one process's threads."""


def prepare(thumbnails: list[bytes]) -> list[Prepared]:
    """The :class:`Prepared` arrays of each stored thumbnail; those not kept (see ``PREPARED``)
    are computed together, as one stack."""
    with _prepared_lock:
        missing = list(dict.fromkeys(thumb for thumb in thumbnails if thumb not in _prepared))
        if missing:
            raw = np.stack([np.frombuffer(thumb, dtype=np.uint8) for thumb in missing]).reshape(
                -1, FINE_SIDE, FINE_SIDE
            )
            whole = raw.astype(np.float32)
            fine = _normalise(whole)
            # 2x2 means by strided adds: numpy reduces the short inner axes of a reshape 4 times slower.
            halves = whole[:, 0::2, 0::2] + whole[:, 1::2, 0::2] + whole[:, 0::2, 1::2] + whole[:, 1::2, 1::2]
            coarse = _normalise(halves * np.float32(0.25))
            for k, (thumb, detail) in enumerate(zip(missing, _detail(fine).tolist(), strict=True)):
                # Copies, not views: a view would keep its whole batch alive as long as it is kept.
                kept = Prepared(coarse[k].copy(), fine[k].copy(), detail)
                kept.coarse.flags.writeable = kept.fine.flags.writeable = False
                _prepared[thumb] = kept
        found = []
        for thumb in thumbnails:
            _prepared.move_to_end(thumb)
            found.append(_prepared[thumb])
        while len(_prepared) > PREPARED:
            _prepared.popitem(last=False)
    return found


def plain_verdicts(
    pairs: list[tuple[bytes, bytes, str]], chromas: list[tuple[str | None, str | None]]
) -> list[Verdict]:
    """:func:`verify` without a crop search, with the uncropped ``fine_residual`` and ``hotspot``
    that :func:`refine` starts from, for many pairs (thumbnail a, thumbnail b, symmetry) at once.

    The pairs are stacked, ``PAIRS_AT_ONCE`` at a time, and measured in a few numpy calls
    instead of a few dozen calls a pair, from each thumbnail's prepared arrays (:func:`prepare`): a copy
    re-saved at another size or quality needs no crop search, and in a library of one image
    copied thousands of times almost every pair verified is such a copy.
    """
    found = []
    for start in range(0, len(pairs), PAIRS_AT_ONCE):
        part = pairs[start : start + PAIRS_AT_ONCE]
        ready = prepare([thumb for first, second, _ in part for thumb in (first, second)])
        firsts = [(DIHEDRAL[symmetry], first) for (_, _, symmetry), first in zip(part, ready[::2], strict=True)]
        seconds = ready[1::2]
        a = np.stack([turn(first.coarse) for turn, first in firsts])  # type: ignore[operator]
        b = np.stack([second.coarse for second in seconds])
        coarse = zip(*(values.tolist() for values in _coarse_measures(a - b)), strict=True)
        a = np.stack([turn(first.fine) for turn, first in firsts])  # type: ignore[operator]
        b = np.stack([second.fine for second in seconds])
        details = (np.array([first.detail for _, first in firsts]), np.array([second.detail for second in seconds]))
        fine = zip(*(values.tolist() for values in _fine_measures(a, b, details)), strict=True)
        colours = _colours(
            [
                (*chroma, symmetry)
                for chroma, (_, _, symmetry) in zip(chromas[start : start + len(part)], part, strict=True)
            ]
        )
        for (_, _, symmetry), (colour_distance, greyscale), measures, (residual, hotspot) in zip(
            part, colours, coarse, fine, strict=True
        ):
            found.append(_uncropped(symmetry, measures, colour_distance, greyscale, residual, hotspot))
    return found


def _coarse_measures(residual: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rms, changed area, trimmed rms, edge strip) of a residual or a stack of them (see :class:`Verdict`)."""
    trimmed = _trimmed_rms(residual)
    level = np.maximum(DIFF_LEVEL, NOISE_LEVELS * trimmed)[..., None, None]
    axes = (-2, -1)
    rms = np.sqrt((residual**2).mean(axis=axes))
    return rms, (np.abs(residual) > level).mean(axis=axes), trimmed, _edge_strip(residual)


NO_CROP: tuple[str, tuple[float, float, float, float]] = ("", (0.0, 0.0, 0.0, 0.0))
_UNCROPPED = NO_CROP[::-1]
"""The (crop, cropped) fields of a :class:`Verdict` without a crop."""

_PLAIN_LAYOUT = struct.Struct("<7dB")
"""A plain verdict's measures as 64-bit floats (no colour distance: NaN) and which image is greyscale."""
_GREYSCALE = ("", "first", "second")


def packed_plain(verdict: Verdict) -> bytes:
    """A verdict of :func:`plain_verdicts` in 57 bytes (without its symmetry), every measure exact: a
    match keeps one for every copy it settled (with its key, about 150 bytes a copy, where the verdict
    object keyed by the hashes as text took about 330)."""
    colour = math.nan if verdict.colour_distance is None else verdict.colour_distance
    assert verdict.fine_residual is not None and verdict.hotspot is not None and not verdict.crop_searched
    measures = (verdict.rms, verdict.changed, verdict.trimmed_rms, verdict.edge_strip, colour)
    return _PLAIN_LAYOUT.pack(*measures, verdict.fine_residual, verdict.hotspot, _GREYSCALE.index(verdict.greyscale))


def unpacked_plain(symmetry: str, packed: bytes) -> Verdict:
    """The verdict :func:`packed_plain` packed, for a pair compared after ``symmetry``."""
    *coarse, colour, residual, hotspot, greyscale = _PLAIN_LAYOUT.unpack(packed)
    colour_distance = None if math.isnan(colour) else colour
    return _uncropped(symmetry, coarse, colour_distance, _GREYSCALE[greyscale], residual, hotspot)


def _uncropped(
    symmetry: str,
    coarse: Sequence[float],
    colour_distance: float | None,
    greyscale: str,
    fine_residual: float,
    hotspot: float,
) -> Verdict:
    """A verdict measured as the pictures stand: ``coarse`` is (rms, changed, trimmed_rms, edge_strip)."""
    rms, changed, trimmed, edge_strip = coarse
    crop, cropped = _UNCROPPED
    return Verdict(
        symmetry,
        rms,
        changed,
        trimmed,
        edge_strip,
        crop,
        cropped,
        colour_distance,
        greyscale,
        False,
        fine_residual,
        hotspot,
    )


def _search_crops(
    a: np.ndarray, b: np.ndarray, aspect: np.ndarray, max_margin: np.ndarray
) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(which picture is cropped, its margins) for the crop that best explains each pair of the
    stacks ``a`` and ``b``, or :data:`NO_CROP`: both ways round, all of them searched together."""
    if not len(a):
        return []
    x, y = _normalise(a), _normalise(b)
    direct = ((x - y) ** 2).mean(axis=(-2, -1)).tolist()
    scores, crops = _best_crops(
        np.concatenate((a, b)), np.concatenate((b, a)), np.concatenate((aspect, -aspect)), np.tile(max_margin, 2)
    )
    count = len(a)
    found: list[tuple[str, tuple[float, float, float, float]]] = []
    for k, (score_b, score_a) in enumerate(zip(scores[:count].tolist(), scores[count:].tolist(), strict=True)):
        if min(score_a, score_b) >= direct[k]:
            found.append(NO_CROP)
        elif score_b <= score_a:
            found.append(("second", _margins_of(crops[k])))
        else:
            found.append(("first", _margins_of(crops[count + k])))
    return found


def _margins_of(row: np.ndarray) -> tuple[float, float, float, float]:
    """A row of four margins as the (left, top, right, bottom) tuple a :class:`Verdict` holds."""
    left, top, right, bottom = row.tolist()
    return left, top, right, bottom


def _aligned(
    a: np.ndarray, b: np.ndarray, crops: list[tuple[str, tuple[float, float, float, float]]], soften: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The stacks ``a`` and ``b`` normalised, with each pair's crop applied to its cropped
    picture and, if ``soften``, both pictures of a cropped pair softened after it."""
    x, y = _normalise(a), _normalise(b)
    where = [k for k, (cropped, _) in enumerate(crops) if cropped]
    if not where:
        return x, y
    second = np.array([crops[k][0] == "second" for k in where])[:, None, None]
    big = np.where(second, a[where], b[where])
    small = np.where(second, b[where], a[where])
    cut, kept = _normalise(_apply_crops(big, [crops[k][1] for k in where])), _normalise(small)
    if soften:
        cut, kept = _normalise(_soften(cut)), _normalise(_soften(kept))
    x[where], y[where] = np.where(second, cut, kept), np.where(second, kept, cut)
    return x, y


@dataclass(frozen=True, slots=True)
class Refining:
    """One pair for :func:`refine`: its thumbnails, its coarse verdict, the aspect change the crop
    must explain, ``limits`` (the largest fine residual and hotspot that pass) and the largest margin."""

    thumb_a: bytes
    thumb_b: bytes
    verdict: Verdict
    aspect: float | None = None
    limits: tuple[float, float] = (np.inf, np.inf)
    max_margin: float = MAX_MARGIN


def refine(asked: list[Refining]) -> list[Verdict]:
    """Add the finer check to each pair's coarse verdict: ``fine_residual`` and ``hotspot`` from the
    64x64 thumbnails, all the pairs measured together.

    The symmetry found on the 32x32 thumbnails is applied to the 64x64 ones, and of the
    uncropped alignment and the coarse crop (adjusted to the fine thumbnails), the one that
    leaves the smaller fine residual is kept. When the coarse check skipped the crop search
    and the uncropped measures exceed the pair's ``limits``, the search is run now.
    """
    if not asked:
        return []
    a = np.stack([DIHEDRAL[one.verdict.symmetry](fine_array(one.thumb_a)) for one in asked])  # type: ignore[operator]
    b = np.stack([fine_array(one.thumb_b) for one in asked])
    plain = _normalise(a), _normalise(b)
    crops = [(one.verdict.cropped, one.verdict.crop) for one in asked]
    done: dict[int, Verdict] = {}
    measured: dict[int, tuple[float, float]] = {}
    unsearched = [k for k, one in enumerate(asked) if not one.verdict.crop_searched]
    for k, measures in zip(unsearched, _fine_list(plain[0][unsearched], plain[1][unsearched]), strict=True):
        measured[k] = measures
        limit_residual, limit_hotspot = asked[k].limits
        if measures[0] <= limit_residual and measures[1] <= limit_hotspot:
            done[k] = replace(asked[k].verdict, fine_residual=measures[0], hotspot=measures[1])
    search = np.array([k for k in unsearched if k not in done], dtype=np.int64)
    if len(search):
        coarse_a = np.stack(
            [DIHEDRAL[asked[k].verdict.symmetry](thumbnail_array(asked[k].thumb_a)) for k in search.tolist()]  # type: ignore[operator]
        )
        coarse_b = np.stack([thumbnail_array(asked[k].thumb_b) for k in search.tolist()])
        limits = _limits([(asked[k].aspect, asked[k].max_margin) for k in search.tolist()])
        for k, found in zip(search.tolist(), _search_crops(coarse_a, coarse_b, *limits), strict=True):
            crops[k] = found
    rest = [k for k in range(len(asked)) if k not in done]
    unmeasured = [k for k in rest if k not in measured]
    for k, measures in zip(unmeasured, _fine_list(plain[0][unmeasured], plain[1][unmeasured]), strict=True):
        measured[k] = measures
    cut = [k for k in rest if crops[k][0]]
    polished = _polish_crops(a[cut], b[cut], [crops[k] for k in cut])
    sharp = _aligned(a[cut], b[cut], polished, soften=False)
    soft = _normalise(_soften(sharp[0])), _normalise(_soften(sharp[1]))
    cropped_residuals = [residual for residual, _ in _fine_list(*soft)]
    sharp_hotspots = [hotspot for _, hotspot in _fine_list(*sharp)]
    for n, k in enumerate(cut):
        residual, hotspot = measured[k]
        hotspot = min(hotspot, sharp_hotspots[n])
        if cropped_residuals[n] < residual:
            crops[k], residual = polished[n], cropped_residuals[n]
        else:
            crops[k] = NO_CROP
        measured[k] = residual, hotspot
    for k in rest:
        (cropped, crop), (residual, hotspot) = crops[k], measured[k]
        done[k] = replace(
            asked[k].verdict, crop_searched=True, cropped=cropped, crop=crop, fine_residual=residual, hotspot=hotspot
        )
    return [done[k] for k in range(len(asked))]


def _polish_crops(
    a: np.ndarray, b: np.ndarray, crops: list[tuple[str, tuple[float, float, float, float]]]
) -> list[tuple[str, tuple[float, float, float, float]]]:
    """The crops found on the coarse thumbnails, each adjusted by up to one ``MARGIN_STEP`` per
    side to fit the fine stacks ``a`` and ``b`` (one pass along each axis, all pairs together)."""
    if not crops:
        return []
    second = np.array([cropped == "second" for cropped, _ in crops])[:, None, None]
    big, target = np.where(second, a, b), _normalise(np.where(second, b, a))
    mats, pairs = _resamplers(big.shape[-1])
    index = _pair_index(big.shape[-1])

    def near(lo: float, hi: float) -> np.ndarray:
        steps = (-MARGIN_STEP, 0.0, MARGIN_STEP)
        found = (index.get(_on_grid(lo + d_lo, hi + d_hi)) for d_lo in steps for d_hi in steps)
        mask = np.zeros(len(pairs), dtype=bool)
        mask[[i for i in found if i is not None]] = True
        return mask

    rows = mats[[index[_on_grid(top, bottom)] for _, (_, top, _, bottom) in crops]] @ big
    across = np.stack([near(left, right) for _, (left, _, right, _) in crops])
    x, _ = _best_allowed(_column_crop_scores, rows, target, across)
    down = np.stack([near(top, bottom) for _, (_, top, _, bottom) in crops])
    y, _ = _best_allowed(_row_crop_scores, big @ mats[x].swapaxes(-1, -2), target, down)
    return [
        (cropped, (float(pairs[i, 0]), float(pairs[j, 0]), float(pairs[i, 1]), float(pairs[j, 1])))
        for (cropped, _), i, j in zip(crops, x.tolist(), y.tolist(), strict=True)
    ]


def _on_grid(lo: float, hi: float) -> tuple[float, float]:
    """A pair of margins rounded onto the search grid, as keys of the resampler index."""
    margins = _margins()
    last = len(margins) - 1
    return (
        float(margins[min(last, round(lo / MARGIN_STEP))]) if lo > -1e-9 else -1.0,
        float(margins[min(last, round(hi / MARGIN_STEP))]) if hi > -1e-9 else -1.0,
    )


def _fine_list(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
    """:func:`_fine_measures` of two stacks of aligned pictures, as numbers (none for empty stacks)."""
    if not len(x):
        return []
    residuals, hotspots = _fine_measures(x, y)
    return list(zip(residuals.tolist(), hotspots.tolist(), strict=True))


def _fine_measures(
    x: np.ndarray, y: np.ndarray, details: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(fine residual, hotspot) of two aligned, normalised 64x64 thumbnails, or of two stacks of
    them (see :class:`Verdict`); ``details``, when known, is :func:`_detail` of each of ``x`` and ``y``.

    Both are normalised again over the pixels outside the locally changed area (the
    ``LOCAL_CHANGE`` share that differ most), so that a large opaque logo does not shift
    the whole picture's brightness scale (the fine detail, linear in the picture and blind to
    its mean, is divided by the same spread).
    """
    shape = x.shape
    x, y = x.reshape(*shape[:-2], -1), y.reshape(*shape[:-2], -1)
    magnitude = np.abs(x - y)
    kept = (magnitude <= _order_statistic(magnitude, 1 - LOCAL_CHANGE)[..., None]).astype(x.dtype)
    count = kept.sum(axis=-1)
    (x, spread_x), (y, spread_y) = (_normalise_over(picture, kept, count) for picture in (x, y))
    residual = (x - y).reshape(shape)
    trimmed = _trimmed_rms(residual)
    if details is None:
        detail = np.minimum(_detail(x.reshape(shape)), _detail(y.reshape(shape)))
    else:
        detail = np.minimum(details[0] / spread_x, details[1] / spread_y)
    return trimmed / (detail + DETAIL_FLOOR), _interior_peak(residual) / (trimmed + HOTSPOT_FLOOR)


def _normalise_over(values: np.ndarray, kept: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``values`` (a picture's or a stack's, flattened along the last axis) with mean 0 and
    standard deviation 1 over the ``kept`` (1) pixels, the divisor that took)."""
    mean = np.einsum("...i,...i->...", values, kept) / count
    centred = values - mean[..., None]
    spread = np.sqrt(np.einsum("...i,...i,...i->...", centred, centred, kept) / count) + 1e-6
    return centred / spread[..., None], spread


def _detail(x: np.ndarray) -> np.ndarray:
    """RMS of what a double [1, 2, 1] blur removes from a normalised picture (or each of a stack): its fine detail."""
    return np.sqrt(((x - _soften(_soften(x))) ** 2).mean(axis=(-2, -1)))


def _interior_peak(residual: np.ndarray) -> np.ndarray:
    """How much the worst 4x4 block away from the border (inside ``HOTSPOT_MARGIN``) stands
    out: its mean absolute residual minus 3 times the median block's (for each of a stack)."""
    magnitude = np.abs(residual)
    # Block sums by strided adds: numpy reduces a short inner axis slowly.
    columns = sum(magnitude[..., offset::HOTSPOT_BLOCK] for offset in range(HOTSPOT_BLOCK))
    blocks = sum(columns[..., offset::HOTSPOT_BLOCK, :] for offset in range(HOTSPOT_BLOCK)) / HOTSPOT_BLOCK**2
    ring = round(blocks.shape[-1] * HOTSPOT_MARGIN)
    inner = blocks[..., ring:-ring, ring:-ring]
    return inner.max(axis=(-2, -1)) - 3 * np.median(blocks.reshape(*blocks.shape[:-2], -1), axis=-1)


def _soften(a: np.ndarray) -> np.ndarray:
    """A [1, 2, 1] / 4 blur along both axes of a picture or each of a stack (edges repeated):
    after resampling a crop, detail near the thumbnail's resolution is aliased differently in the two pictures."""
    rows = 2 * a
    rows[..., 1:, :] += a[..., :-1, :]
    rows[..., 0, :] += a[..., 0, :]
    rows[..., :-1, :] += a[..., 1:, :]
    rows[..., -1, :] += a[..., -1, :]
    out = 2 * rows
    out[..., 1:] += rows[..., :-1]
    out[..., 0] += rows[..., 0]
    out[..., :-1] += rows[..., 1:]
    out[..., -1] += rows[..., -1]
    return out / 16


def _edge_strip(residual: np.ndarray) -> np.ndarray:
    """Largest ``EDGE_QUANTILE`` quantile (along the border) of the absolute residual over the
    four 2-pixel border strips, of a residual or each of a stack: a logo or watermark covering
    part of a border does not count.
    """
    magnitude = np.abs(residual)
    strips = np.stack(
        (
            magnitude[..., :2, :].mean(-2),
            magnitude[..., -2:, :].mean(-2),
            magnitude[..., :, :2].mean(-1),
            magnitude[..., :, -2:].mean(-1),
        ),
        axis=-2,
    )
    return np.sort(strips, axis=-1)[..., int(EDGE_QUANTILE * (strips.shape[-1] - 1))].max(axis=-1)


def _trimmed_rms(residual: np.ndarray) -> np.ndarray:
    """RMS of the residual (or of each of a stack) without its ``LOCAL_CHANGE`` share of largest values."""
    squared = (residual**2).reshape(*residual.shape[:-2], -1)
    keep = int(round(squared.shape[-1] * (1 - LOCAL_CHANGE)))
    squared.partition(keep - 1, axis=-1)  # in place: the squares are this function's own
    return np.sqrt(squared[..., :keep].mean(axis=-1))


def _order_statistic(values: np.ndarray, share: float) -> np.ndarray:
    """The value below which ``share`` of the values along the last axis lie (the lower one; no
    interpolation), for each row."""
    k = int(share * (values.shape[-1] - 1))
    return np.partition(values, k, axis=-1)[..., k]


def _apply_crops(big: np.ndarray, crops: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Each of a stack of square pictures ``big`` cropped by its margins (left, top, right,
    bottom) and resampled to its own size."""
    mats, _ = _resamplers(big.shape[-1])
    index = _pair_index(big.shape[-1])
    rows = mats[[index[(top, bottom)] for _, top, _, bottom in crops]]
    columns = mats[[index[(left, right)] for left, _, right, _ in crops]]
    return rows @ big @ columns.swapaxes(-1, -2)


@lru_cache(maxsize=2)
def _pair_index(n: int) -> dict[tuple[float, float], int]:
    """The position of each (low, high) margin pair among :func:`_resamplers`' matrices for ``n`` pixels."""
    return {(low, high): i for i, (low, high) in enumerate(_resamplers(n)[1].tolist())}
