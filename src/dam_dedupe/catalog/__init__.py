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
from dam_dedupe.catalog.postgresql import PostgresCatalog, connect, is_postgresql, redacted
from dam_dedupe.catalog.postgresql_schema import schema_version
from dam_dedupe.catalog.sql import SqlCatalog
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
    "SqlCatalog",
    "StoredCluster",
    "catalog_exists",
    "display_location",
    "is_postgresql",
    "open_catalog",
]


def open_catalog(location: str | Path = DEFAULT_CATALOG) -> SqlCatalog:
    """Open (creating or migrating) the catalog at ``location``: a SQLite file's path, or a
    ``postgresql://`` URL (the shared catalog, :mod:`dam_dedupe.catalog.postgresql`)."""
    if is_postgresql(str(location)):
        return PostgresCatalog(str(location))
    return SqliteCatalog(location)


def catalog_exists(location: str) -> bool:
    """Whether ``location`` holds a catalog already (a mistyped name must not look like an empty catalog)."""
    if not is_postgresql(location):
        return Path(location).exists()
    conn = connect(location)
    try:
        return schema_version(conn) is not None
    finally:
        conn.close()


def display_location(location: str) -> str:
    """The location as messages show it: a PostgreSQL URL without its password."""
    return redacted(location) if is_postgresql(location) else location
