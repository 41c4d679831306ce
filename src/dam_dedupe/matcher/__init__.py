"""The core matcher that every adapter shares: fingerprints in, groups of copies out.

Two entry points, used by the scan after fingerprints are stored:

- :func:`find_groups` partitions fingerprinted assets into groups of copies;
- :func:`compare` explains one member against the group's canonical (match kind and
  evidence), once the canonical policy has chosen it.
"""

from dam_dedupe.matcher.compare import Comparison, compare
from dam_dedupe.matcher.grouping import find_groups
from dam_dedupe.matcher.settings import PRESETS, MatchSettings

__all__ = ["PRESETS", "Comparison", "MatchSettings", "compare", "find_groups"]
