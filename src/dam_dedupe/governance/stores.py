"""The adapters an action reaches its stores through, one per source, built on first use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dam_dedupe.action import ActionStep
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.config import Config
from dam_dedupe.host import Host

ProgressSink = Callable[[ActionStep, str, Mapping[str, Any]], None]


class AdapterPool:
    """The :class:`~dam_dedupe.action.Stores` of a plan or run: adapters by source URI, with configured options.

    ``on_progress`` is where a run journals the parts of a step (``None`` while planning).
    """

    def __init__(self, host: Host, config: Config, on_progress: ProgressSink | None = None) -> None:
        self.host = host
        self.config = config
        self.on_progress = on_progress
        self._adapters: dict[str, SourceAdapter] = {}

    def adapter(self, source: str) -> SourceAdapter:
        """The adapter for the source with this URI, built from its ``dam-dedupe.toml`` entry if it has one."""
        if source not in self._adapters:
            self._adapters[source] = self.host.open_source(self.config.source_by_uri(source))
        return self._adapters[source]

    def progress(self, step: ActionStep, part: str, detail: Mapping[str, Any]) -> None:
        """Journal that ``part`` of ``step`` is done (see :meth:`dam_dedupe.action.Stores.progress`)."""
        if self.on_progress is not None:
            self.on_progress(step, part, detail)

    def close(self) -> None:
        """Close every adapter built."""
        for adapter in self._adapters.values():
            adapter.close()
        self._adapters.clear()
