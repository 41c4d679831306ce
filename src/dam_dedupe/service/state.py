"""What the running service holds: a catalog connection per thread, the check index and its refresher."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from dam_dedupe.catalog.sql import SqlCatalog
from dam_dedupe.config import Config
from dam_dedupe.host import Host
from dam_dedupe.records import Fingerprint
from dam_dedupe.service.lookup import CatalogIndex
from dam_dedupe.service.settings import ServiceSettings

log = logging.getLogger(__name__)

RELOAD_SPACING = 10
"""A reload of the index waits at least this many times the last one's duration after it."""


class ServiceState:
    """The catalog, configuration, plugins and check index one service process shares between requests.

    SQLite connections belong to one thread, so each request thread opens its own (``open_catalog``)
    and keeps it. A background thread asks the catalog every ``refresh_seconds`` whether its images
    changed (:meth:`~dam_dedupe.catalog.sql.SqlCatalog.change_marker`) and reloads the index
    then; checks go on meanwhile against the index they have. An ingested asset is added at once.
    """

    def __init__(
        self, open_catalog: Callable[[], SqlCatalog], config: Config, host: Host, settings: ServiceSettings
    ) -> None:
        self.open_catalog = open_catalog
        self.config = config
        self.host = host
        self.settings = settings
        self.index = CatalogIndex(config.matching)
        self._local = threading.local()
        self._stop = threading.Event()
        self._marker: tuple[object, ...] | None = None
        self._refresher: threading.Thread | None = None

    def catalog(self) -> SqlCatalog:
        """This thread's catalog connection."""
        catalog = getattr(self._local, "catalog", None)
        if catalog is None:
            catalog = self._local.catalog = self.open_catalog()
        return catalog

    def load_index(self, catalog: SqlCatalog | None = None) -> None:
        """Load the check index from the catalog's present images now."""
        catalog = catalog or self.catalog()
        marker = catalog.change_marker()
        self.index.replace(catalog.images_streamed())
        self._marker = marker
        log.info("check index: %d images", len(self.index))

    def start(self) -> None:
        """Load the index and start the refresher."""
        self.load_index()
        self._refresher = threading.Thread(target=self._refresh, name="dam-dedupe-index", daemon=True)
        self._refresher.start()

    def stop(self) -> None:
        """Stop the refresher."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(5)

    def _refresh(self) -> None:
        """Reload the index when the catalog's images changed, at most once per ``RELOAD_SPACING`` times
        the last reload's duration: a running scan commits every few seconds, and reloading 100k images
        (about 6 s) back to back would take the checks' processor time."""
        catalog = self.open_catalog()
        not_before = 0.0
        try:
            while not self._stop.wait(self.settings.refresh_seconds):
                if time.monotonic() < not_before:
                    continue
                try:
                    if catalog.change_marker() != self._marker:
                        started = time.monotonic()
                        self.load_index(catalog)
                        not_before = time.monotonic() + RELOAD_SPACING * (time.monotonic() - started)
                except Exception as exc:  # a locked or busy catalog: try again next time
                    log.warning("check index not refreshed: %s", exc)
        finally:
            catalog.close()

    def answer(self, fingerprint: Fingerprint, exclude: int | None = None) -> dict[str, Any]:
        """The JSON answer of a check for ``fingerprint``: its SHA-256 and every catalogued copy."""
        catalog = self.catalog()
        found = self.index.matches(fingerprint, catalog.assets_by_id, catalog.clusters_of, exclude)
        clusters = catalog.clusters_of(m.asset_id for m in found)
        return {
            "sha256": fingerprint.sha256,
            "matches": [
                {
                    "uri": m.uri,
                    "match": m.match,
                    "cluster_id": clusters[m.asset_id][0] if m.asset_id in clusters else None,
                    "canonical_uri": clusters[m.asset_id][1] if m.asset_id in clusters else None,
                    "evidence": m.evidence,
                }
                for m in found
            ],
        }
