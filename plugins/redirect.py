"""The ``redirect`` action: replace each duplicate with a pointer to the canonical.

Each duplicate is first backed up into the quarantine area exactly as ``quarantine``
does (copy, read back, SHA-256 compared), then removed, then replaced by a pointer:

- on stores whose adapter can make links (local folders), a symbolic link (``pointer=symlink``)
  or a hard link (``pointer=hardlink``) to the canonical in the same source;
- elsewhere, and with ``pointer=stub``, a small stub object (``write_object``) whose
  ``dam-dedupe.redirect`` metadata and JSON body name the canonical.

``pointer=auto`` (the default) makes a symbolic link where the store can, else a stub.
The run writes a redirect map, ``redirects-RUN_ID.csv`` and ``.json`` (old URI to
canonical URI), that a DAM can import, and a manifest per store like ``quarantine``.
Undo removes each pointer (only if it is still the one the run made), copies the
backup back, verifies it by hash and restores its tags.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from dam_dedupe import hookimpl
from dam_dedupe.action import ActionPlugin, ActionStep, ClusterChoice, ExpectedAsset, Param, Stores, sha256_of
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.errors import AssetError, ConfigError
from dam_dedupe.plugins.quarantine import QuarantineAction, move_to_quarantine, restore_from_quarantine
from dam_dedupe.stubs import stub_bytes

REDIRECT_TAG = "dam-dedupe.redirect"
MAP_COLUMNS = ("old_uri", "canonical_uri", "cluster", "pointer", "backup_uri", "sha256")


@runtime_checkable
class LinkingAdapter(Protocol):
    """An adapter whose store has links (the local adapter); ``redirect`` uses them in place of stubs."""

    def make_link(self, key: str, target_key: str, hard: bool = False) -> None:
        """Make ``key`` a link to ``target_key``."""
        ...

    def is_link_to(self, key: str, target_key: str) -> bool:
        """Whether ``key`` is a link to ``target_key``."""
        ...

    def remove_link(self, key: str, target_key: str) -> None:
        """Remove ``key`` if it is a link to ``target_key``."""
        ...


def stub_body(step: ActionStep) -> bytes:
    """The bytes of a stub object standing for a redirected duplicate (see :mod:`dam_dedupe.stubs`)."""
    return stub_bytes(step.canonical.uri, step.target.uri, step.target.sha256, step.cluster)


class RedirectAction(QuarantineAction):
    """Backs up each duplicate into the quarantine area, then leaves a link or stub to the canonical in its place."""

    name = "redirect"
    description = "replace duplicates with a link or stub pointing to the canonical, after a verified backup copy"
    params = (
        *QuarantineAction.params,
        Param("pointer", "what replaces a duplicate", "auto", ("auto", "symlink", "hardlink", "stub")),
    )
    operation = "redirect"

    def step_params(self, stores: Stores, cluster: ClusterChoice, dup: ExpectedAsset) -> dict[str, Any]:
        """The backup key, and the pointer kind this duplicate gets (resolved now, so reviewers see it)."""
        wanted = self.settings["pointer"]
        can_link = dup.source == cluster.canonical.source and isinstance(stores.adapter(dup.source), LinkingAdapter)
        if wanted == "auto":
            wanted = "symlink" if can_link else "stub"
        elif wanted != "stub" and not can_link:
            raise ConfigError(
                f"pointer={wanted} needs the duplicate and its canonical in one store that has links; "
                f"{dup.uri} cannot link to {cluster.canonical.uri}: use pointer=stub or pointer=auto"
            )
        return {**super().step_params(stores, cluster, dup), "pointer": wanted}

    def apply(self, stores: Stores, step: ActionStep, before: Mapping[str, Any]) -> dict[str, Any]:
        """Back up, remove and replace one duplicate with its pointer (re-entrant)."""
        if step.operation == "merge_tags":
            return super().apply(stores, step, before)
        adapter = stores.adapter(step.target.source)
        pointer = step.params["pointer"]
        if _pointer_in_place(adapter, step):  # made before an interruption: check the backup and finish
            copy = adapter.stat(step.params["quarantine_key"])
            if copy is None or sha256_of(adapter, copy) != step.target.sha256:
                raise AssetError(f"the pointer is in place but the backup of {step.target.uri} is missing or damaged")
            if pointer == "stub":  # its metadata may not have been written before the interruption
                _label_stub(adapter, step)
        else:
            copy = move_to_quarantine(adapter, step)
            _make_pointer(adapter, step, pointer)
        return {"quarantine_key": copy.key, "quarantine_uri": copy.uri, "sha256": step.target.sha256,
                "tags": before.get("tags"), "pointer": pointer}  # fmt: skip

    def undo(
        self, stores: Stores, step: ActionStep, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Remove the pointer if it is still the run's, then restore the backup as ``quarantine`` does."""
        if step.operation == "merge_tags":
            return super().undo(stores, step, before, after)
        adapter = stores.adapter(step.target.source)
        if _pointer_in_place(adapter, step):
            _remove_pointer(adapter, step)
        return restore_from_quarantine(adapter, step, after)

    def finish(self, stores: Stores, run_id: str, done: Sequence[tuple[ActionStep, Mapping[str, Any]]],
               out_dir: Path) -> list[str]:  # fmt: skip
        """Write the manifests, then the redirect map as CSV and JSON in ``out_dir``."""
        written = super().finish(stores, run_id, done, out_dir)
        rows = [
            {"old_uri": step.target.uri, "canonical_uri": step.canonical.uri, "cluster": step.cluster,
             "pointer": after["pointer"], "backup_uri": after["quarantine_uri"], "sha256": step.target.sha256}
            for step, after in done if step.operation == "redirect"
        ]  # fmt: skip
        out_dir.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = out_dir / f"redirects-{run_id}.csv", out_dir / f"redirects-{run_id}.json"
        with csv_path.open("w", encoding="utf-8-sig", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=MAP_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        json_path.write_text(json.dumps({"run": run_id, "redirects": rows}, ensure_ascii=False, indent=1) + "\n",
                             encoding="utf-8")  # fmt: skip
        return [*written, f"redirect map: {csv_path} and {json_path}"]


def _pointer_in_place(adapter: SourceAdapter, step: ActionStep) -> bool:
    """Whether the duplicate's key holds the pointer this step makes (and nothing else)."""
    pointer, key = step.params["pointer"], step.target.key
    if pointer in ("symlink", "hardlink"):
        return isinstance(adapter, LinkingAdapter) and adapter.is_link_to(key, step.canonical.key)
    record = adapter.stat(key)
    body = stub_body(step)
    if record is None or record.size != len(body):
        return False
    with adapter.open(record) as stream:
        return bool(stream.read(len(body) + 1) == body)


def _make_pointer(adapter: SourceAdapter, step: ActionStep, pointer: str) -> None:
    if pointer == "stub":
        adapter.write_object(step.target.key, stub_body(step), {REDIRECT_TAG: step.canonical.uri})
    elif isinstance(adapter, LinkingAdapter):
        adapter.make_link(step.target.key, step.canonical.key, hard=pointer == "hardlink")
    else:
        raise AssetError(f"this store cannot make a {pointer}; plan again with pointer=stub")


def _label_stub(adapter: SourceAdapter, step: ActionStep) -> None:
    """Make sure the stub in place carries the metadata naming the canonical (without rewriting its bytes)."""
    record = adapter.stat(step.target.key)
    if record is None:
        raise AssetError(f"the stub at {step.target.uri} vanished")
    tags = adapter.get_tags(record)
    if tags.get(REDIRECT_TAG) != step.canonical.uri:
        adapter.set_tags(record, {**tags, REDIRECT_TAG: step.canonical.uri})


def _remove_pointer(adapter: SourceAdapter, step: ActionStep) -> None:
    if step.params["pointer"] == "stub":
        record = adapter.stat(step.target.key)
        if record is not None:
            adapter.delete(record)
    elif isinstance(adapter, LinkingAdapter):
        adapter.remove_link(step.target.key, step.canonical.key)


@hookimpl
def dam_dedupe_actions() -> list[type[ActionPlugin]]:
    """Contribute the redirect action."""
    return [RedirectAction]
