"""The core matcher that every adapter shares: fingerprints in, groups of copies out."""

from dam_dedupe.matcher.exact import exact_groups

__all__ = ["exact_groups"]
