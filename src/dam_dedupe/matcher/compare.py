"""Explaining why two fingerprints are copies: the match kind and its evidence."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dam_dedupe.matcher.blas import one_thread
from dam_dedupe.matcher.index import popcount
from dam_dedupe.matcher.perceptual import (
    DIHEDRAL,
    FEATURELESS_STD,
    chroma_array,
    dct_dihedral,
    dct_dihedral_array,
    grad_hash_of,
    thumbnail_array,
    tone_of,
)
from dam_dedupe.matcher.settings import MatchSettings
from dam_dedupe.matcher.verify import (
    MAX_MARGIN,
    PAIRS_AT_ONCE,
    Asked,
    Refining,
    Verdict,
    packed_plain,
    plain_verdicts,
    refine,
    unpacked_plain,
    verify,
)
from dam_dedupe.records import Fingerprint, MatchKind

QUARTER_TURNS = frozenset({"rotate-90", "rotate-270", "transpose", "transverse"})
"""Symmetries that swap width and height."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """How one image relates to another.

    Attributes:
        match: ``exact``, ``near`` or ``transformed``.
        evidence: the facts behind it, for reviewers (hashes compared, distances, relation).
    """

    match: MatchKind
    evidence: dict[str, object]


EDGE_RATIO = 2.0
"""A border residual above ``max_edge_strip`` is still accepted when it is at most this many
times the residual elsewhere: a crop of a fine texture leaves the same residual everywhere,
while a shifted view shows new content along a border and little change inside."""

CROP_RESIDUAL_SLACK = 1.3
"""Factor on ``max_residual`` for a pair that needed a crop to align: the crop is resampled
onto the other picture's grid, which blurs a fine texture's detail differently in each (the wider
the crop, the more: scikit-image's gravel cropped by 4-4.5% a side leaves 0.278, 1.26x)."""

SAME_SIZE = 0.005
"""Relative difference of each side within which two pictures count as the same pixel size."""
SAME_SIZE_MARGIN = 0.01
"""Largest crop margin a side between two pictures of the same pixel size (see :func:`judge`)."""

IDENTITY_PREFERENCE = 6
"""Bits of ``dct`` distance by which :func:`relaxed_verdict` prefers trying a pair as it stands:
a copy as it stands is reported ``near`` even when a symmetry of a near-symmetric picture fits
as well, and a rotated copy is not first tried (and its crop searched) as it stands."""

TONE_FLOOR = 96.0
"""Grey level below which :func:`tone_change` measures a change of mean brightness against this
level instead of the brighter picture's own: on a dark picture a few levels are not a new version."""

RESHAPED = 0.005
"""Change of aspect ratio (log ratio) beyond which a pair that matched without a crop search is
said to be cropped or reshaped: resizing to whole pixels changes it by less, and a copy that
matches well as it stands is not searched for its crop (that would cost every pair)."""

FLAT_TOLERANCE = 3.0
"""Largest difference of mean grey level, and of mean chroma, between two featureless copies."""


def comparable(fp: Fingerprint) -> bool:
    """Whether a fingerprint can be matched perceptually: it is of the current kind (older
    ones, without a ``tone``, match only byte for byte until a scan renews them) and its
    picture has some structure. Its thumbnail may still have to be loaded (see
    :func:`~dam_dedupe.matcher.find_groups`)."""
    tone = tone_of(fp.perceptual)
    return "dct" in fp.perceptual and tone is not None and tone[1] >= FEATURELESS_STD


def tone_change(a: Fingerprint, b: Fingerprint) -> float:
    """How far apart the two pictures' mean grey levels are: their difference divided by the
    brighter mean (at least ``TONE_FLOOR``).

    The normalised thumbnails leave out exactly the tone, so a light and a dark version of one
    design look the same to them; this tells them apart (and a light or dark picture from its
    negative, which the thumbnails also tell apart by its turned sign). A
    brightness change of 15% moves the mean by at most 15% of the brighter picture, a contrast
    change hardly moves it, and a greyscale copy keeps it; a dark version of a light design is
    most of the scale away. 0 when a fingerprint has no tone.
    """
    tone_a, tone_b = tone_of(a.perceptual), tone_of(b.perceptual)
    if tone_a is None or tone_b is None:
        return 0.0
    return abs(tone_a[0] - tone_b[0]) / max(tone_a[0], tone_b[0], TONE_FLOOR)


def flat(fp: Fingerprint) -> bool:
    """Whether a fingerprint is of a featureless picture (a flat colour), matched by colour alone."""
    tone = tone_of(fp.perceptual)
    return "chroma" in fp.perceptual and tone is not None and tone[1] < FEATURELESS_STD


def flat_level(fp: Fingerprint) -> float:
    """Mean grey level of a fingerprint's picture."""
    tone = tone_of(fp.perceptual)
    return tone[0] if tone else 0.0


def flat_match(a: Fingerprint, b: Fingerprint) -> dict[str, object] | None:
    """Evidence that two featureless pictures are one flat colour, or ``None``."""
    if not (flat(a) and flat(b)):
        return None
    level = abs(flat_level(a) - flat_level(b))
    chroma = float(np.abs(chroma_array(a.perceptual["chroma"]) - chroma_array(b.perceptual["chroma"])).mean())
    if level > FLAT_TOLERANCE or chroma > FLAT_TOLERANCE:
        return None
    return {
        "relation": ["featureless: one flat colour", "converted" if a.format != b.format else "re-encoded"],
        "grey_level_difference": round(level, 1),
        "chroma_difference": round(chroma, 1),
        "size": {"a": [a.width, a.height], "b": [b.width, b.height]},
        "format": {"a": a.format, "b": b.format},
    }


def dct_distance(a: Fingerprint, b: Fingerprint, symmetry: str = "identity") -> int:
    """Bits in which ``b``'s dct hash differs from ``a``'s after ``symmetry``."""
    return (dct_dihedral(int(a.perceptual["dct"], 16), symmetry) ^ int(b.perceptual["dct"], 16)).bit_count()


def _distance(a: Fingerprint, b: Fingerprint, family: str) -> int:
    """Bits in which two fingerprints' hashes of one family differ."""
    return (int(a.perceptual[family], 16) ^ int(b.perceptual[family], 16)).bit_count()


def aspect_change(a: Fingerprint, b: Fingerprint, symmetry: str) -> float:
    """log(aspect ratio of ``b``) minus log(aspect ratio of ``a`` turned by ``symmetry``)."""
    wa, ha = (a.height, a.width) if symmetry in QUARTER_TURNS else (a.width, a.height)
    if min(wa, ha, b.width, b.height) <= 0:
        return 0.0
    return math.log(b.width / b.height) - math.log(wa / ha)


def same_size(a: Fingerprint, b: Fingerprint, symmetry: str) -> bool:
    """Whether ``b`` has the pixel size of ``a`` turned by ``symmetry`` (within ``SAME_SIZE`` of each side)."""
    wa, ha = (a.height, a.width) if symmetry in QUARTER_TURNS else (a.width, a.height)
    return abs(b.width - wa) <= SAME_SIZE * wa and abs(b.height - ha) <= SAME_SIZE * ha


def judge(a: Fingerprint, b: Fingerprint, symmetry: str, settings: MatchSettings) -> Verdict | None:
    """The verification verdict if ``b`` is a copy of ``a`` after ``symmetry`` under ``settings``, else ``None``.

    Pictures whose tones are too far apart (:func:`tone_change`) are not compared at all. The two are
    then compared as they stand; a crop is searched only when that fails.
    Between pictures of the same pixel size the crop may shift the picture by no more than
    ``SAME_SIZE_MARGIN`` a side (decoders align a turned picture's pixels differently): a crop
    saved at exactly the size of its original is rare, while a shifted view from the same
    camera (a burst) has that size and can pass for a crop of it.
    """
    return judge_many([(a, b, symmetry)], settings)[0]


Pair = tuple[Fingerprint, Fingerprint, str]
"""Two fingerprints and the symmetry that turns the first into the second."""


def judge_many(pairs: Sequence[Pair], settings: MatchSettings) -> list[Verdict | None]:
    """:func:`judge` for many pairs at once, with the same verdicts.

    Every pair is first measured as it stands, all of them in a few numpy calls
    (:func:`~dam_dedupe.matcher.verify.plain_verdicts`); only the pairs that this does not
    settle as copies (a crop, a shifted view, an unrelated picture) go on to the crop search,
    one at a time.
    """
    return _judged(pairs, settings, _copies_kept)


def judged_with_copies(
    pairs: Sequence[Pair], settings: MatchSettings
) -> tuple[list[Verdict | None], dict[bytes, bytes]]:
    """:func:`judge_many`'s verdicts, and the plain measures of the pairs it settled a copy as they
    stand: what a Dask worker that verified pairs for a match (:mod:`dam_dedupe.dask_verify`) sends
    back, for the matching process to :func:`keep_copies` as its own :func:`copies_kept` would have."""
    kept: dict[bytes, bytes] = {}
    return _judged(pairs, settings, kept), kept


def keep_copies(kept: dict[bytes, bytes]) -> None:
    """Keep copies' plain measures measured elsewhere (:func:`judged_with_copies`) while :func:`copies_kept` holds."""
    with _kept_lock:
        if _copies_kept is not None:
            _copies_kept.update(kept)


def _judged(pairs: Sequence[Pair], settings: MatchSettings, kept: dict[bytes, bytes] | None) -> list[Verdict | None]:
    """:func:`judge_many`, the plain measures of the copies it settles as they stand put in ``kept``."""
    verdicts: list[Verdict | None] = [None] * len(pairs)
    open_pairs = [k for k, (a, b, symmetry) in enumerate(pairs) if _may_match(a, b, symmetry, settings)]
    unsettled: dict[tuple[str, str, str, MatchSettings], list[int]] = {}
    plains: dict[int, tuple[Verdict, bool]] = {}
    for k, verdict in zip(open_pairs, _plain([pairs[k] for k in open_pairs]), strict=True):
        a, b, symmetry = pairs[k]
        resized = not same_size(a, b, symmetry)
        fine_residual, hotspot = verdict.fine_residual, verdict.hotspot
        assert fine_residual is not None and hotspot is not None
        fine_pass = fine_residual <= settings.max_fine_residual and hotspot <= settings.max_hotspot
        if _coarse_pass(verdict, settings, resized) and fine_pass:
            verdicts[k] = verdict
            if kept is not None:
                kept[_copy_key(a, b, symmetry)] = packed_plain(verdict)
            continue
        unsettled.setdefault((a.sha256, b.sha256, symmetry, settings), []).append(k)
        plains[k] = verdict, resized
    with _kept_lock:
        known = {key: _searched_kept[key] for key in unsettled if key in _searched_kept}
        for key in known:
            _searched_kept.move_to_end(key)
    missing = [key for key in unsettled if key not in known]
    firsts = [unsettled[key][0] for key in missing]
    found: list[Verdict | None] = []
    for start in range(0, len(firsts), PAIRS_AT_ONCE):  # stacks that stay in the processor's cache
        part = firsts[start : start + PAIRS_AT_ONCE]
        found += _searched([(pairs[k][0], pairs[k][1], *plains[k]) for k in part], settings)
    with _kept_lock:
        for key, searched in zip(missing, found, strict=True):
            known[key] = _searched_kept[key] = searched
        while len(_searched_kept) > SEARCHED_KEPT:
            _searched_kept.popitem(last=False)
    for key, ks in unsettled.items():
        for k in ks:
            verdicts[k] = known[key]
    return verdicts


SEARCHED_KEPT = 8192
"""Pairs whose verdict after the crop search is kept, by content hash, symmetry and settings: the
same pair is asked while its group forms, when a formed group of up to 40 is checked again, and
when it is explained against the canonical, and a crop search costs about a hundred plain pairs."""
_searched_kept: OrderedDict[tuple[str, str, str, MatchSettings], Verdict | None] = OrderedDict()


PLAIN_KEPT = 8192
"""Pairs whose plain measures (:func:`_plain`) are kept, about 300 bytes each."""
_plain_kept: OrderedDict[tuple[str, str, str], Verdict] = OrderedDict()
_kept_lock = threading.Lock()
"""Held while the kept verdicts are read or changed: two matches may run in one process's threads."""
_copies_kept: dict[bytes, bytes] | None = None
"""The plain measures of every pair settled a copy without a crop search, while :func:`copies_kept` holds:
by :func:`_copy_key`, packed (:func:`~dam_dedupe.matcher.verify.packed_plain`)."""
_keepers = 0
_SYMMETRY_NUMBER = {name: number for number, name in enumerate(DIHEDRAL)}


def _copy_key(a: Fingerprint, b: Fingerprint, symmetry: str) -> bytes:
    """A pair's key among the kept copies, 17 bytes: the first 64 bits of each content hash and the
    symmetry. Two pairs that share it would need both hashes to agree in 64 bits."""
    return bytes.fromhex(a.sha256[:16]) + bytes.fromhex(b.sha256[:16]) + bytes((_SYMMETRY_NUMBER[symmetry],))


@contextmanager
def copies_kept() -> Iterator[None]:
    """Keep the plain measures of every pair that :func:`judge_many` settles a copy as it stands
    until the block ends, whatever ``PLAIN_KEPT`` says: a match explains each member against its
    canonical after the whole library is grouped, by when the last ``PLAIN_KEPT`` pairs are those of
    the last few thousand images, while the canonical is most often the representative that verified
    the member. About 150 bytes a copy, for the length of one match (nested blocks, as two matches in
    one process's threads, share them until the last ends)."""
    global _copies_kept, _keepers
    with _kept_lock:
        _keepers += 1
        if _copies_kept is None:
            _copies_kept = {}
    try:
        yield
    finally:
        with _kept_lock:
            _keepers -= 1
            if not _keepers:
                _copies_kept = None


def _plain(pairs: list[Pair]) -> list[Verdict]:
    """:func:`~dam_dedupe.matcher.verify.plain_verdicts` of the pairs, the last ``PLAIN_KEPT`` kept by
    content hash, and within :func:`copies_kept` every copy's: they do not depend on the settings, so
    a member verified against its group's representative is not measured again when it is explained
    against it as the canonical."""
    with _kept_lock:
        keys = [(a.sha256, b.sha256, symmetry) for a, b, symmetry in pairs]
        found = {}
        if _copies_kept:
            for k, (a, b, symmetry) in enumerate(pairs):
                packed = _copies_kept.get(_copy_key(a, b, symmetry))
                if packed is not None:
                    found[k] = unpacked_plain(symmetry, packed)
        missing = [k for k, key in enumerate(keys) if key not in _plain_kept and k not in found]
        measured = plain_verdicts(
            [(_thumbnail(pairs[k][0]), _thumbnail(pairs[k][1]), pairs[k][2]) for k in missing],
            [(pairs[k][0].perceptual.get("chroma"), pairs[k][1].perceptual.get("chroma")) for k in missing],
        )
        found |= dict(zip(missing, measured, strict=True))
        for k, key in enumerate(keys):
            if k in found:
                _plain_kept[key] = found[k]
            else:
                found[k] = _plain_kept[key]
            _plain_kept.move_to_end(key)
        while len(_plain_kept) > PLAIN_KEPT:
            _plain_kept.popitem(last=False)
        return [found[k] for k in range(len(pairs))]


def _may_match(a: Fingerprint, b: Fingerprint, symmetry: str, settings: MatchSettings) -> bool:
    """Whether a pair is worth verifying: both comparable, aspect ratios and tones close enough."""
    if not (comparable(a) and comparable(b)) or abs(aspect_change(a, b, symmetry)) > settings.max_aspect_change:
        return False
    return tone_change(a, b) <= settings.max_tone_change


def _thumbnail(fp: Fingerprint) -> bytes:
    """A fingerprint's thumbnail, which verification cannot do without."""
    if fp.thumbnail is None:
        raise ValueError("a fingerprint was compared without its thumbnail; load it first")
    return fp.thumbnail


Unsettled = tuple[Fingerprint, Fingerprint, Verdict, bool]
"""A pair whose plain verdict did not settle it: (a, b, plain verdict, whether their pixel sizes differ)."""


def _searched(asked: list[Unsettled], settings: MatchSettings) -> list[Verdict | None]:
    """The rest of :func:`judge` for pairs whose plain verdict (as they stand, uncropped) did not
    settle them: a crop search for those the coarse check failed, the finer check
    (:func:`~dam_dedupe.matcher.verify.refine`) after; each step for all the pairs still open at once."""
    verdicts: list[Verdict | None] = [plain for _, _, plain, _ in asked]
    again = [k for k, (_, _, plain, resized) in enumerate(asked) if not _coarse_pass(plain, settings, resized)]
    for k, verdict in zip(again, verify([_asked(*asked[k]) for k in again]), strict=True):
        verdicts[k] = verdict if _coarse_pass(verdict, settings, asked[k][3]) else None
    limits = (settings.max_fine_residual, settings.max_hotspot)
    refining = [(k, verdict) for k, verdict in enumerate(verdicts) if verdict is not None]
    for (k, _), verdict in zip(refining, refine([_refining(asked[k], v, limits) for k, v in refining]), strict=True):
        too_far = verdict.fine_residual is not None and verdict.fine_residual > settings.max_fine_residual
        too_hot = verdict.hotspot is not None and verdict.hotspot > settings.max_hotspot
        verdicts[k] = None if too_far or too_hot else verdict
    return verdicts


def _asked(a: Fingerprint, b: Fingerprint, plain: Verdict, resized: bool) -> Asked:
    """The crop search's question for an unsettled pair (a shift of at most ``SAME_SIZE_MARGIN`` between
    pictures of one pixel size)."""
    chroma_a, chroma_b = a.perceptual.get("chroma"), b.perceptual.get("chroma")
    margin = MAX_MARGIN if resized else SAME_SIZE_MARGIN
    aspect = aspect_change(a, b, plain.symmetry)
    return Asked(_thumbnail(a), _thumbnail(b), plain.symmetry, chroma_a, chroma_b, aspect, max_margin=margin)


def _refining(pair: Unsettled, verdict: Verdict, limits: tuple[float, float]) -> Refining:
    """The finer check's question for an unsettled pair whose coarse verdict passed."""
    a, b, _, resized = pair
    margin = MAX_MARGIN if resized else SAME_SIZE_MARGIN
    return Refining(_thumbnail(a), _thumbnail(b), verdict, aspect_change(a, b, verdict.symmetry), limits, margin)


def _coarse_pass(verdict: Verdict, settings: MatchSettings, resized: bool) -> bool:
    """Whether a verdict meets the thresholds of the coarse (32x32) check; ``resized``: the
    two pictures differ in pixel size (then a crop earns ``CROP_RESIDUAL_SLACK``)."""
    residual_limit = settings.max_residual * (CROP_RESIDUAL_SLACK if verdict.cropped and resized else 1.0)
    return (
        verdict.trimmed_rms <= residual_limit
        and verdict.changed <= settings.max_changed
        and verdict.edge_strip <= max(settings.max_edge_strip, EDGE_RATIO * verdict.trimmed_rms)
        and (verdict.colour_distance is None or verdict.colour_distance <= settings.max_colour_distance)
    )


SETTLING_ROOM = 1.0
"""How large the :func:`threshold_share` of two members against one representative may be in all
for the two to count as a copy of each other unverified (see :mod:`~dam_dedupe.matcher.formation`):
the measures are distances that obey the triangle inequality or nearly do, so the two are within the
sum of their shares of each other's thresholds, here the thresholds as set, and the relaxed
thresholds that admission and the final check apply (``group_slack`` times those, 1.5 by default)
leave half as much again for the measures that only nearly obey it (the fine residual and the
hotspot are divided by the pictures' own detail; the changed area and the border strip are a share
and a quantile)."""


def threshold_share(a: Fingerprint, b: Fingerprint, verdict: Verdict, settings: MatchSettings) -> float:
    """The largest share of its threshold under ``settings`` that any measure of a verified pair
    uses (at most 1 for a copy; 0 for identical pictures)."""
    resized = not same_size(a, b, verdict.symmetry)
    residual_limit = settings.max_residual * (CROP_RESIDUAL_SLACK if verdict.cropped and resized else 1.0)
    shares = [
        verdict.trimmed_rms / residual_limit,
        verdict.changed / settings.max_changed,
        verdict.edge_strip / max(settings.max_edge_strip, EDGE_RATIO * verdict.trimmed_rms),
        tone_change(a, b) / settings.max_tone_change,
        (verdict.fine_residual or 0.0) / settings.max_fine_residual,
        (verdict.hotspot or 0.0) / settings.max_hotspot,
    ]
    if verdict.colour_distance is not None:
        shares.append(verdict.colour_distance / settings.max_colour_distance)
    return max(shares)


def compare(a: Fingerprint, b: Fingerprint, settings: MatchSettings) -> Comparison | None:
    """Return how ``b`` relates to ``a``, or ``None`` if they are not copies under ``settings``.

    ``exact`` for identical bytes; ``near`` for a copy as it stands; ``transformed`` for a
    copy rotated by 90, 180 or 270 degrees or mirrored (when ``settings.transforms``).
    The verification thresholds are relaxed by ``settings.group_slack``: every pair of
    members of a group :func:`~dam_dedupe.matcher.find_groups` made passes this test.
    """
    return compare_pairs([(a, b)], settings)[0]


def compare_pairs(pairs: Sequence[tuple[Fingerprint, Fingerprint]], settings: MatchSettings) -> list[Comparison | None]:
    """:func:`compare` of each pair, verified together: clusters' members against their
    canonicals, thousands of them for the most-copied image and one or two for most clusters,
    so that many small clusters are explained in a few numpy calls, not a few calls each."""
    found: list[Comparison | None] = [None] * len(pairs)
    perceptual: list[int] = []
    for k, (a, b) in enumerate(pairs):
        if a.sha256 == b.sha256:
            found[k] = Comparison("exact", {"relation": ["identical"], "sha256": a.sha256})
        elif settings.perceptual and (flat(a) or flat(b)):
            match = flat_match(a, b)
            found[k] = Comparison("near", match) if match else None
        elif settings.perceptual:
            perceptual.append(k)
    with one_thread():
        verdicts = relaxed_verdicts([pairs[k] for k in perceptual], settings)
    for k, verdict in zip(perceptual, verdicts, strict=True):
        if verdict is not None:
            kind: MatchKind = "near" if verdict.symmetry == "identity" else "transformed"
            found[k] = Comparison(kind, evidence(*pairs[k], verdict))
    return found


def relaxed_verdict(a: Fingerprint, b: Fingerprint, settings: MatchSettings) -> Verdict | None:
    """The verdict :func:`compare` rests on for two comparable, different, non-flat fingerprints,
    without the evidence: the verification under ``settings.relaxed()`` for each symmetry (with
    ``transforms``), likeliest first by ``dct`` distance, ``identity`` preferred by
    ``IDENTITY_PREFERENCE`` bits; or ``None``. Every symmetry is tried: a rotated member of a
    near-symmetric picture's group may be related to another member by any of them."""
    return relaxed_verdicts([(a, b)], settings)[0]


def relaxed_verdicts(pairs: Sequence[tuple[Fingerprint, Fingerprint]], settings: MatchSettings) -> list[Verdict | None]:
    """:func:`relaxed_verdict` for many pairs: each round verifies, together, every pair still
    unsettled under its next likeliest symmetry (a copy is almost always settled in the first)."""
    verdicts: list[Verdict | None] = [None] * len(pairs)
    asked = [k for k, (a, b) in enumerate(pairs) if comparable(a) and comparable(b)]
    orders = _likeliest_symmetries([pairs[k] for k in asked]) if settings.transforms else [["identity"]] * len(asked)
    tries = dict(zip(asked, orders, strict=True))
    relaxed = settings.relaxed()
    for round_number in range(len(DIHEDRAL)):
        asked = [k for k, symmetries in tries.items() if round_number < len(symmetries)]
        if not asked:
            break
        batch = [(pairs[k][0], pairs[k][1], tries[k][round_number]) for k in asked]
        for k, verdict in zip(asked, judge_many(batch, relaxed), strict=True):
            if verdict is not None:
                verdicts[k] = verdict
                del tries[k]
    return verdicts


def _likeliest_symmetries(pairs: list[tuple[Fingerprint, Fingerprint]]) -> list[list[str]]:
    """Every symmetry for each pair, in the order :func:`relaxed_verdict` tries them: by ``dct``
    distance after the symmetry, ``identity`` preferred by ``IDENTITY_PREFERENCE`` bits."""
    if not pairs:
        return []
    first = np.array([int(a.perceptual["dct"], 16) for a, _ in pairs], dtype=np.uint64)
    second = np.array([int(b.perceptual["dct"], 16) for _, b in pairs], dtype=np.uint64)
    names = list(DIHEDRAL)
    distance = np.stack([popcount(dct_dihedral_array(first, name) ^ second) for name in names], axis=1)
    distance[:, names.index("identity")] -= IDENTITY_PREFERENCE
    return [[names[n] for n in row] for row in np.argsort(distance, axis=1, kind="stable").tolist()]


def is_copy(a: Fingerprint, b: Fingerprint, settings: MatchSettings) -> bool:
    """Whether :func:`compare` finds ``b`` a copy of ``a``, without building the evidence."""
    return are_copies([(a, b)], settings)[0]


def are_copies(pairs: Sequence[tuple[Fingerprint, Fingerprint]], settings: MatchSettings) -> list[bool]:
    """:func:`is_copy` for many pairs, verified together."""
    answers: list[bool] = []
    perceptual: list[int] = []
    for k, (a, b) in enumerate(pairs):
        if a.sha256 == b.sha256:
            answers.append(True)
        elif not settings.perceptual:
            answers.append(False)
        elif flat(a) or flat(b):
            answers.append(flat_match(a, b) is not None)
        else:
            answers.append(False)
            perceptual.append(k)
    for k, verdict in zip(perceptual, relaxed_verdicts([pairs[k] for k in perceptual], settings), strict=True):
        answers[k] = verdict is not None
    return answers


def evidence(a: Fingerprint, b: Fingerprint, verdict: Verdict) -> dict[str, object]:
    """What a reviewer needs to judge a pair: hashes and distances, measurements, likely relation."""
    grad_a = _grad_after(_thumbnail(a), verdict.symmetry)
    grad = (grad_a ^ int(b.perceptual["grad"], 16)).bit_count() if "grad" in b.perceptual else None
    hashes: dict[str, dict[str, int | None]] = {"dct": {"distance": dct_distance(a, b, verdict.symmetry), "bits": 63}}
    for family in ("low", "centre"):
        if verdict.symmetry == "identity" and family in a.perceptual and family in b.perceptual:
            hashes[family] = {"distance": _distance(a, b, family), "bits": 63}
    hashes["grad"] = {"distance": grad, "bits": 128}
    return {
        "relation": relation(a, b, verdict),
        "symmetry": verdict.symmetry,
        "hashes": hashes,
        "thumbnail": {
            "residual": round(verdict.trimmed_rms, 3),
            "residual_all": round(verdict.rms, 3),
            "changed_area": round(verdict.changed, 4),
            "edge_strip": round(verdict.edge_strip, 3),
        },
        "fine": None
        if verdict.fine_residual is None or verdict.hotspot is None
        else {"residual": round(verdict.fine_residual, 3), "hotspot": round(verdict.hotspot, 2)},
        "crop": {"of": verdict.cropped, "margins": [round(m, 3) for m in verdict.crop]} if verdict.cropped else None,
        "colour_distance": None if verdict.colour_distance is None else round(verdict.colour_distance, 1),
        "tone_change": round(tone_change(a, b), 3),
        "size": {"a": [a.width, a.height], "b": [b.width, b.height]},
        "format": {"a": a.format, "b": b.format},
    }


@lru_cache(maxsize=64)
def _grad_after(thumbnail: bytes, symmetry: str) -> int:
    """The ``grad`` hash of a thumbnail after ``symmetry``: a canonical's, for each of its many members."""
    turned = DIHEDRAL[symmetry](thumbnail_array(thumbnail))  # type: ignore[operator]
    return grad_hash_of(np.array(turned))


def relation(a: Fingerprint, b: Fingerprint, verdict: Verdict) -> list[str]:
    """The likely edits that turn ``a`` into ``b``, in words (``resized``, ``cropped``, ...)."""
    found: list[str] = []
    if verdict.symmetry != "identity":
        found.append(verdict.symmetry)
    wa, ha = (a.height, a.width) if verdict.symmetry in QUARTER_TURNS else (a.width, a.height)
    if verdict.cropped:
        found.append("cropped" if verdict.cropped == "second" else "uncropped (the first is a crop)")
    elif (wa, ha) != (b.width, b.height):
        found.append("resized" if b.width * b.height < wa * ha else "enlarged")
        if abs(aspect_change(a, b, verdict.symmetry)) > RESHAPED:
            found.append("cropped or reshaped (margins not measured)")
    found.append("converted" if a.format != b.format else "re-encoded")
    if verdict.greyscale:
        found.append("greyscale" if verdict.greyscale == "second" else "colourised (the first is greyscale)")
    elif verdict.colour_distance is not None and verdict.colour_distance > 4:
        found.append("colour-shifted")
    (mean_a, std_a), (mean_b, std_b) = tone_of(a.perceptual) or (0.0, 0.0), tone_of(b.perceptual) or (0.0, 0.0)
    if abs(mean_a - mean_b) > 8:
        found.append("brightness changed")
    if abs(std_a / (std_b + 1e-6) - 1) > 0.1:
        found.append("contrast changed")
    if verdict.changed > 0.004:
        found.append("locally edited (watermark, logo or text)")
    return found
