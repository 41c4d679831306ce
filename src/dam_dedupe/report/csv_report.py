"""The report as CSV: one row per cluster member, then one row per error."""

from __future__ import annotations

import csv
from typing import IO, Any

COLUMNS = ["cluster", "role", "match", "uri", "path", "size", "sha256", "width", "height", "format", "modified",
           "canonical_reason", "relation"]  # fmt: skip


def write_csv(report: dict[str, Any], out: IO[str]) -> None:
    """Write cluster members (``role`` ``canonical`` or ``duplicate``) and errors (``role`` ``error``)."""
    writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for cluster in report["clusters"]:
        for member in cluster["members"]:
            writer.writerow(
                {
                    **member,
                    "cluster": cluster["id"],
                    "role": "canonical" if member["canonical"] else "duplicate",
                    "canonical_reason": cluster["canonical_reason"] if member["canonical"] else "",
                    "relation": member["evidence"].get("relation", ""),
                }
            )
    for error in report["errors"]:
        writer.writerow({"role": "error", "uri": error["uri"], "path": error["path"], "relation": error["reason"]})
