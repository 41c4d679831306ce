"""Matching thresholds, as named presets or explicit values.

``dam-dedupe.toml`` picks a preset and may override single values::

    [matching]
    preset = "balanced"
    max_residual = 0.2

The presets and the precision and recall each gives on the benchmark corpus are in
``docs/matching.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from dam_dedupe.errors import ConfigError


@dataclass(frozen=True, slots=True)
class MatchSettings:
    """How alike two images must be to count as copies.

    Attributes:
        preset: the preset these values came from (``exact``, ``strict``, ``balanced``, ``loose``).
        perceptual: ``False`` groups byte-identical copies only.
        transforms: also find copies rotated by 90, 180 or 270 degrees or mirrored (``transformed``).
        candidate_radius: most bits (of 63) in which the ``dct`` or ``centre`` hashes of two
            copies may differ for them to be considered at all; the index finds every pair
            within it. Larger finds more copies and costs more time (see ``docs/benchmarks.md``).
        crop_radius: the same for the ``low`` hash, which is made to survive crops: cropped
            copies of fine textures need a little more room. A pair it nominates beyond
            ``candidate_radius`` must also be within 12 bits in ``dct`` (the ``low`` hash's
            bits are not independent, so by itself it nominates many unrelated pairs). Also
            the radius between one image's ``inner`` hash and another's ``dct`` hash (a crop
            of 4-5% a side), beyond ``candidate_radius`` only when their ``low`` hashes are
            within it too.
        transform_radius: the same for rotated and mirrored copies.
        max_residual: largest RMS difference of the aligned, normalised thumbnails outside
            the locally changed area (0 identical; about 1.4 unrelated).
        max_changed: largest share of the thumbnail that may differ (a watermark or logo).
        max_edge_strip: largest median residual along one border: a shifted view (burst,
            stereo pair) shows new content along a whole border, a crop does not.
        max_colour_distance: largest mean chroma difference (YCbCr units) when both images
            have colour; colour themes of one design differ by far more.
        max_tone_change: largest difference of the mean grey levels, relative to the brighter
            one (:func:`~dam_dedupe.matcher.compare.tone_change`): brightness changed by 15% moves
            it by at most 0.15, while the light and the dark version of one design, or a
            picture and its negative, differ by more than half.
        group_slack: factor by which ``max_residual``, ``max_changed``, ``max_edge_strip``,
            ``max_colour_distance``, ``max_tone_change``, ``max_fine_residual`` and ``max_hotspot`` are relaxed
            when checking that every member of a group is a copy of every other (and in
            :func:`~dam_dedupe.matcher.compare`):
            the pairs that form groups meet the thresholds as set; two edits of one
            original compounded (a crop and a watermarked copy) may need more room.
        max_aspect_change: largest difference of the natural logarithms of the aspect
            ratios (a 5% crop of one side changes it by about 0.05).
        max_fine_residual: the second, finer check on the 64x64 thumbnails: largest
            residual relative to the pictures' own fine detail (a shifted or turned view of
            a smooth scene leaves more than a copy does).
        max_hotspot: largest concentrated change away from the border, relative to the
            rest of the residual (a different headline in one template).
    """

    preset: str = "balanced"
    perceptual: bool = True
    transforms: bool = True
    candidate_radius: int = 5
    crop_radius: int = 7
    transform_radius: int = 5
    max_residual: float = 0.22
    max_changed: float = 0.06
    max_edge_strip: float = 0.25
    max_colour_distance: float = 20.0
    max_tone_change: float = 0.25
    max_aspect_change: float = 0.12
    max_fine_residual: float = 0.9
    max_hotspot: float = 10.0
    group_slack: float = 1.5

    def relaxed(self) -> MatchSettings:
        """These settings with the verification thresholds relaxed by ``group_slack``."""
        return replace(
            self,
            max_residual=self.max_residual * self.group_slack,
            max_changed=self.max_changed * self.group_slack,
            max_edge_strip=self.max_edge_strip * self.group_slack,
            max_colour_distance=self.max_colour_distance * self.group_slack,
            max_tone_change=self.max_tone_change * self.group_slack,
            max_fine_residual=self.max_fine_residual * self.group_slack,
            max_hotspot=self.max_hotspot * self.group_slack,
            group_slack=1.0,
        )

    def with_overrides(self, **values: object) -> MatchSettings:
        """A copy with some values replaced (from ``dam-dedupe.toml`` ``[matching]``).

        Raises :class:`~dam_dedupe.errors.ConfigError` for an unknown name or a value of the wrong type.
        """
        known = {f.name: f for f in fields(self)}
        checked: dict[str, object] = {}
        for name, value in values.items():
            if name not in known or name == "preset":
                raise ConfigError(f"[matching] has no setting '{name}'; known: {', '.join(sorted(known))}")
            default = getattr(self, name)
            if isinstance(default, bool) != isinstance(value, bool) or not isinstance(value, type(default) | int):
                raise ConfigError(f"[matching] {name} must be a {type(default).__name__}, not {value!r}")
            checked[name] = type(default)(value)
        return replace(self, **checked)  # type: ignore[arg-type]


PRESETS: dict[str, MatchSettings] = {
    "exact": MatchSettings(preset="exact", perceptual=False, transforms=False),
    "strict": MatchSettings(
        preset="strict",
        candidate_radius=5,
        crop_radius=5,
        transform_radius=4,
        max_residual=0.14,
        max_changed=0.03,
        max_colour_distance=12.0,
        max_tone_change=0.2,
        max_aspect_change=0.06,
    ),
    "balanced": MatchSettings(preset="balanced"),
    "loose": MatchSettings(
        preset="loose",
        candidate_radius=12,
        crop_radius=12,
        transform_radius=8,
        max_residual=0.3,
        max_changed=0.1,
        max_colour_distance=26.0,
        max_tone_change=0.3,
        max_aspect_change=0.16,
    ),
}
"""The named presets; ``balanced`` is the default."""
