"""The report as CSV tables, each a view of the report document.

``members`` (the default) has one row per cluster member, then one per error;
``register`` is the personal-data register, one row per location of every flagged
image; ``sources`` has one row per source with its costs and counts; ``summary`` has
one ``key,value`` row per total. Text that a spreadsheet would run as a formula (a file
name starting with ``=``, say) is written with a leading ``'``. Lists are joined with ``;``
and numbers are written in fixed-point (``0.000087``, never ``8.7e-05``), as spreadsheets read them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO, Any

MEMBER_COLUMNS = [
    "cluster",
    "role",
    "match",
    "uri",
    "path",
    "embedded_in",
    "source_name",
    "residency",
    "risk_tier",
    "department",
    "size",
    "sha256",
    "width",
    "height",
    "format",
    "modified",
    "canonical_reason",
    "relation",
    "flags",
    "faces",
    "cluster_risk_rank",
    "cluster_risk_reasons",
    "cross_jurisdiction",
    "licensed_spread",
    "creator",
    "credit_line",
    "copyright_notice",
    "usage_terms",
    "web_statement",
    "licensor",
    "decisions",
]
REGISTER_COLUMNS = [
    "image",
    "cluster",
    "faces",
    "copies",
    "uri",
    "path",
    "name",
    "source_name",
    "residency",
    "risk_tier",
    "department",
    "size",
    "modified",
    "sha256",
    "flagged_here",
]
SOURCE_COLUMNS = [
    "name",
    "uri",
    "residency",
    "risk_tier",
    "risk_rank",
    "department",
    "price_per_gb_month",
    "currency",
    "copies_in_clusters",
    "duplicate_copies",
    "reclaimable_bytes",
    "monthly_cost",
    "personal_data_images",
    "licensed_images",
]
TABLES = ("members", "register", "sources", "summary")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _fixed(value: float) -> str:
    """A number in fixed-point with at least two and at most six decimals (money and ratios alike)."""
    text = f"{value:.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def _cell(value: Any) -> Any:
    """A value a spreadsheet reads as meant: lists joined, numbers fixed-point, formulas defused."""
    if isinstance(value, list | tuple):
        value = "; ".join(str(item) for item in value)
    if isinstance(value, float):
        return _fixed(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _member_rows(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for c in report["clusters"]:
        decisions = "; ".join(
            f"{d['decision']}{' ' + d['uri'] if d['uri'] else ''} by {d['decided_by']}" for d in c["decisions"]
        )
        for m in c["members"]:
            facts = {k: v for a in m["analyses"].values() for k, v in a["facts"].items()}
            yield {
                **facts,
                **m,
                "cluster": c["id"],
                "role": "canonical" if m["canonical"] else "duplicate",
                "canonical_reason": c["canonical_reason"] if m["canonical"] else "",
                "relation": m["evidence"].get("relation", ""),
                "flags": " ".join(m["flags"]),
                "cluster_risk_rank": c["risk"]["rank"],
                "cluster_risk_reasons": "; ".join(c["risk"]["reasons"]),
                "cross_jurisdiction": c["cross_jurisdiction"],
                "licensed_spread": c["licensed_spread"],
                "decisions": decisions,
            }
    for error in report["errors"]:
        yield {"role": "error", "uri": error["uri"], "path": error["path"], "relation": error["reason"]}


def _register_rows(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for entry in report["personal_data_register"]:
        for location in entry["locations"]:
            yield {**entry, **location, "flagged_here": "personal_data" in location["flags"]}


def _summary_rows(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    def flatten(prefix: str, value: Any) -> Iterator[dict[str, Any]]:
        if isinstance(value, dict):
            for key, inner in value.items():
                yield from flatten(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            yield {"key": prefix, "value": value}

    yield from flatten("", report["summary"])


def write_csv(report: dict[str, Any], out: IO[str], table: str = "members") -> None:
    """Write one table of the report (one of :data:`TABLES`) as CSV."""
    if table == "members":
        columns, rows = MEMBER_COLUMNS, _member_rows(report)
    elif table == "register":
        columns, rows = REGISTER_COLUMNS, _register_rows(report)
    elif table == "sources":
        columns, rows = SOURCE_COLUMNS, ({**s, "currency": report["currency"]} for s in report["sources"])
    elif table == "summary":
        columns, rows = ["key", "value"], _summary_rows(report)
    else:
        raise ValueError(f"unknown CSV table {table!r}; known: {', '.join(TABLES)}")
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
