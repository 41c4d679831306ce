"""Per-asset analysis: plugins that look at an image once, while the scan has it decoded.

An analyser implements :func:`~dam_dedupe.hookspecs.dam_dedupe_analyse_asset` and
returns an :class:`Analysis`: flags the report acts on (``personal_data``, ``licensed``)
and facts shown to reviewers. The scan runs every installed analyser in the worker on
the decode the fingerprint is made from, so no asset is read or decoded twice, and
stores the results in the catalog beside the fingerprint. Byte-identical copies share
one result (:class:`SharedResults`, keyed by SHA-256). A failing analyser is recorded
against the asset and the plugin, and the scan goes on.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dam_dedupe.errors import MissingExtra

if TYPE_CHECKING:
    import pluggy
    from PIL import Image

    from dam_dedupe.records import AssetRecord

log = logging.getLogger(__name__)

PERSONAL_DATA = "personal_data"
"""Flag: the image shows identifiable people (personal data under PDPO, GDPR and the like)."""

LICENSED = "licensed"
"""Flag: the image carries third-party rights metadata (licensed stock, agency imagery)."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """What one analyser found in one image.

    Attributes:
        flags: labels the report acts on; the built-in ones are :data:`PERSONAL_DATA` and
            :data:`LICENSED`. Other flags are shown but not acted on.
        facts: named findings as text, shown to reviewers and exported (for example
            ``{"faces": "2", "detector": "blazeface_short_range"}`` or the rights fields).
        error: set instead of flags and facts when the analyser failed on this image;
            the host fills it in, analysers raise instead.
    """

    flags: frozenset[str] = frozenset()
    facts: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


def run_analysers(
    pm: pluggy.PluginManager, asset: AssetRecord, image: Image.Image, options: Mapping[str, Any]
) -> dict[str, Analysis]:
    """Run every enabled analyser on one decoded image; return results by analyser name.

    Each implementation is called on its own, so one that raises is recorded (as an
    :class:`Analysis` with ``error``, naming the exception) without hiding the others'
    results. ``options`` is the ``[analysis]`` table of ``dam-dedupe.toml``: its
    ``disabled`` list names analysers not to run.
    """
    disabled = set(options.get("disabled", ()))
    arguments: dict[str, object] = {"asset": asset, "image": image, "options": options}
    results: dict[str, Analysis] = {}
    for impl in pm.hook.dam_dedupe_analyse_asset.get_hookimpls():
        name = impl.plugin_name
        if name in disabled:
            continue
        try:
            found = impl.function(*(arguments[arg] for arg in impl.argnames))
        except Exception as exc:  # a plugin's bug or a library failure: attribute it, keep the others
            results[name] = Analysis(error=f"{type(exc).__name__}: {exc}")
            continue
        if isinstance(found, Analysis):
            results[name] = found
        elif found is not None:
            results[name] = Analysis(error=f"returned {type(found).__name__}, not an Analysis")
    return results


def analysers_enabled(pm: pluggy.PluginManager, options: Mapping[str, Any]) -> bool:
    """Whether any installed analyser will run under these ``[analysis]`` options."""
    disabled = set(options.get("disabled", ()))
    return any(impl.plugin_name not in disabled for impl in pm.hook.dam_dedupe_analyse_asset.get_hookimpls())


def warn_unavailable(pm: pluggy.PluginManager, options: Mapping[str, Any]) -> None:
    """Say once, in the scan's own process, which enabled analyser cannot run and the install that fixes it.

    The workers each find the same and stay quiet, so an admin reads it once, not once per worker.
    """
    disabled = set(options.get("disabled", ()))
    for impl in pm.hook.dam_dedupe_analyse_asset.get_hookimpls():
        check = getattr(impl.plugin, "check_available", None)
        if impl.plugin_name in disabled or check is None:
            continue
        try:
            check()
        except MissingExtra as exc:
            log.warning("the %s analyser is off, so it flags nothing: %s", impl.plugin_name, exc)


class SharedResults:
    """Analyser results by content SHA-256, so that byte-identical copies are analysed once.

    Holds the most recent ``limit`` contents (a few KiB each at most), so memory stays flat
    however large the library; a copy read after its original has been forgotten is
    analysed again, with the same result. One instance serves one scan in one process.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._results: OrderedDict[str, dict[str, Analysis]] = OrderedDict()
        self._lock = threading.Lock()  # an executor of several threads shares one instance

    def analyse(
        self, pm: pluggy.PluginManager, asset: AssetRecord, image: Image.Image, options: Mapping[str, Any], sha256: str
    ) -> dict[str, Analysis]:
        """The results for content ``sha256``: :func:`run_analysers` on ``image`` the first time, then remembered."""
        with self._lock:
            found = self._results.get(sha256)
            if found is not None:
                self._results.move_to_end(sha256)
                return found
        found = run_analysers(pm, asset, image, options)
        with self._lock:
            self._results[sha256] = found
            if len(self._results) > self.limit:
                self._results.popitem(last=False)
        return found
