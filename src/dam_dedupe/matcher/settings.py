"""Matching thresholds, as named presets or explicit values."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class MatchSettings:
    """How alike two images must be to count as copies.

    Attributes:
        preset: the preset these values came from (``exact``, ``strict``, ``balanced``, ``loose``).
        perceptual: ``False`` groups byte-identical copies only.
    """

    preset: str = "balanced"
    perceptual: bool = True

    def with_overrides(self, **values: object) -> MatchSettings:
        """A copy with some values replaced (from ``dam-dedupe.toml`` ``[matching]``)."""
        return replace(self, **values)  # type: ignore[arg-type]


PRESETS: dict[str, MatchSettings] = {
    "exact": MatchSettings(preset="exact", perceptual=False),
    "balanced": MatchSettings(preset="balanced"),
}
