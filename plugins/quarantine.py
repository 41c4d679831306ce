"""The ``quarantine`` action: move duplicates into a quarantine area of their own store, provably intact.

Each duplicate goes to ``PREFIX/CLUSTER_ID/KEY`` in the same store under the rule of
:mod:`dam_dedupe.action`: copied, the copy read back and its SHA-256 compared with the
plan's, and only then the original removed (or, where the store moves natively, moved
and the moved object verified, so it keeps its id, versions and sharing). Each part is
journaled as it is done. A manifest per store (``PREFIX/manifests/RUN_ID.json``, written
with ``write_object``) lists every original with its quarantine copy, hash, size and
tags, so that a restore is exact even without the catalog. Undo brings each one back,
verifies it by hash, restores its tags and only then removes the quarantine copy and
the manifest.

With ``merge=yes`` the plan first carries over to the canonical the tags its duplicates
hold and it lacks (never its bytes); undo reverts that too.
"""

from __future__ import annotations

import functools
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
    Progress,
    StepSkipped,
    Stores,
    holds,
    remove_copy,
    remove_original,
    sha256_of,
    verified_copy,
    verified_move,
)
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.errors import AssetError, ConfigError, TransientError
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
        for dup in cluster.duplicates:
            params = self.step_params(stores, cluster, dup)
            steps.append(
                ActionStep(0, self.name, self.operation, cluster.id, "duplicate", dup, cluster.canonical, params)
            )
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
        """Merge tags, or move one duplicate into quarantine under the rule (re-entrant: finishes a half-done move)."""
        if step.operation == "merge_tags":
            return apply_tags(stores, step, before, step.params["add_tags"], overwrite=False)
        adapter = stores.adapter(step.target.source)
        note = functools.partial(stores.progress, step)
        copy, removal = move_to_quarantine(adapter, step, note)
        keep_canonical(stores, step, copy, before, note)
        return {
            "quarantine_key": copy.key,
            "quarantine_uri": copy.uri,
            "sha256": step.target.sha256,
            "tags": before.get("tags"),
            **removal,
        }

    # -- undo ----------------------------------------------------------------------------------

    def undo(
        self, stores: Stores, step: ActionStep, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Revert the merge, or bring the duplicate back, verify it, restore its tags, remove the quarantine copy."""
        if step.operation == "merge_tags":
            return restore_tags(stores, step, before, after, step.params["add_tags"])
        return restore_from_quarantine(stores.adapter(step.target.source), step, {**before, **after})

    # -- what the run leaves behind ---------------------------------------------------------------

    def manifest_key(self, run_id: str) -> str:
        """Where a run's manifest goes in each store it touched."""
        return f"{self.prefix}/manifests/{run_id}.json"

    def finish(
        self, stores: Stores, run_id: str, done: Sequence[tuple[ActionStep, Mapping[str, Any]]], out_dir: Path
    ) -> list[str]:
        """Write one manifest per store the run moved copies in: every original whose quarantine copy now stands
        for it (applied steps, and incomplete ones that removed the original)."""
        by_source: dict[str, list[dict[str, Any]]] = {}
        for step, after in done:
            if step.operation == "merge_tags" or not holds_the_only_copy(after):
                continue
            entry = {
                "source": step.target.source,
                "cluster": step.cluster,
                "original_key": step.target.key,
                "original_uri": step.target.uri,
                "quarantine_key": after["quarantine_key"],
                "quarantine_uri": after["quarantine_uri"],
                "sha256": step.target.sha256,
                "size": step.target.size,
                "tags": after.get("tags"),
                "canonical_uri": step.canonical.uri,
                "operation": step.operation,
                **({"incomplete": after["incomplete"]} if "incomplete" in after else {}),
            }
            by_source.setdefault(step.target.source, []).append(entry)
        written = []
        for source, entries in by_source.items():
            adapter = stores.adapter(source)
            earlier = adapter.stat(self.manifest_key(run_id))
            if earlier is not None:  # an interrupted attempt of this run, or another source naming the same folder
                entries = [*_entries_of_other_sources(adapter, earlier, source), *entries]
            document = {"schema": MANIFEST_SCHEMA, "run": run_id, "action": self.name, "entries": entries}
            data = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
            if earlier is not None:  # some stores never overwrite
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
            adapter.tidy(self.manifest_key(run_id))  # its folders too, when a killed undo removed the manifest alone
        return removed


def _entries_of_other_sources(adapter: SourceAdapter, manifest: AssetRecord, source: str) -> list[dict[str, Any]]:
    """The entries a run's manifest already holds for other sources (two sources can name one folder), kept when
    ``source``'s entries are written again; an unreadable earlier manifest yields none."""
    try:
        with adapter.open(manifest) as stream:
            document = json.loads(stream.read())
    except (AssetError, ValueError):
        return []
    return [e for e in document.get("entries", []) if isinstance(e, dict) and e.get("source", source) != source]


def holds_the_only_copy(after: Mapping[str, Any]) -> bool:
    """Whether a step's journal says its quarantine copy now stands for the original (applied, or the original
    removed or moved before the step stopped)."""
    if "incomplete" not in after:
        return "quarantine_key" in after
    return ("original_removed" in after or "moved" in after) and "put_back" not in after


def move_to_quarantine(adapter: SourceAdapter, step: ActionStep, note: Progress) -> tuple[AssetRecord, dict[str, str]]:
    """Put the step's asset at its quarantine key under the rule of :mod:`dam_dedupe.action`; journal each part.

    Copy, verify the copy by hash, remove the original (or, on stores with
    ``native_move``, move and verify the moved object). Re-entrant: a verified copy
    already there is kept, and an original already removed is not looked for again.
    A final failure to remove the original removes the copy again only when the original
    is verified present and unchanged by hash. Returns the quarantine copy's record and
    what the store said about the removal (to journal).
    """
    key, sha = step.params["quarantine_key"], step.target.sha256
    original = adapter.stat(step.target.key)
    if original is None:  # removed before an interruption: the copy must be there and intact
        copy = holds(adapter, key, sha)
        if copy is None:
            raise AssetError(f"{step.target.uri} is gone and no intact quarantine copy is at {key}")
        return copy, {}
    if (reason := step.target.mismatch(original)) is not None:
        raise StepSkipped(reason)
    parts = {"quarantine_key": key}
    if adapter.native_move and adapter.stat(key) is None:  # a copy already there (an earlier attempt): finish it
        moved = verified_move(adapter, original, key, sha)
        note("moved", {**parts, "quarantine_uri": moved.uri})
        return moved, {}
    copy = verified_copy(adapter, original, key, sha)
    note("copied", {**parts, "quarantine_uri": copy.uri})
    try:
        removal = remove_original(adapter, original, copy, sha)
    except TransientError:
        raise  # in doubt: resume or undo decides from what the store holds then
    except AssetError:
        if remove_copy(adapter, copy, original.key, sha):
            note("copy_removed", parts)
        raise
    note("original_removed", removal)
    return copy, removal


def keep_canonical(
    stores: Stores, step: ActionStep, copy: AssetRecord, before: Mapping[str, Any], note: Progress
) -> None:
    """Put the duplicate back and fail if removing it took its canonical with it (one object under two URIs
    that the store gave no object id for): the canonical must outlive its duplicates."""
    canonical = step.canonical
    if stores.adapter(canonical.source).stat(canonical.key) is not None:
        return
    journal = {"tags": before.get("tags"), "quarantine_uri": copy.uri}
    restore_from_quarantine(stores.adapter(step.target.source), step, journal)
    note("put_back", {})
    raise AssetError(
        f"removing {step.target.uri} removed its canonical {canonical.uri} too: they are one object reached under "
        "two URIs; it was put back from its verified quarantine copy"
    )


def restore_from_quarantine(adapter: SourceAdapter, step: ActionStep, journal: Mapping[str, Any]) -> dict[str, Any]:
    """Bring the quarantined asset back to its key, verify it by hash, restore its tags, remove the quarantine copy.

    ``journal`` is the step's *before* and *after* (or, for a step that did not finish,
    the parts it journaled). Re-entrant: an original already back with the right hash is
    not brought back again; the quarantine copy is removed only once the original is
    verified by hash (:func:`~dam_dedupe.action.remove_copy`).
    """
    sha, key = step.target.sha256, step.params["quarantine_key"]
    uri = journal.get("quarantine_uri", key)
    copy = adapter.stat(key)
    if copy is None and "incomplete" in journal and not made_copy(journal):
        return {"note": "the step stopped before it copied or removed anything"}
    restored = adapter.stat(step.target.key)
    if restored is None:
        if copy is None:
            raise StepSkipped(f"the quarantine copy {uri} is gone; nothing to restore")
        if adapter.native_move:
            restored = verified_move(adapter, copy, step.target.key, sha)
        else:
            restored = verified_copy(adapter, copy, step.target.key, sha)
    elif (found := sha256_of(adapter, restored)) != sha:
        raise StepSkipped(f"{restored.uri} now holds other content (SHA-256 {found}); the quarantine copy is kept")
    tags = journal.get("tags")
    if tags is not None and adapter.get_tags(restored) != tags:
        adapter.set_tags(restored, tags)
    result = {"restored_uri": restored.uri, "sha256": sha}
    if copy is not None and adapter.stat(key) is not None and not remove_copy(adapter, copy, restored.key, sha):
        if "incomplete" in journal and not made_copy(journal):
            return {**result, "note": f"{uri} holds content this step did not put there; left as it is"}
        raise StepSkipped(f"the quarantine copy {uri} no longer matches the plan's SHA-256; it is kept")
    adapter.tidy(key)  # the copy is gone: its folders too, even when a killed run removed the copy alone
    return result


def made_copy(journal: Mapping[str, Any]) -> bool:
    """Whether a step's journal says it put a copy at its quarantine key."""
    return "copied" in journal or "moved" in journal


@hookimpl
def dam_dedupe_actions() -> list[type[ActionPlugin]]:
    """Contribute the quarantine action."""
    return [QuarantineAction]
