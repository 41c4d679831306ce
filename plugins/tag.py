"""The ``tag`` action: mark every copy with its cluster, its role and the canonical, in the store's own tags.

Tags go wherever the store keeps them (``adapter.get_tags``/``set_tags``: extended
attributes or a sidecar file on local folders, object tags on S3, index tags on Azure),
merged with the tags already there. Tagging changes no content, so the canonical is
tagged too, as ``canonical``. Undo puts the previous tags back exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dam_dedupe import hookimpl
from dam_dedupe.action import ActionPlugin, ActionStep, ClusterChoice, ExpectedAsset, Role, Stores
from dam_dedupe.display import display_path
from dam_dedupe.plugins.tagging import apply_tags, current, restore_tags

TAG_CLUSTER = "dam-dedupe.cluster"
TAG_ROLE = "dam-dedupe.role"
TAG_CANONICAL = "dam-dedupe.canonical"


class TagAction(ActionPlugin):
    """Tags each member of a cluster with ``dam-dedupe.cluster``, ``dam-dedupe.role`` and ``dam-dedupe.canonical``."""

    name = "tag"
    description = "mark each copy with its cluster id, its role and the canonical's URI, in the store's own tags"
    removes_originals = False

    def plan_cluster(self, stores: Stores, cluster: ClusterChoice) -> list[ActionStep]:
        """One step for the canonical, then one for each duplicate."""
        members: list[tuple[Role, ExpectedAsset]] = [("canonical", cluster.canonical)]
        members += [("duplicate", dup) for dup in cluster.duplicates]
        return [
            ActionStep(
                0,
                self.name,
                "tag",
                cluster.id,
                role,
                asset,
                cluster.canonical,
                {"tags": {TAG_CLUSTER: cluster.id, TAG_ROLE: role, TAG_CANONICAL: cluster.canonical.uri}},
            )
            for role, asset in members
        ]

    def prepare(self, stores: Stores, step: ActionStep) -> dict[str, Any]:
        """Read the tags the asset has now, for undo."""
        adapter = stores.adapter(step.target.source)
        return {"tags": adapter.get_tags(current(adapter, step))}

    def apply(self, stores: Stores, step: ActionStep, before: Mapping[str, Any]) -> dict[str, Any]:
        """Write the step's tags over the previous ones (other keys kept)."""
        return apply_tags(stores, step, before, step.params["tags"], overwrite=True)

    def undo(
        self, stores: Stores, step: ActionStep, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Put the previous tags back."""
        return restore_tags(stores, step, before, after, step.params["tags"])

    def finish(
        self, stores: Stores, run_id: str, done: Sequence[tuple[ActionStep, Mapping[str, Any]]], out_dir: Path
    ) -> list[str]:
        """Say where each store keeps the tags, so an admin can find them."""
        sources = dict.fromkeys(step.target.source for step, _after in done)
        return [f"tags on {display_path(source)} are in {stores.adapter(source).tags_kept()}" for source in sources]


@hookimpl
def dam_dedupe_actions() -> list[type[ActionPlugin]]:
    """Contribute the tag action."""
    return [TagAction]
