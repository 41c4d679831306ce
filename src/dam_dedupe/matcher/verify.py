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

import threading
from collections import OrderedDict
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


def _best_crop(
    big: np.ndarray, small: np.ndarray, aspect: float | None, max_margin: float = MAX_MARGIN
) -> tuple[float, tuple[float, float, float, float]]:
    """The crop of ``big`` that best matches ``small``: (mean squared residual, margins l, t, r, b).

    ``aspect`` is log(aspect ratio of small / aspect ratio of big) from the full-size
    dimensions: a crop must explain it (within ``ASPECT_TOLERANCE``), so a shifted view
    of the same size, as in a burst or a stereo pair, cannot pass for a crop.
    """
    mats, pairs = _resamplers(big.shape[0])
    scales = np.log(1.0 - pairs.sum(axis=1))
    target = _normalise(small)

    within = pairs.max(axis=1) <= max_margin + 1e-9

    def allowed(other_scale: float, sign: float) -> np.ndarray:
        if aspect is None:
            return within
        return within & (np.abs(sign * (scales - other_scale) - aspect) <= ASPECT_TOLERANCE)

    # First every centred crop (equal margins on the two sides of each axis), all in one call.
    centred = np.nonzero(pairs[:, 0] == pairs[:, 1])[0]
    ok = np.broadcast_to(within[centred], (len(centred), len(centred)))
    if aspect is not None:  # as allowed(scale of row y, 1.0) for each row
        ok = ok & (np.abs(scales[centred][None, :] - scales[centred][:, None] - aspect) <= ASPECT_TOLERANCE)
    if not ok.any():
        return np.inf, (0.0, 0.0, 0.0, 0.0)
    # Each crop is scored from sums (see _column_crop_scores), without resampling the picture.
    rows = mats[centred] @ big
    sums = _resampler_sums(big.shape[0])
    column_sums, flat_mats, grams = sums
    count = len(centred)
    errs = _crop_scores(
        rows.sum(axis=1) @ column_sums[centred].T,
        (rows.transpose(0, 2, 1) @ rows).reshape(count, -1) @ grams[centred].T,
        (target.T @ rows).reshape(count, -1) @ flat_mats[centred].T,
        target.size,
    )
    errs[~ok] = np.inf
    y_at, x_at = np.unravel_index(int(np.argmin(errs)), errs.shape)
    best_y, best_x = int(centred[y_at]), int(centred[x_at])
    for _ in range(2):
        candidates = np.nonzero(allowed(float(scales[best_y]), 1.0))[0]
        errs = _column_crop_scores(mats[best_y] @ big, target, _some(sums, candidates))
        best_x = int(candidates[np.argmin(errs)])
        candidates = np.nonzero(allowed(float(scales[best_x]), -1.0))[0]
        errs = _row_crop_scores(big @ mats[best_x].T, target, _some(sums, candidates))
        best_y, score = int(candidates[np.argmin(errs)]), float(errs.min())
    (left, right), (top, bottom) = pairs[best_x], pairs[best_y]
    return score, (float(left), float(top), float(right), float(bottom))


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


def _some(sums: Sums, candidates: np.ndarray | list[int]) -> Sums:
    """The rows of ``sums`` of some resamplers only: cheaper when they are few."""
    return sums[0][candidates], sums[1][candidates], sums[2][candidates]


def _column_crop_scores(rows: np.ndarray, target: np.ndarray, sums: Sums) -> np.ndarray:
    """Mean squared residual of each normalised picture ``rows @ M.T`` (M each resampler of
    ``sums``) against the normalised ``target``, 2 - 2 x their correlation, computed from sums
    without forming the pictures: the sum of a picture is the
    column sums of M and of ``rows`` multiplied, its product with the target M's with
    ``target.T @ rows``, and its sum of squares MᵀM's with ``rows.T @ rows`` (three products of
    a matrix with a vector where each picture cost a 32x32 matrix product)."""
    column_sums, mats, grams = sums
    return _crop_scores(
        column_sums @ rows.sum(axis=0), grams @ (rows.T @ rows).ravel(), mats @ (target.T @ rows).ravel(), target.size
    )


def _row_crop_scores(columns: np.ndarray, target: np.ndarray, sums: Sums) -> np.ndarray:
    """:func:`_column_crop_scores` for the pictures ``M @ columns`` (a crop along the other axis)."""
    column_sums, mats, grams = sums
    return _crop_scores(
        column_sums @ columns.sum(axis=1),
        grams @ (columns @ columns.T).ravel(),
        mats @ (target @ columns.T).ravel(),
        target.size,
    )


def _crop_scores(total: np.ndarray, squares: np.ndarray, products: np.ndarray, n: int) -> np.ndarray:
    """2 - 2 x the correlation of each candidate picture with the normalised target, from the
    candidate's sum, sum of squares and product with the target (``n`` pixels): the mean squared
    residual of the two normalised."""
    mean = total / n
    var = squares / n - mean**2
    return 2.0 - 2.0 * (products / n) / (np.sqrt(np.maximum(var, 0.0)) + 1e-6)


def _colour(chroma_a: str | None, chroma_b: str | None, symmetry: str) -> tuple[float | None, str]:
    """(mean chroma difference or None, which image is greyscale) for two chroma signatures."""
    return _colours([(chroma_a, chroma_b, symmetry)])[0]


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


def verify(
    thumb_a: bytes,
    thumb_b: bytes,
    symmetry: str = "identity",
    chroma_a: str | None = None,
    chroma_b: str | None = None,
    aspect: float | None = None,
    search: bool = True,
    max_margin: float = MAX_MARGIN,
) -> Verdict:
    """Measure how well ``thumb_b`` is explained as a copy of ``thumb_a`` after ``symmetry``.

    ``aspect`` is log(aspect ratio of b / aspect ratio of a after ``symmetry``) from the
    full-size dimensions, when known. With ``search`` false, or when the two are nearly
    identical as they stand, no crop is searched; otherwise margins up to ``max_margin`` a side.
    """
    a = np.ascontiguousarray(DIHEDRAL[symmetry](thumbnail_array(thumb_a)))  # type: ignore[operator]
    b = thumbnail_array(thumb_b)
    x, y = _normalise(a), _normalise(b)
    searched = search and float(((x - y) ** 2).mean()) > 0.005
    cropped, crop = _search_crop(a, b, aspect, max_margin) if searched else NO_CROP
    x, y = _aligned(a, b, cropped, crop)
    rms, changed, trimmed, edge_strip = (float(value) for value in _coarse_measures(x - y))
    colour_distance, greyscale = _colour(chroma_a, chroma_b, symmetry)
    return Verdict(symmetry, rms, changed, trimmed, edge_strip, crop, cropped, colour_distance, greyscale, searched)


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
            fine = _normalise(raw.astype(np.float32))
            coarse = _normalise(
                raw.reshape(-1, THUMBNAIL_SIDE, 2, THUMBNAIL_SIDE, 2).mean(axis=(2, 4), dtype=np.float32)
            )
            coarse.flags.writeable = fine.flags.writeable = False
            for k, (thumb, detail) in enumerate(zip(missing, _detail(fine).tolist(), strict=True)):
                _prepared[thumb] = Prepared(coarse[k], fine[k], detail)
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
            rms, changed, trimmed, edge_strip = measures
            found.append(
                Verdict(
                    symmetry,
                    rms,
                    changed,
                    trimmed,
                    edge_strip,
                    *_UNCROPPED,
                    colour_distance,
                    greyscale,
                    False,
                    residual,
                    hotspot,
                )
            )
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


def _search_crop(
    a: np.ndarray, b: np.ndarray, aspect: float | None, max_margin: float = MAX_MARGIN
) -> tuple[str, tuple[float, float, float, float]]:
    """(which picture is cropped, its margins) for the crop that best explains the pair, or :data:`NO_CROP`."""
    x, y = _normalise(a), _normalise(b)
    direct = float(((x - y) ** 2).mean())
    score_b, crop_b = _best_crop(a, b, aspect, max_margin)
    score_a, crop_a = _best_crop(b, a, None if aspect is None else -aspect, max_margin)
    if min(score_a, score_b) >= direct:
        return NO_CROP
    return ("second", crop_b) if score_b <= score_a else ("first", crop_a)


def _aligned(
    a: np.ndarray, b: np.ndarray, cropped: str, crop: tuple[float, float, float, float], soften: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` normalised, with the crop applied to the cropped one and, if ``soften``,
    both softened after it."""
    if not cropped:
        return _normalise(a), _normalise(b)
    big, small = (a, b) if cropped == "second" else (b, a)
    x, y = _normalise(_apply_crop(big, crop)), _normalise(small)
    if cropped == "first":
        x, y = y, x
    if not soften:
        return x, y
    return _normalise(_soften(x)), _normalise(_soften(y))


def refine(
    thumb_a: bytes,
    thumb_b: bytes,
    verdict: Verdict,
    aspect: float | None = None,
    limits: tuple[float, float] = (np.inf, np.inf),
    max_margin: float = MAX_MARGIN,
) -> Verdict:
    """Add the finer check to a coarse ``verdict``: ``fine_residual`` and ``hotspot`` from the 64x64 thumbnails.

    The symmetry found on the 32x32 thumbnails is applied to the 64x64 ones, and of the
    uncropped alignment and the coarse crop (adjusted to the fine thumbnails), the one that
    leaves the smaller fine residual is kept. When the coarse check skipped the crop search
    and the uncropped measures exceed ``limits`` (the largest fine residual and hotspot that
    pass), the search is run now, for margins up to ``max_margin``.
    """
    fine_a, fine_b = fine_array(thumb_a), fine_array(thumb_b)
    a = np.ascontiguousarray(DIHEDRAL[verdict.symmetry](fine_a))  # type: ignore[operator]
    cropped, crop = verdict.cropped, verdict.crop
    plain = _aligned(a, fine_b, *NO_CROP)
    measured: list[tuple[float, float]] = []
    if not verdict.crop_searched:
        measured = _fine_pairs([plain])
        if measured[0][0] <= limits[0] and measured[0][1] <= limits[1]:
            return replace(verdict, fine_residual=measured[0][0], hotspot=measured[0][1])
        coarse_a = np.ascontiguousarray(DIHEDRAL[verdict.symmetry](thumbnail_array(thumb_a)))  # type: ignore[operator]
        cropped, crop = _search_crop(coarse_a, thumbnail_array(thumb_b), aspect, max_margin)
    if not cropped:
        fine_residual, hotspot = (measured or _fine_pairs([plain]))[0]
    else:
        # The uncropped alignment (unless measured above), the cropped one softened (its
        # residual) and not (its hotspot), measured together.
        crop = _polish_crop(a, fine_b, cropped, crop)
        sharp = _aligned(a, fine_b, cropped, crop, soften=False)
        soft = (_normalise(_soften(sharp[0])), _normalise(_soften(sharp[1])))
        found = measured + _fine_pairs([plain, soft, sharp][len(measured) :])
        (fine_residual, hotspot), (cropped_residual, _), (_, sharp_hotspot) = found
        hotspot = min(hotspot, sharp_hotspot)
        if cropped_residual < fine_residual:
            fine_residual = cropped_residual
        else:
            cropped, crop = NO_CROP
    return replace(
        verdict, crop_searched=True, cropped=cropped, crop=crop, fine_residual=fine_residual, hotspot=hotspot
    )


def _polish_crop(
    a: np.ndarray, b: np.ndarray, cropped: str, crop: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """The crop found on the coarse thumbnails, adjusted by up to one ``MARGIN_STEP`` per
    side to fit the fine ones (one pass along each axis)."""
    if not cropped:
        return crop
    big, small = (a, b) if cropped == "second" else (b, a)
    mats, pairs = _resamplers(big.shape[0])
    index = _pair_index(big.shape[0])
    target = _normalise(small)
    left, top, right, bottom = crop

    def near(lo: float, hi: float) -> list[int]:
        steps = (-MARGIN_STEP, 0.0, MARGIN_STEP)
        found = (index.get(_on_grid(lo + d_lo, hi + d_hi)) for d_lo in steps for d_hi in steps)
        return [i for i in found if i is not None]

    sums = _resampler_sums(big.shape[0])
    rows = mats[index[_on_grid(top, bottom)]] @ big
    candidates = near(left, right)
    x = candidates[int(np.argmin(_column_crop_scores(rows, target, _some(sums, candidates))))]
    columns = big @ mats[x].T
    candidates = near(top, bottom)
    y = candidates[int(np.argmin(_row_crop_scores(columns, target, _some(sums, candidates))))]
    (left, right), (top, bottom) = pairs[x], pairs[y]
    return float(left), float(top), float(right), float(bottom)


def _on_grid(lo: float, hi: float) -> tuple[float, float]:
    """A pair of margins rounded onto the search grid, as keys of the resampler index."""
    margins = _margins()
    last = len(margins) - 1
    return (
        float(margins[min(last, round(lo / MARGIN_STEP))]) if lo > -1e-9 else -1.0,
        float(margins[min(last, round(hi / MARGIN_STEP))]) if hi > -1e-9 else -1.0,
    )


def _fine_pairs(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[float, float]]:
    """:func:`_fine_measures` of a few aligned pairs, stacked into one call, as numbers."""
    residuals, hotspots = _fine_measures(np.stack([x for x, _ in pairs]), np.stack([y for _, y in pairs]))
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


def _apply_crop(big: np.ndarray, crop: tuple[float, float, float, float]) -> np.ndarray:
    """``big`` (square) cropped by margins (left, top, right, bottom) and resampled to its own size."""
    mats, _ = _resamplers(big.shape[0])
    index = _pair_index(big.shape[0])
    left, top, right, bottom = crop
    return mats[index[(top, bottom)]] @ big @ mats[index[(left, right)]].T


@lru_cache(maxsize=2)
def _pair_index(n: int) -> dict[tuple[float, float], int]:
    """The position of each (low, high) margin pair among :func:`_resamplers`' matrices for ``n`` pixels."""
    return {(low, high): i for i, (low, high) in enumerate(_resamplers(n)[1].tolist())}
