"""The plugin host: loads every plugin through the ``dam_dedupe`` entry-point group.

Built-in adapters and actions are registered by the package's own entry points, the
same path a vendor's package takes; nothing is registered by import here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import cache, cached_property
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import pluggy

from dam_dedupe import hookspecs
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.errors import ConfigError, DamDedupeError
from dam_dedupe.records import SourceSpec

if TYPE_CHECKING:
    from dam_dedupe.action import ActionPlugin
    from dam_dedupe.governance.signatures import SignatureScheme

log = logging.getLogger(__name__)

T = TypeVar("T")


def make_plugin_manager(extra_plugins: Iterable[object] = ()) -> pluggy.PluginManager:
    """Return a plugin manager with every installed plugin loaded.

    ``extra_plugins`` are registered after the entry points; tests and embedding
    applications use it to add a plugin object without packaging it.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    for plugin in extra_plugins:
        pm.register(plugin)
    pm.check_pending()
    return pm


def contributed(hook: pluggy.HookCaller) -> tuple[type, ...]:
    """The classes every plugin contributes through a list-returning ``hook``, in registration order."""
    return tuple(cls for group in hook() for cls in group)


@cache
def installed_plugins() -> pluggy.PluginManager:
    """The installed plugins, loaded once per process, for code that runs in a scan's worker processes."""
    return make_plugin_manager()


class Host:
    """The loaded plugins, with lookups by URI scheme and action name."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm if pm is not None else make_plugin_manager()

    @property
    def hook(self) -> pluggy.HookRelay:
        """The hook relay, for calling event and canonical hooks."""
        return self.pm.hook

    @cached_property
    def adapters(self) -> dict[str, type[SourceAdapter]]:
        """Adapter classes by URI scheme, from every plugin."""
        return _by_name(self.pm.hook.dam_dedupe_adapters(), lambda cls: cls.scheme, "the '{}' scheme")

    @cached_property
    def actions(self) -> dict[str, type[ActionPlugin]]:
        """Action plugin classes by name, from every plugin."""
        return _by_name(self.pm.hook.dam_dedupe_actions(), lambda cls: cls.name, "the '{}' action")

    @cached_property
    def signature_schemes(self) -> dict[str, type[SignatureScheme]]:
        """Sign-off signature schemes by name, from every plugin."""
        return _by_name(self.pm.hook.dam_dedupe_signature_schemes(), lambda cls: cls.name, "the '{}' signature scheme")

    def listened(self, event: str) -> bool:
        """Whether a plugin acts on the event hook named ``event``: one implements it and does
        not decline it through ``dam_dedupe_listens``."""
        listeners = {impl.plugin for impl in getattr(self.pm.hook, event).get_hookimpls()}
        asked = {impl.plugin for impl in self.pm.hook.dam_dedupe_listens.get_hookimpls()}
        if listeners - asked:
            return True
        ask = self.pm.subset_hook_caller("dam_dedupe_listens", remove_plugins=asked - listeners)
        return any(ask(event=event))

    def plugin_name(self, obj: object) -> str:
        """The name a plugin was registered under (its entry-point name), for messages."""
        return self.pm.get_name(obj) or repr(obj)

    def adapter_class(self, uri: str) -> type[SourceAdapter]:
        """Return the adapter class serving ``uri``'s scheme, its SDK checked.

        Raises :class:`ConfigError` naming the installed schemes when none serves it,
        and :class:`~dam_dedupe.errors.MissingExtra` when its SDK is not installed.
        """
        scheme = scheme_of(uri)
        cls = self.adapters.get(scheme)
        if cls is None:
            known = ", ".join(sorted(self.adapters)) or "none"
            raise ConfigError(f"no installed adapter serves '{scheme}://' URIs (installed: {known})")
        cls.check_available()
        return cls

    def open_source(self, spec: SourceSpec) -> SourceAdapter:
        """Build the adapter instance for a configured source."""
        return self.adapter_class(spec.uri)(spec)


def _by_name(contributions: Iterable[Iterable[T]], name: Callable[[T], str], what: str) -> dict[str, T]:
    """Index what plugins contributed by name; two plugins claiming one name is an error naming both."""
    found: dict[str, T] = {}
    for contributed in contributions:
        for cls in contributed:
            key = name(cls)
            if key in found and found[key] is not cls:
                raise DamDedupeError(f"two plugins provide {what.format(key)}: {found[key]!r} and {cls!r}")
            found[key] = cls
    return found


def scheme_of(uri: str) -> str:
    """Return a URI's scheme; a plain path (no scheme, or a Windows drive letter) is ``file``."""
    scheme = urlsplit(uri).scheme
    return scheme.lower() if len(scheme) > 1 else "file"
