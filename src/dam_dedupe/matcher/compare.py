"""Explaining why two fingerprints are copies: the match kind and its evidence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dam_dedupe.matcher.perceptual import DIHEDRAL, chroma_array, dct_dihedral, grad_hash_of, thumbnail_array
from dam_dedupe.matcher.settings import MatchSettings
from dam_dedupe.matcher.verify import Verdict, featureless, refine, verify
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


FLAT_TOLERANCE = 3.0
"""Largest difference of mean grey level, and of mean chroma, between two featureless copies."""


def comparable(fp: Fingerprint) -> bool:
    """Whether a fingerprint can be matched perceptually (it has hashes and some structure)."""
    return bool(fp.thumbnail) and "dct" in fp.perceptual and not featureless(fp.thumbnail)  # type: ignore[arg-type]


def flat(fp: Fingerprint) -> bool:
    """Whether a fingerprint is of a featureless picture (a flat colour), matched by colour alone."""
    return bool(fp.thumbnail) and "chroma" in fp.perceptual and featureless(fp.thumbnail)  # type: ignore[arg-type]


def flat_level(fp: Fingerprint) -> float:
    """Mean grey level of a fingerprint's thumbnail."""
    return float(thumbnail_array(fp.thumbnail).mean())


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


def judge(a: Fingerprint, b: Fingerprint, symmetry: str, settings: MatchSettings) -> Verdict | None:
    """The verification verdict if ``b`` is a copy of ``a`` after ``symmetry`` under ``settings``, else ``None``."""
    aspect = aspect_change(a, b, symmetry)
    if not (comparable(a) and comparable(b)) or abs(aspect) > settings.max_aspect_change:
        return None
    verdict = verify(
        a.thumbnail,  # type: ignore[arg-type]
        b.thumbnail,  # type: ignore[arg-type]
        symmetry,
        a.perceptual.get("chroma"),
        b.perceptual.get("chroma"),
        aspect=aspect,
        good_enough=settings.max_residual / 2,
    )
    if verdict.trimmed_rms > settings.max_residual or verdict.changed > settings.max_changed:
        return None
    if verdict.edge_strip > settings.max_edge_strip:
        return None
    if verdict.colour_distance is not None and verdict.colour_distance > settings.max_colour_distance:
        return None
    limits = (settings.max_fine_residual, settings.max_hotspot)
    verdict = refine(a.thumbnail, b.thumbnail, verdict, aspect, limits)  # type: ignore[arg-type]
    if verdict.fine_residual is not None and verdict.fine_residual > settings.max_fine_residual:
        return None
    if verdict.hotspot is not None and verdict.hotspot > settings.max_hotspot:
        return None
    return verdict


def compare(a: Fingerprint, b: Fingerprint, settings: MatchSettings) -> Comparison | None:
    """Return how ``b`` relates to ``a``, or ``None`` if they are not copies under ``settings``.

    ``exact`` for identical bytes; ``near`` for a copy as it stands; ``transformed`` for a
    copy rotated by 90, 180 or 270 degrees or mirrored (when ``settings.transforms``).
    The verification thresholds are relaxed by ``settings.group_slack``: every pair of
    members of a group :func:`~dam_dedupe.matcher.find_groups` made passes this test.
    """
    if a.sha256 == b.sha256:
        return Comparison("exact", {"relation": ["identical"], "sha256": a.sha256})
    if not settings.perceptual:
        return None
    if flat(a) or flat(b):
        found = flat_match(a, b)
        return Comparison("near", found) if found else None
    verdict = relaxed_verdict(a, b, settings)
    if verdict is None:
        return None
    kind: MatchKind = "near" if verdict.symmetry == "identity" else "transformed"
    return Comparison(kind, evidence(a, b, verdict))


def relaxed_verdict(a: Fingerprint, b: Fingerprint, settings: MatchSettings) -> Verdict | None:
    """The verdict :func:`compare` rests on for two comparable, different, non-flat fingerprints,
    without the evidence: the verification under ``settings.relaxed()`` for the two likeliest
    symmetries (by ``dct`` distance), or ``None``."""
    if not (comparable(a) and comparable(b)):
        return None
    symmetries = list(DIHEDRAL) if settings.transforms else ["identity"]
    symmetries.sort(key=lambda name: (dct_distance(a, b, name), name != "identity"))
    relaxed = settings.relaxed()
    for symmetry in symmetries[:2]:
        verdict = judge(a, b, symmetry, relaxed)
        if verdict is not None:
            return verdict
    return None


def is_copy(a: Fingerprint, b: Fingerprint, settings: MatchSettings) -> bool:
    """Whether :func:`compare` finds ``b`` a copy of ``a``, without building the evidence."""
    if a.sha256 == b.sha256:
        return True
    if not settings.perceptual:
        return False
    if flat(a) or flat(b):
        return flat_match(a, b) is not None
    return relaxed_verdict(a, b, settings) is not None


def evidence(a: Fingerprint, b: Fingerprint, verdict: Verdict) -> dict[str, object]:
    """What a reviewer needs to judge a pair: hashes and distances, measurements, likely relation."""
    ta = DIHEDRAL[verdict.symmetry](thumbnail_array(a.thumbnail))  # type: ignore[operator]
    grad = (grad_hash_of(ta.copy()) ^ int(b.perceptual["grad"], 16)).bit_count() if "grad" in b.perceptual else None
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
        "size": {"a": [a.width, a.height], "b": [b.width, b.height]},
        "format": {"a": a.format, "b": b.format},
    }


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
    found.append("converted" if a.format != b.format else "re-encoded")
    if verdict.greyscale:
        found.append("greyscale" if verdict.greyscale == "second" else "colourised (the first is greyscale)")
    elif verdict.colour_distance is not None and verdict.colour_distance > 4:
        found.append("colour-shifted")
    ta = thumbnail_array(a.thumbnail)
    tb = thumbnail_array(b.thumbnail)
    if abs(float(ta.mean()) - float(tb.mean())) > 8:
        found.append("brightness changed")
    if abs(float(ta.std()) / (float(tb.std()) + 1e-6) - 1) > 0.1:
        found.append("contrast changed")
    if verdict.changed > 0.004:
        found.append("locally edited (watermark, logo or text)")
    return found
