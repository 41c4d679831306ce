"""What sorting by metadata would miss: a name-and-size comparison against content matching."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


def name_size_comparison(rows: Iterable[tuple[str, int, str | None]], content_copies: int) -> dict[str, int]:
    """Compare the duplicate copies a file-name-and-size comparison finds with content matching's.

    ``rows`` holds every image as (file name, size, cluster id or ``None``); names are
    compared case-insensitively, as a person sorting a share by name and size would.
    A group of n files counts n - 1 duplicate copies under either method.

    Returns ``name_and_size_copies`` (what the metadata comparison calls copies),
    ``content_copies`` (what content matching found), ``found_by_both`` (content copies that
    also share a name and size), ``missed_by_name_and_size`` (content copies the metadata
    comparison misses: renamed, re-encoded, resized) and ``name_and_size_false_matches``
    (files with one name and size but different content).
    """
    by_name_size: Counter[tuple[str, int]] = Counter()
    by_name_size_cluster: Counter[tuple[str, int, str]] = Counter()
    for index, (name, size, cluster) in enumerate(rows):
        key = (name.casefold(), size)
        by_name_size[key] += 1
        by_name_size_cluster[(*key, cluster or f"#{index}")] += 1
    metadata_copies = sum(n - 1 for n in by_name_size.values())
    both = sum(n - 1 for n in by_name_size_cluster.values())
    return {
        "name_and_size_copies": metadata_copies,
        "content_copies": content_copies,
        "found_by_both": both,
        "missed_by_name_and_size": content_copies - both,
        "name_and_size_false_matches": metadata_copies - both,
    }
