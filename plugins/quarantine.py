"""The ``quarantine`` action: move duplicates into a quarantine area of their own store, provably intact.

Each duplicate is copied to ``PREFIX/CLUSTER_ID/KEY`` in the same store, the copy is read
back and its SHA-256 compared with the plan's, and only then is the original removed.
A manifest per store (``PREFIX/manifests/RUN_ID.json``, written with ``write_object``)
lists every original with its quarantine copy, hash, size and tags, so that a restore
is exact even without the catalog. Undo copies each one back, verifies it by hash,
restores its tags and then removes the quarantine copy and the manifest.

With ``merge=yes`` the plan first carries over to the canonical the tags its duplicates
hold and it lacks (never its bytes); undo reverts that too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dam_dedupe import hookimpl
from dam_dedupe.action import (
    ActionPlugin,
    ActionStep,
    ClusterChoice,
    ExpectedAsset,
    Param,
    StepSkipped,
    Stores,
    sha256_of,
    verified_copy,
)
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.errors import AssetError, ConfigError
from dam_dedupe.plugins.tagging import apply_tags, current, plan_merge, restore_tags, tags_or_none
from dam_dedupe.records import AssetRecord

DEFAULT_PREFIX = "_dam-dedupe-quarantine"
SAFE_PREFIX = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
MANIFEST_SCHEMA = "dam-dedupe/quarantine-manifest/1"


class QuarantineAction(ActionPlugin):
    """Moves each duplicate into the quarantine area after a verified copy; the canonical is never touched."""

    name = "quarantine"
    description = "move duplicates to a quarantine area in their store (copy, verify by hash, then remove)"
    params = (
        Param("prefix", "key prefix of the quarantine area in each store", DEFAULT_PREFIX),
        Param("merge", "first carry the duplicates' tags that the canonical lacks over to it", "no", ("no", "yes")),
    )
    operation = "quarantine"

    @classmethod
    def check_params(cls, given: Mapping[str, str]) -> dict[str, str]:
        """Check the parameters; the prefix must be a plain key path, the same in every store's key scheme."""
        checked = super().check_params(given)
        prefix = checked["prefix"].strip("/")
        if not prefix or not SAFE_PREFIX.fullmatch(prefix):
            raise ConfigError(
                f"prefix={checked['prefix']!r}: use letters, digits, '.', '_', '-' and '/' only, e.g. {DEFAULT_PREFIX}"
            )
        return checked

    @property
    def prefix(self) -> str:
        """The quarantine area's key prefix, without a trailing slash."""
        return self.settings["prefix"].strip("/")

    def skip_reason(self, asset: ExpectedAsset) -> str | None:
        """Copies already in the quarantine area are never planned again."""
        return f"is in the quarantine area ({self.prefix}/)" if asset.key.startswith(self.prefix + "/") else None

    def plan_cluster(self, stores: Stores, cluster: ClusterChoice) -> list[ActionStep]:
        """An optional ``merge_tags`` step on the canonical, then one step per duplicate."""
        steps: list[ActionStep] = []
        if self.settings["merge"] == "yes" and (merge := plan_merge(stores, cluster, self.name)) is not None:
            steps.append(merge)
        steps += [
            ActionStep(0, self.name, self.operation, cluster.id, "duplicate", dup, cluster.canonical,
                       self.step_params(stores, cluster, dup))
            for dup in cluster.duplicates
        ]  # fmt: skip
        return steps

    def step_params(self, stores: Stores, cluster: ClusterChoice, dup: ExpectedAsset) -> dict[str, Any]:
        """Where the duplicate's copy goes: under the prefix, by cluster, keeping its key."""
        return {"quarantine_key": f"{self.prefix}/{cluster.id}/{dup.key}"}

    # -- apply -------------------------------------------------------------------------------

    def prepare(self, stores: Stores, step: ActionStep) -> dict[str, Any]:
        """Read the asset's tags (``None`` where the store has none), for the manifest and undo."""
        adapter = stores.adapter(step.target.source)
        return {"tags": tags_or_none(adapter, current(adapter, step))}

    def apply(self, stores: Stores, step: ActionStep, before: Mapping[str, Any]) -> dict[str, Any]:
        """Merge tags, or copy-verify-remove one duplicate (re-entrant: finishes a half-done move)."""
        if step.operation == "merge_tags":
            return apply_tags(stores, step, before, step.params["add_tags"], overwrite=False)
        adapter = stores.adapter(step.target.source)
        copy = move_to_quarantine(adapter, step)
        return {"quarantine_key": copy.key, "quarantine_uri": copy.uri, "sha256": step.target.sha256,
                "tags": before.get("tags")}  # fmt: skip

    # -- undo ----------------------------------------------------------------------------------

    def undo(
        self, stores: Stores, step: ActionStep, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Revert the merge, or copy the duplicate back, verify it, restore its tags, remove the quarantine copy."""
        if step.operation == "merge_tags":
            return restore_tags(stores, step, before, after, step.params["add_tags"])
        return restore_from_quarantine(stores.adapter(step.target.source), step, after)

    # -- what the run leaves behind ---------------------------------------------------------------

    def manifest_key(self, run_id: str) -> str:
        """Where a run's manifest goes in each store it touched."""
        return f"{self.prefix}/manifests/{run_id}.json"

    def finish(self, stores: Stores, run_id: str, done: Sequence[tuple[ActionStep, Mapping[str, Any]]],
               out_dir: Path) -> list[str]:  # fmt: skip
        """Write one manifest per store the run moved copies in."""
        by_source: dict[str, list[dict[str, Any]]] = {}
        for step, after in done:
            if step.operation == "merge_tags":
                continue
            by_source.setdefault(step.target.source, []).append({
                "cluster": step.cluster, "original_key": step.target.key, "original_uri": step.target.uri,
                "quarantine_key": after["quarantine_key"], "quarantine_uri": after["quarantine_uri"],
                "sha256": step.target.sha256, "size": step.target.size, "tags": after.get("tags"),
                "canonical_uri": step.canonical.uri, "operation": step.operation})  # fmt: skip
        written = []
        for source, entries in by_source.items():
            document = {"schema": MANIFEST_SCHEMA, "run": run_id, "action": self.name, "entries": entries}
            data = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
            adapter = stores.adapter(source)
            earlier = adapter.stat(self.manifest_key(run_id))
            if earlier is not None:  # written by an interrupted attempt of this run; some stores never overwrite
                adapter.delete(earlier)
            record = adapter.write_object(self.manifest_key(run_id), data, {"dam-dedupe.manifest": run_id})
            written.append(f"manifest of {len(entries)} quarantined copies: {record.uri}")
        return written

    def finish_undo(self, stores: Stores, run_id: str, steps: Sequence[ActionStep]) -> list[str]:
        """Remove the run's manifests once every copy is back."""
        removed = []
        for source in sorted({s.target.source for s in steps if s.operation != "merge_tags"}):
            adapter = stores.adapter(source)
            record = adapter.stat(self.manifest_key(run_id))
            if record is not None:
                adapter.delete(record)
                removed.append(f"removed manifest {record.uri}")
        return removed


def move_to_quarantine(adapter: SourceAdapter, step: ActionStep) -> AssetRecord:
    """Copy the step's asset to its quarantine key, verify the copy by hash, then remove the original.

    Re-entrant: a verified copy already there is kept, and an original already removed
    is not looked for again. Returns the quarantine copy's record.
    """
    key, sha = step.params["quarantine_key"], step.target.sha256
    original = adapter.stat(step.target.key)
    if original is None:  # removed before an interruption: the copy must be there and intact
        copy = adapter.stat(key)
        if copy is None or sha256_of(adapter, copy) != sha:
            raise AssetError(f"{step.target.uri} is gone and no intact quarantine copy is at {key}")
        return copy
    if (reason := step.target.mismatch(original)) is not None:
        raise StepSkipped(reason)
    copy = verified_copy(adapter, original, key, sha)
    try:
        adapter.delete(original)
    except Exception:
        adapter.delete(copy)  # the original stays, so the copy made for it goes
        raise
    return copy


def restore_from_quarantine(adapter: SourceAdapter, step: ActionStep, after: Mapping[str, Any]) -> dict[str, Any]:
    """Copy the quarantined asset back to its key, verify it by hash, restore its tags, remove the quarantine copy.

    Re-entrant: an original already back with the right hash is not copied again.
    """
    sha = step.target.sha256
    copy = adapter.stat(after["quarantine_key"])
    restored = adapter.stat(step.target.key)
    if restored is None:
        if copy is None:
            raise StepSkipped(f"the quarantine copy {after['quarantine_uri']} is gone; nothing to restore")
        restored = verified_copy(adapter, copy, step.target.key, sha)
    elif (found := sha256_of(adapter, restored)) != sha:
        raise StepSkipped(f"{restored.uri} now holds other content (SHA-256 {found}); the quarantine copy is kept")
    tags = after.get("tags")
    if tags is not None and adapter.get_tags(restored) != tags:
        adapter.set_tags(restored, tags)
    if copy is not None:
        adapter.delete(copy)
    return {"restored_uri": restored.uri, "sha256": sha}


@hookimpl
def dam_dedupe_actions() -> list[type[ActionPlugin]]:
    """Contribute the quarantine action."""
    return [QuarantineAction]
