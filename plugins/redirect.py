"""The ``redirect`` action: replace each duplicate with a pointer to the canonical.

Each duplicate is replaced by a pointer in this order, each part journaled as it is done:
the pointer is first written beside the backup (``QUARANTINE_KEY.dam-dedupe-pointer``)
and verified, so a store that cannot take it is found out before anything is removed;
the duplicate is then backed up into the quarantine area exactly as ``quarantine`` does
(copy, read back, SHA-256 compared, then the original removed); then the pointer is made
at the duplicate's key and verified, and the staged one removed. A failure or a kill at
any point leaves a journal that undo restores from. The pointer is:

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
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from dam_dedupe import hookimpl
from dam_dedupe.action import ActionPlugin, ActionStep, ClusterChoice, ExpectedAsset, Param, Stores, holds
from dam_dedupe.adapter import SourceAdapter
from dam_dedupe.errors import AssetError, ConfigError
from dam_dedupe.plugins.quarantine import (
    QuarantineAction,
    keep_canonical,
    move_to_quarantine,
    restore_from_quarantine,
)
from dam_dedupe.stubs import stub_bytes

REDIRECT_TAG = "dam-dedupe.redirect"
STAGED_SUFFIX = ".dam-dedupe-pointer"
"""The staged pointer's key is the backup's key with this suffix."""
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
        """Stage the pointer, back up and remove the duplicate, then put the pointer in its place (re-entrant)."""
        if step.operation == "merge_tags":
            return super().apply(stores, step, before)
        adapter = stores.adapter(step.target.source)
        note = functools.partial(stores.progress, step)
        pointer = step.params["pointer"]
        if _pointer_in_place(adapter, step):  # made before an interruption: check the backup and finish
            copy = holds(adapter, step.params["quarantine_key"], step.target.sha256)
            if copy is None:
                raise AssetError(f"the pointer is in place but the backup of {step.target.uri} is missing or damaged")
            if pointer == "stub":  # its metadata may not have been written before the interruption
                _label_stub(adapter, step)
            removal: dict[str, str] = {}
        else:
            _stage_pointer(adapter, step)
            note("pointer_staged", {"staged_key": _staged_key(step)})
            copy, removal = move_to_quarantine(adapter, step, note)
            keep_canonical(stores, step, copy, before)
            _make_pointer(adapter, step, pointer)
            if not _pointer_in_place(adapter, step):
                raise AssetError(f"the {pointer} made at {step.target.uri} does not read back as the one planned")
            note("pointer_placed", {"pointer": pointer})
        _unstage_pointer(adapter, step)
        return {
            "quarantine_key": copy.key,
            "quarantine_uri": copy.uri,
            "sha256": step.target.sha256,
            "tags": before.get("tags"),
            "pointer": pointer,
            **removal,
        }

    def undo(
        self, stores: Stores, step: ActionStep, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Remove the pointer if it is still the run's (and a staged one), then restore the backup as
        ``quarantine`` does."""
        if step.operation == "merge_tags":
            return super().undo(stores, step, before, after)
        adapter = stores.adapter(step.target.source)
        if _pointer_in_place(adapter, step):
            _remove_pointer(adapter, step)
        _unstage_pointer(adapter, step)
        return restore_from_quarantine(adapter, step, {**before, **after})

    def finish(
        self, stores: Stores, run_id: str, done: Sequence[tuple[ActionStep, Mapping[str, Any]]], out_dir: Path
    ) -> list[str]:
        """Write the manifests, then the redirect map (pointers in place) as CSV and JSON in ``out_dir``."""
        written = super().finish(stores, run_id, done, out_dir)
        rows = [
            {
                "old_uri": step.target.uri,
                "canonical_uri": step.canonical.uri,
                "cluster": step.cluster,
                "pointer": after["pointer"],
                "backup_uri": after["quarantine_uri"],
                "sha256": step.target.sha256,
            }
            for step, after in done
            if step.operation == "redirect" and "incomplete" not in after
        ]
        out_dir.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = out_dir / f"redirects-{run_id}.csv", out_dir / f"redirects-{run_id}.json"
        with csv_path.open("w", encoding="utf-8-sig", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=MAP_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        document = json.dumps({"run": run_id, "redirects": rows}, ensure_ascii=False, indent=1)
        json_path.write_text(document + "\n", encoding="utf-8")
        return [*written, f"redirect map: {csv_path} and {json_path}"]


def _staged_key(step: ActionStep) -> str:
    """Where the pointer is made first, beside the backup, before anything is removed."""
    return str(step.params["quarantine_key"]) + STAGED_SUFFIX


def _pointer_in_place(adapter: SourceAdapter, step: ActionStep, key: str | None = None) -> bool:
    """Whether ``key`` (the duplicate's key by default) holds the pointer this step makes, and nothing else."""
    pointer, key = step.params["pointer"], key or step.target.key
    if pointer in ("symlink", "hardlink"):
        return isinstance(adapter, LinkingAdapter) and adapter.is_link_to(key, step.canonical.key)
    record = adapter.stat(key)
    body = stub_body(step)
    if record is None or record.size != len(body):
        return False
    with adapter.open(record) as stream:
        return bool(stream.read(len(body) + 1) == body)


def _make_pointer(adapter: SourceAdapter, step: ActionStep, pointer: str, key: str | None = None) -> None:
    """Make the step's pointer at ``key`` (the duplicate's key by default); never overwrites."""
    key = key or step.target.key
    if pointer == "stub":
        adapter.write_object(key, stub_body(step), {REDIRECT_TAG: step.canonical.uri})
    elif isinstance(adapter, LinkingAdapter):
        adapter.make_link(key, step.canonical.key, hard=pointer == "hardlink")
    else:
        raise AssetError(f"this store cannot make a {pointer}; plan again with pointer=stub")


def _stage_pointer(adapter: SourceAdapter, step: ActionStep) -> None:
    """Make the pointer at its staged key and verify it, or fail before anything is removed (re-entrant)."""
    staged = _staged_key(step)
    if _pointer_in_place(adapter, step, staged):
        return
    if adapter.stat(staged) is not None:  # a planted link is refused by the never-overwriting write itself
        raise AssetError(f"{staged} is occupied by something else; the pointer cannot be staged there")
    _make_pointer(adapter, step, step.params["pointer"], staged)
    if not _pointer_in_place(adapter, step, staged):
        raise AssetError(f"the {step.params['pointer']} staged at {staged} does not read back as planned")


def _unstage_pointer(adapter: SourceAdapter, step: ActionStep) -> None:
    """Remove the staged pointer if it is there and still the step's own."""
    staged = _staged_key(step)
    if not _pointer_in_place(adapter, step, staged):
        return
    if step.params["pointer"] == "stub":
        record = adapter.stat(staged)
        if record is not None:
            adapter.delete(record)
    elif isinstance(adapter, LinkingAdapter):
        adapter.remove_link(staged, step.canonical.key)


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
