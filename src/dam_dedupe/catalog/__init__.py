"""The catalog: what was listed, fingerprinted and matched, kept between runs."""

from pathlib import Path

from dam_dedupe.catalog.base import (
    ActionRun,
    AuditEntry,
    Catalog,
    CatalogAsset,
    CatalogProblem,
    DecisionKind,
    GovernanceRecords,
    JournalEntry,
    ReviewDecision,
    RunCounts,
    SignOff,
    SourceOverview,
    StoredCluster,
)
from dam_dedupe.catalog.sqlite import SqliteCatalog

DEFAULT_CATALOG = "dam-dedupe.sqlite"

__all__ = [
    "DEFAULT_CATALOG",
    "ActionRun",
    "AuditEntry",
    "Catalog",
    "CatalogAsset",
    "CatalogProblem",
    "DecisionKind",
    "GovernanceRecords",
    "JournalEntry",
    "ReviewDecision",
    "RunCounts",
    "SignOff",
    "SourceOverview",
    "StoredCluster",
    "open_catalog",
]


def open_catalog(path: str | Path = DEFAULT_CATALOG) -> SqliteCatalog:
    """Open (creating or migrating) the SQLite catalog at ``path``."""
    return SqliteCatalog(path)
