"""The adapters an action reaches its stores through, one per source, built on first use."""

from __future__ import annotations

from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.config import Config
from dam_dedupe.host import Host


class AdapterPool:
    """The :class:`~dam_dedupe.action.Stores` of a plan or run: adapters by source URI, with configured options."""

    def __init__(self, host: Host, config: Config) -> None:
        self.host = host
        self.config = config
        self._adapters: dict[str, SourceAdapter] = {}

    def adapter(self, source: str) -> SourceAdapter:
        """The adapter for the source with this URI, built from its ``dam-dedupe.toml`` entry if it has one."""
        if source not in self._adapters:
            self._adapters[source] = self.host.open_source(self.config.source_by_uri(source))
        return self._adapters[source]

    def close(self) -> None:
        """Close every adapter built."""
        for adapter in self._adapters.values():
            adapter.close()
        self._adapters.clear()
