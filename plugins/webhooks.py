"""Outgoing webhooks: tells the subscribers in ``dam-dedupe.toml`` what the host announces.

Implements the announcement hooks (``dam_dedupe_scan_finished``, ``dam_dedupe_cluster_found``,
``dam_dedupe_action_applied``) and hands each event to the signed, retried delivery of
:mod:`dam_dedupe.service.webhooks`. The configuration and catalog are those of the running
``dam-dedupe`` command (its ``--config`` and ``--catalog``); a program that runs the host itself
gets ``./dam-dedupe.toml`` and keeps no dead letters. Needs no extra: delivery uses the standard library.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import click

from dam_dedupe.action import ActionStep
from dam_dedupe.config import Config, load_config
from dam_dedupe.errors import DamDedupeError
from dam_dedupe.hookspecs import hookimpl
from dam_dedupe.records import Cluster, ScanSummary
from dam_dedupe.service.webhooks import Outbox, subscribers

log = logging.getLogger(__name__)

_outboxes: dict[tuple[str, str | None], Outbox] = {}
_without_command: list[Config | None] = []  # ./dam-dedupe.toml, read once, for a program running the host itself


def _config(obj: Any) -> Config | None:
    """The running command's configuration, else ``./dam-dedupe.toml`` (read once); ``None`` if it is unreadable."""
    config = getattr(obj, "config", None)
    if config is not None:
        return config
    if not _without_command:
        try:
            _without_command.append(load_config())
        except DamDedupeError as exc:  # an announcement must never break the run that makes it
            log.warning("webhooks off: %s", exc)
            _without_command.append(None)
    return _without_command[0]


def _outbox() -> Outbox | None:
    """The outbox of the running command's configuration, made on first use; ``None`` without subscribers."""
    context = click.get_current_context(silent=True)
    obj: Any = context.find_root().obj if context is not None else None
    config = _config(obj)
    section = config.sections.get("webhooks", {}) if config is not None else {}
    if config is None or not section:
        return None
    catalog_path = getattr(obj, "catalog_path", None)
    key = (str(config.path), catalog_path)
    if key not in _outboxes:
        _outboxes[key] = Outbox(subscribers(section), catalog_path)
    return _outboxes[key]


def _announce(event: str, payload: dict[str, Any]) -> None:
    outbox = _outbox()
    if outbox is not None:
        outbox.announce(event, payload)


EVENTS = {
    "dam_dedupe_scan_finished": "scan.finished",
    "dam_dedupe_cluster_found": "cluster.found",
    "dam_dedupe_action_applied": "action.applied",
}
"""The webhook event each announcement hook sends."""


@hookimpl
def dam_dedupe_listens(event: str) -> bool:
    """Whether a subscriber wants the event: without one, a match's clusters are not read back to be announced."""
    outbox = _outbox()
    return outbox is not None and event in EVENTS and outbox.wants(EVENTS[event])


@hookimpl
def dam_dedupe_scan_finished(summary: ScanSummary) -> None:
    """Send ``scan.finished`` with the run's counts."""
    _announce(EVENTS["dam_dedupe_scan_finished"], asdict(summary))


@hookimpl
def dam_dedupe_cluster_found(cluster: Cluster) -> None:
    """Send ``cluster.found`` with the cluster's id, canonical and members (URI, match kind, SHA-256)."""
    canonical = cluster.canonical
    _announce(
        EVENTS["dam_dedupe_cluster_found"],
        {
            "cluster_id": cluster.id,
            "canonical_uri": canonical.asset.uri if canonical is not None else None,
            "canonical_reason": cluster.canonical_reason,
            "members": [
                {"uri": m.asset.uri, "match": m.match, "sha256": m.fingerprint.sha256} for m in cluster.members
            ],
        },
    )


@hookimpl
def dam_dedupe_action_applied(step: ActionStep, outcome: str) -> None:
    """Send ``action.applied`` with the plan step and its outcome."""
    _announce(EVENTS["dam_dedupe_action_applied"], {"outcome": outcome, "step": step.to_json()})
