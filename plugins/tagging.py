"""Tag helpers the built-in actions share: reading tags safely, merging into the canonical, restoring exactly.

Not a plugin itself (it registers no hook): ``tag``, ``quarantine`` and ``redirect`` import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dam_dedupe.action import ActionStep, ClusterChoice, StepSkipped, Stores
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.errors import ConfigError, UnsupportedOperation
from dam_dedupe.records import AssetRecord

OWN_PREFIX = "dam-dedupe."
"""Tags this product writes start with it; they are never merged from one copy to another."""


def current(adapter: SourceAdapter, step: ActionStep) -> AssetRecord:
    """The step's asset as the store has it now; :class:`StepSkipped` when it is gone."""
    record = adapter.stat(step.target.key)
    if record is None:
        raise StepSkipped(f"{step.target.uri} is gone")
    return record


def tags_or_none(adapter: SourceAdapter, record: AssetRecord) -> dict[str, str] | None:
    """The asset's tags, or ``None`` when its store keeps none (so there is nothing to restore)."""
    try:
        return adapter.get_tags(record)
    except UnsupportedOperation:
        return None


def plan_merge(stores: Stores, cluster: ClusterChoice, action: str) -> ActionStep | None:
    """A ``merge_tags`` step carrying to the canonical the tags its duplicates hold and it lacks, or ``None``.

    The first duplicate (in cluster order) holding a key gives its value; keys the
    canonical already has are never overwritten; this product's own tags are not merged.
    """
    canonical = cluster.canonical
    try:
        have = stores.adapter(canonical.source).get_tags(canonical.record())
        add: dict[str, str] = {}
        came_from: dict[str, str] = {}
        for dup in cluster.duplicates:
            for key, value in stores.adapter(dup.source).get_tags(dup.record()).items():
                if key not in have and key not in add and not key.startswith(OWN_PREFIX):
                    add[key], came_from[key] = value, dup.uri
    except UnsupportedOperation as exc:
        raise ConfigError(f"merge=yes needs store tags: {exc}") from exc
    if not add:
        return None
    return ActionStep(
        0, action, "merge_tags", cluster.id, "canonical", canonical, canonical, {"add_tags": add, "from": came_from}
    )


def apply_tags(
    stores: Stores, step: ActionStep, before: Mapping[str, Any], ours: Mapping[str, str], overwrite: bool
) -> dict[str, Any]:
    """Set ``ours`` over the tags journaled in ``before`` (re-entrant: the result depends on ``before`` only).

    ``overwrite`` lets ``ours`` replace values already there; otherwise existing keys win.
    """
    adapter = stores.adapter(step.target.source)
    record = current(adapter, step)
    previous = dict(before["tags"])
    tags = {**previous, **ours} if overwrite else {**ours, **previous}
    adapter.set_tags(record, tags)
    return {"tags": tags}


def restore_tags(
    stores: Stores, step: ActionStep, before: Mapping[str, Any], after: Mapping[str, Any], ours: Mapping[str, str]
) -> dict[str, Any]:
    """Put back the tags journaled in ``before``.

    Exactly, when the tags are still what the run set. If someone changed them since,
    only the keys the run set (and that still hold its values) are put back, so their
    change is kept; the result says so. For a step that did not finish (``after`` has
    no tags), the tags it would have written stand in for them.
    """
    adapter = stores.adapter(step.target.source)
    record = current(adapter, step)
    previous = dict(before["tags"])
    written = dict(after["tags"]) if "tags" in after and "incomplete" not in after else {**previous, **ours}
    now = adapter.get_tags(record)
    if now in (written, previous):
        adapter.set_tags(record, previous)
        return {"tags": previous}
    restored = dict(now)
    for key, value in ours.items():
        if now.get(key) == value:
            if key in previous:
                restored[key] = previous[key]
            else:
                restored.pop(key)
    adapter.set_tags(record, restored)
    return {"tags": restored, "note": "tags were changed after the run; only the keys it set were put back"}
