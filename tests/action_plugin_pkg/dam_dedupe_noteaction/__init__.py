"""An example action: leave a note beside each duplicate naming the copy to keep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dam_dedupe import hookimpl
from dam_dedupe.action import ActionPlugin, ActionStep, ClusterChoice, StepSkipped, Stores


class NoteAction(ActionPlugin):
    """Writes ``KEY.duplicate.txt`` beside each duplicate; undo removes it."""

    name = "note"
    description = "leave a text note beside each duplicate naming the copy to keep"

    def plan_cluster(self, stores: Stores, cluster: ClusterChoice) -> list[ActionStep]:
        """One step per duplicate; the note's key is in the plan, so reviewers see it."""
        return [
            ActionStep(
                0,
                self.name,
                "note",
                cluster.id,
                "duplicate",
                dup,
                cluster.canonical,
                {"note_key": dup.key + ".duplicate.txt"},
            )
            for dup in cluster.duplicates
        ]

    def apply(self, stores: Stores, step: ActionStep, before: Mapping[str, Any]) -> dict[str, Any]:
        """Write the note; re-entrant, because writing the same note again changes nothing."""
        adapter = stores.adapter(step.target.source)
        text = f"This is a copy of {step.canonical.uri}\n".encode()
        existing = adapter.stat(step.params["note_key"])
        if existing is not None and existing.size != len(text):
            raise StepSkipped(f"{existing.uri} already exists; not overwritten")
        return {"note_uri": adapter.write_object(step.params["note_key"], text).uri}

    def undo(
        self, stores: Stores, step: ActionStep, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Remove the note (re-entrant: a note already gone is fine)."""
        adapter = stores.adapter(step.target.source)
        note = adapter.stat(step.params["note_key"])
        if note is not None:
            adapter.delete(note)
        return {"removed": after["note_uri"]}


@hookimpl
def dam_dedupe_actions() -> list[type[ActionPlugin]]:
    """Contribute the note action."""
    return [NoteAction]
