"""Making a plan from the catalog's clusters: selection, reviewers' decisions, the action's steps."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dam_dedupe.action import ActionPlugin, ActionStep, ClusterChoice, ExpectedAsset
from dam_dedupe.catalog import Catalog, CatalogAsset, ReviewDecision, StoredCluster
from dam_dedupe.config import Config
from dam_dedupe.decisions import CLUSTER_DECISIONS, Decisions
from dam_dedupe.errors import ConfigError
from dam_dedupe.governance import audit
from dam_dedupe.governance.plan import SCHEMA, Plan, canonical_json
from dam_dedupe.governance.signoff import policy_for_plan
from dam_dedupe.governance.stores import AdapterPool
from dam_dedupe.host import Host
from dam_dedupe.records import embedded_in


@dataclass(frozen=True, slots=True)
class Selection:
    """Which clusters and copies a plan covers; empty filters select everything.

    Attributes:
        sources: source URIs; only copies in these sources are acted on.
        match: match kinds (``exact``, ``near``, ``transformed``); only copies matched so are acted on.
        clusters: cluster ids; only these clusters are planned.
        min_confidence: copies whose match confidence is lower are left alone (see :func:`confidence`).
    """

    sources: tuple[str, ...] = ()
    match: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()
    min_confidence: float = 0.0


def confidence(match: str, evidence: Mapping[str, object]) -> float:
    """How sure the matcher is that a copy is a copy, from 0 to 1.

    The evidence's ``confidence`` when the matcher gives one; ``1.0`` for exact (byte-identical)
    copies; otherwise ``0.0``, so that a minimum confidence never lets an unscored match through.
    """
    value = evidence.get("confidence")
    if isinstance(value, int | float):
        return float(value)
    return 1.0 if match == "exact" else 0.0


def expected(asset: CatalogAsset) -> ExpectedAsset:
    """The state a step expects of a catalog asset: as last listed and fingerprinted."""
    record, fp = asset.record, asset.fingerprint
    if fp is None:
        raise ConfigError(f"{record.uri} is in a cluster but has no fingerprint; scan again")
    return ExpectedAsset(
        record.source,
        record.key,
        record.uri,
        fp.sha256,
        record.size,
        record.etag,
        record.version_id,
        record.store_hash,
        record.object_id,
        fp.format,
        fp.width,
        fp.height,
    )


@dataclass(frozen=True, slots=True)
class _Ruling:
    """A decision as the planner applies it: what, on which member, who made it, and where its effect is noted."""

    decision: str
    uri: str | None
    who: str
    record: dict[str, Any]
    effects: list[dict[str, Any]]

    def note(self, effect: str) -> None:
        """Record what the decision did in this plan."""
        self.effects.append({**self.record, "effect": effect})


class _Planner:
    """Walks the stored clusters, applying the selection and decisions, collecting steps and exclusions.

    Decisions come from the file given to this plan and from the catalog (imported earlier,
    still standing). For a cluster the file names, the file's decisions replace the stored ones.
    """

    def __init__(
        self,
        plugin: ActionPlugin,
        selection: Selection,
        decisions: Decisions | None,
        standing: Mapping[str, list[ReviewDecision]],
    ) -> None:
        self.plugin = plugin
        self.selection = selection
        self.decisions = decisions
        self.standing = standing
        self.excluded: list[dict[str, str]] = []
        self.effects: list[dict[str, Any]] = []
        self.stored_effects: list[dict[str, Any]] = []

    def exclude(self, cluster: str, reason: str, uri: str | None = None) -> None:
        """Record that a cluster, or one copy in it (``uri``), is left out of the plan, and why."""
        self.excluded.append({"cluster": cluster, **({"uri": uri} if uri else {}), "reason": reason})

    def choose(self, stored: StoredCluster, assets: dict[int, CatalogAsset]) -> ClusterChoice | None:
        """The cluster as the plan will act on it, or ``None`` (and why, in :attr:`excluded`)."""
        members = {assets[asset_id].record.uri: (assets[asset_id], match, ev) for asset_id, match, ev in stored.members}
        decided = self._decide(stored.id, set(members), assets[stored.canonical_asset_id].record.uri)
        if decided is None:
            return None
        canonical_uri, left_alone = decided
        if (document := embedded_in(members[canonical_uri][0].record)) is not None:
            # formats: acting on the files of their own would leave the picture only inside a document
            self.exclude(stored.id, f"its canonical is referenced in {document}; choose a file of its own as canonical")
            return None
        canonical = expected(members[canonical_uri][0])
        if (reason := self.plugin.skip_reason(canonical)) is not None:
            self.exclude(stored.id, f"its canonical {reason}; rescan without it")
            return None
        duplicates = []
        for uri, (asset, match, evidence) in members.items():
            if uri == canonical_uri:
                continue
            if canonical.same_object(asset.record):
                self.exclude(stored.id, f"the same object as its canonical {canonical_uri}, under another URI", uri)
            elif exp := self._duplicate(stored.id, asset, match, evidence, left_alone.get(uri)):
                if (why := self.plugin.leave_out(exp, canonical)) is not None:
                    self.exclude(stored.id, why, uri)
                else:
                    duplicates.append(exp)
        if not duplicates:
            self.exclude(stored.id, "no copy left to act on")
            return None
        return ClusterChoice(stored.id, canonical, tuple(duplicates))

    def _rulings(self, cluster: str) -> list[_Ruling]:
        """The decisions that apply to a cluster: the file's if it names the cluster, else the stored ones."""
        stored = [
            _Ruling(
                d.decision,
                d.uri,
                f"stored decision '{d.decision}' by {d.decided_by} ({d.decided_at})",
                {
                    "cluster": d.cluster,
                    "decision": d.decision,
                    "uri": d.uri,
                    "decided_by": d.decided_by,
                    "decided_at": d.decided_at,
                },
                self.stored_effects,
            )
            for d in self.standing.get(cluster, [])
        ]
        from_file = self.decisions.for_cluster(cluster) if self.decisions else []
        if not from_file:
            return stored
        for ruling in stored:
            ruling.note("replaced by the decisions file given to this plan")
        by = self.decisions.exported_by if self.decisions else ""
        return [
            _Ruling(
                d.decision,
                d.uri,
                f"reviewer decision '{d.decision}' exported by {by}",
                dataclasses.asdict(d),
                self.effects,
            )
            for d in from_file
        ]

    def _decide(self, cluster: str, members: set[str], canonical_uri: str) -> tuple[str, dict[str, str]] | None:
        """Apply reviewers' decisions: the canonical and the copies left alone (with who decided so), or ``None``
        if the cluster is out."""
        left_alone: dict[str, str] = {}
        for ruling in self._rulings(cluster):
            if ruling.decision in CLUSTER_DECISIONS:
                ruling.note("cluster left out")
                self.exclude(cluster, ruling.who)
                return None
            if ruling.uri is None or ruling.uri not in members:
                effect = "not a member of this cluster"
                if ruling.decision == "canonical":
                    ruling.note(effect + "; cluster left out")
                    self.exclude(cluster, f"{ruling.who} names {ruling.uri}, {effect}")
                    return None
                ruling.note(effect + "; ignored")
            elif ruling.decision == "canonical":
                canonical_uri = ruling.uri
                ruling.note("canonical changed")
            elif ruling.uri == canonical_uri:
                ruling.note("it is the canonical; ignored")
            else:
                left_alone[ruling.uri] = ruling.who
                ruling.note("copy left alone")
        return canonical_uri, left_alone

    def note_unplanned_decisions(self, planned: set[str], in_catalog: set[str]) -> None:
        """Record decisions about clusters this plan did not look at, so none vanishes silently."""
        for decision in self.decisions.items if self.decisions else ():
            if decision.cluster not in planned:
                effect = (
                    "cluster not selected; ignored"
                    if decision.cluster in in_catalog
                    else ("cluster no longer in the catalog; ignored")
                )
                self.effects.append({**dataclasses.asdict(decision), "effect": effect})

    def _duplicate(
        self, cluster: str, asset: CatalogAsset, match: str, evidence: dict[str, object], left_alone_by: str | None
    ) -> ExpectedAsset | None:
        sel, uri = self.selection, asset.record.uri
        reason = None
        if left_alone_by:
            reason = left_alone_by
        elif asset.state.presence != "present":
            reason = "gone at the last scan"
        elif sel.sources and asset.record.source not in sel.sources:
            reason = "not in the chosen sources"
        elif (document := embedded_in(asset.record)) is not None:
            reason = f"referenced in {document}: documents are never rewritten"
        elif match == "derivative" and match not in sel.match:
            reason = "a camera RAW master and its export (derivative): acted on only with --match derivative"
        elif sel.match and match not in sel.match:
            reason = f"match kind '{match}' not chosen"
        elif confidence(match, evidence) < sel.min_confidence:
            reason = f"match confidence {confidence(match, evidence):.2f} below {sel.min_confidence:.2f}"
        exp = expected(asset)
        reason = reason or self.plugin.skip_reason(exp)
        if reason:
            self.exclude(cluster, reason, uri)
            return None
        return exp


def make_plan(
    catalog: Catalog,
    host: Host,
    config: Config,
    action: str,
    params: Mapping[str, str] | None = None,
    selection: Selection | None = None,
    decisions: Decisions | None = None,
    by: str = "",
) -> Plan:
    """Make a plan for ``action`` over the catalog's clusters, register it in the catalog and audit it.

    Args:
        catalog: holds the clusters (run ``scan`` first).
        host: the loaded plugins; ``action`` must be one of ``host.actions``.
        config: sources' options, for the adapters that read tags to merge.
        action: the action plugin's name.
        params: the action's plan-level parameters (defaults filled in, unknown ones refused).
        selection: which clusters and copies; everything when ``None``.
        decisions: reviewers' decisions from a file, recorded in the plan. Decisions kept in the
            catalog (``dam-dedupe decisions import``) that still stand are honoured too, and
            recorded under ``stored_decisions``; for a cluster the file names, the file's win.
        by: who makes the plan (recorded in it and in the audit log).
    """
    if action not in host.actions:
        raise ConfigError(f"no action '{action}' is installed (installed: {', '.join(sorted(host.actions)) or 'none'})")
    cls = host.actions[action]
    checked = cls.check_params(params or {})
    plugin = cls(checked)
    selection = selection or Selection()
    with catalog.snapshot():  # a scan replacing the clusters meanwhile is not half seen
        planner = _Planner(plugin, selection, decisions, catalog.standing_decisions())
        all_clusters = catalog.clusters()
        stored = [c for c in all_clusters if not selection.clusters or c.id in selection.clusters]
        assets = catalog.assets_by_id(asset_id for c in stored for asset_id, _m, _e in c.members)
    unknown = set(selection.clusters) - {c.id for c in stored}
    if unknown:
        raise ConfigError(f"no cluster {sorted(unknown)} in the catalog; see 'dam-dedupe report'")
    planner.note_unplanned_decisions({c.id for c in stored}, {c.id for c in all_clusters})
    stores = AdapterPool(host, config)
    steps: list[ActionStep] = []
    clusters: list[dict[str, Any]] = []
    try:
        for cluster in stored:
            choice = planner.choose(cluster, assets)
            if choice is None:
                continue
            planned = plugin.plan_cluster(stores, choice)
            steps += [dataclasses.replace(step, index=len(steps) + n) for n, step in enumerate(planned)]
            clusters.append(
                {
                    "id": choice.id,
                    "canonical": choice.canonical.uri,
                    "copies": len(choice.duplicates),
                    "canonical_reason": cluster.canonical_reason,
                }
            )
    finally:
        stores.close()
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "action": action,
        "params": checked,
        "created": audit.now(),
        "created_by": by,
        "policy": policy_for_plan(host, config, action),
        "selection": dataclasses.asdict(selection),
        "decisions": None
        if decisions is None
        else {
            "exported_by": decisions.exported_by,
            "exported_at": decisions.exported_at,
            "file_sha256": decisions.sha256,
            "items": planner.effects,
        },
        "stored_decisions": planner.stored_effects,
        "clusters": clusters,
        "excluded": planner.excluded,
        "steps": [step.to_json() for step in steps],
    }
    body = _json_values(body)
    plan = Plan.from_body(body)
    with catalog.transaction():
        catalog.save_plan(plan.id, action, body["created"], by, canonical_json(body))
        detail = {
            "action": action,
            "params": checked,
            "steps": len(steps),
            "clusters": len(clusters),
            "excluded": len(planner.excluded),
            "decisions_sha256": decisions.sha256 if decisions else None,
            "stored_decisions": len(planner.stored_effects),
        }
        audit.record(catalog, by, "plan", plan.id, detail=detail)
    return plan


def _json_values(body: dict[str, Any]) -> dict[str, Any]:
    """The body as it reads back from JSON (tuples become lists), so the id is computed over what is written.

    Key order is kept, so the file reads in a reviewer's order; the id does not depend on it.
    """
    return dict(json.loads(json.dumps(body, ensure_ascii=False)))
