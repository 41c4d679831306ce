"""Exceptions shared by the host, adapters and actions.

Adapters raise :class:`AssetError` for a problem with one asset (the scan records it
against that asset and goes on) and :class:`SourceError` for a problem with the whole
source (bad credentials, missing bucket): the scan records it against the source.
"""

from __future__ import annotations


class DamDedupeError(Exception):
    """Base of every error this package raises on purpose; its message is shown to users."""


class MissingExtra(DamDedupeError):
    """An adapter's optional SDK is not installed."""

    def __init__(self, extra: str, package: str) -> None:
        self.extra = extra
        self.package = package
        super().__init__(
            f"the '{package}' package is not installed. Install it with: pip install 'dam-dedupe[{extra}]'"
        )


class UnsupportedOperation(DamDedupeError):
    """The adapter's store cannot do what an action asked (for example tags on a plain file share)."""

    def __init__(self, adapter: str, operation: str, hint: str = "") -> None:
        self.adapter = adapter
        self.operation = operation
        message = f"the {adapter} adapter does not support '{operation}'"
        super().__init__(f"{message}: {hint}" if hint else message)


class SourceError(DamDedupeError):
    """The whole source failed: unreachable, unauthorised, missing. The scan records it and goes on
    with the other sources."""


class AssetError(DamDedupeError):
    """One asset failed (unreadable, corrupt, vanished); recorded against it."""


class AssetGone(AssetError):
    """The asset existed when listed and is gone now."""


class TransientError(AssetError):
    """A failure that may pass (network, throttling, retries exhausted, a store briefly away).

    A governance step that raises it is left resumable (running ``apply`` or ``undo`` again
    continues it); a scan records it against the asset and tries again on the next scan.
    Every other :class:`AssetError` is final.
    """


class ConfigError(DamDedupeError):
    """``dam-dedupe.toml`` or a command-line option is wrong."""
