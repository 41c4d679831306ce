"""What ``apply`` and ``undo`` share: the run record, the step journal, audit entries and listeners.

Every step that changes a store is journaled in the catalog: *before* (committed before
the store is touched, with what undo needs), each *part* of a multi-part step as it is done
(``step_progress`` entries of the audit log: copy made, original removed, pointer placed),
and *after* (with its final outcome). A run killed at any moment, or stopped by a
:class:`~dam_dedupe.errors.TransientError` (the step is then *interrupted*: it has a
*before* and no *after*, and the run is not finished), is resumed by running the same
command again: a step with an *after* is never run again; a step with only a *before* is
handed back to its plugin, which inspects the store and finishes it (plugins' ``apply``
and ``undo`` are re-entrant). The catalog refuses a second *after* for one step, so no
step is recorded done twice.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dam_dedupe.action import ActionPlugin, ActionStep
from dam_dedupe.catalog import ActionRun, Catalog, JournalEntry
from dam_dedupe.errors import ConfigError
from dam_dedupe.governance import audit
from dam_dedupe.governance.plan import Plan
from dam_dedupe.host import Host

log = logging.getLogger(__name__)

Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class StepResult:
    """What happened to one step in a run.

    Attributes:
        step: the plan's step.
        outcome: ``applied``, ``undone``, ``skipped`` or ``failed`` (final, journaled as the step's
            *after*), or ``interrupted`` (a failure that may pass: not journaled as an *after*, so
            running the command again continues the step).
        reason: why it was skipped or failed; empty otherwise.
        detail: what the plugin returned (the step's *after*).
        earlier: ``True`` when it was done by an earlier, interrupted attempt of this run.
    """

    step: ActionStep
    outcome: str
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    earlier: bool = False


@dataclass(slots=True)
class RunReport:
    """The result of ``apply`` or ``undo``: the run id (for ``undo`` and the audit), each step, and what was written."""

    run_id: str
    plan_id: str
    kind: str
    results: list[StepResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resumed: bool = False
    dry_run: bool = False
    finished: bool = False
    """Whether the run is done; ``False`` when a failure that may pass left it to be continued."""

    def count(self, outcome: str) -> int:
        """How many steps had this outcome."""
        return sum(1 for r in self.results if r.outcome == outcome)


def action_plugin(host: Host, plan: Plan) -> ActionPlugin:
    """The plan's action plugin, built with the plan's parameters."""
    cls = host.actions.get(plan.action)
    if cls is None:
        raise ConfigError(f"plan {plan.id} needs the '{plan.action}' action, which is not installed")
    return cls(plan.params)


def undone_steps(catalog: Catalog, run: ActionRun) -> set[int]:
    """The steps of apply run ``run`` that its finished undo runs have undone."""
    return {
        entry.step
        for other in catalog.action_runs(run.plan_id)
        if other.kind == "undo" and other.undoes == run.id and other.status == "finished"
        for entry in catalog.journal(other.id)
        if entry.phase == "after" and entry.outcome == "undone"
    }


def progress_of(catalog: Catalog, run_id: str) -> dict[int, dict[str, dict[str, Any]]]:
    """The parts of each step of run ``run_id`` journaled as done, by step index and part name."""
    found: dict[int, dict[str, dict[str, Any]]] = {}
    for entry in catalog.audit_entries():
        if entry.run_id == run_id and entry.event == "step_progress":
            parts = found.setdefault(int(str(entry.detail["step"])), {})
            done = entry.detail.get("detail")
            parts[str(entry.detail["part"])] = dict(done) if isinstance(done, dict) else {}
    return found


def incomplete_after(outcome: str, before: Mapping[str, Any], parts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What a plugin's ``undo`` and ``finish`` get for a step that did not finish: its *before*, every part it
    journaled (by name, and their fields at the top level) and ``incomplete`` with its outcome."""
    merged: dict[str, Any] = dict(before)
    for part, detail in parts.items():
        merged.update(detail)
        merged[part] = dict(detail)
    merged["incomplete"] = outcome
    return merged


def new_run_id() -> str:
    """A run id users can type: ``r-`` with the UTC time and a random suffix."""
    return f"r-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


class RunJournal:
    """One run's journal and audit trail in the catalog."""

    def __init__(self, catalog: Catalog, host: Host, run: ActionRun, actor: str) -> None:
        self.catalog = catalog
        self.host = host
        self.run = run
        self.actor = actor
        entries = catalog.journal(run.id)
        self.before = {e.step: e for e in entries if e.phase == "before"}
        self.after = {e.step: e for e in entries if e.phase == "after"}
        self.progress = progress_of(catalog, run.id)

    @classmethod
    def start(
        cls, catalog: Catalog, host: Host, plan_id: str, kind: str, actor: str, undoes: str | None = None
    ) -> RunJournal:
        """Record a new run and audit its start."""
        run = ActionRun(new_run_id(), plan_id, kind, undoes, audit.now(), actor, None, "running")
        with catalog.transaction():
            catalog.begin_action_run(run)
            audit.record(catalog, actor, f"{kind}_started", plan_id, run.id, {"undoes": undoes} if undoes else {})
        return cls(catalog, host, run, actor)

    def resume(self) -> None:
        """Audit that an interrupted run is being continued."""
        with self.catalog.transaction():
            detail = {"steps_done": len(self.after), "steps_in_doubt": len(set(self.before) - set(self.after))}
            audit.record(self.catalog, self.actor, f"{self.run.kind}_resumed", self.run.plan_id, self.run.id, detail)

    def earlier_result(self, step: ActionStep) -> StepResult | None:
        """The step's outcome from an earlier attempt of this run, or ``None`` if it has no *after* yet."""
        entry = self.after.get(step.index)
        if entry is None:
            return None
        detail = dict(entry.detail)
        return StepResult(step, entry.outcome, str(detail.pop("reason", "")), detail, earlier=True)

    def write_before(self, step: ActionStep, detail: dict[str, Any]) -> None:
        """Commit the step's *before*."""
        entry = JournalEntry(self.run.id, step.index, "before", "", detail, audit.now())
        with self.catalog.transaction():
            self.catalog.add_journal(entry)
        self.before[step.index] = entry

    def write_progress(self, step: ActionStep, part: str, detail: Mapping[str, Any]) -> None:
        """Commit that ``part`` of ``step`` is done (an audit entry), before the plugin goes on."""
        stored = dict(detail)
        with self.catalog.transaction():
            detail_entry = {"step": step.index, "part": part, "uri": step.target.uri, "detail": stored}
            audit.record(self.catalog, self.actor, "step_progress", self.run.plan_id, self.run.id, detail_entry)
        self.progress.setdefault(step.index, {})[part] = stored

    def interrupted(self, step: ActionStep, reason: str) -> StepResult:
        """Audit that a step met a failure that may pass; it keeps no *after*, so the run continues it later."""
        with self.catalog.transaction():
            detail = {"step": step.index, "operation": step.operation, "uri": step.target.uri, "reason": reason}
            audit.record(self.catalog, self.actor, "step_interrupted", self.run.plan_id, self.run.id, detail)
        return StepResult(step, "interrupted", reason)

    def write_after(self, result: StepResult, audit_detail: dict[str, Any]) -> None:
        """Commit the step's *after* with an audit entry, then tell listeners."""
        step = result.step
        detail = {**result.detail, **({"reason": result.reason} if result.reason else {})}
        entry = JournalEntry(self.run.id, step.index, "after", result.outcome, detail, audit.now())
        with self.catalog.transaction():
            self.catalog.add_journal(entry)
            audit.record(
                self.catalog,
                self.actor,
                "step",
                self.run.plan_id,
                self.run.id,
                {
                    "step": step.index,
                    "operation": step.operation,
                    "uri": step.target.uri,
                    "outcome": result.outcome,
                    **({"reason": result.reason} if result.reason else {}),
                    **audit_detail,
                },
            )
        self.after[step.index] = entry
        try:
            self.host.hook.dam_dedupe_action_applied(step=step, outcome=result.outcome)
        except Exception:  # a listener's bug must not stop a run half way
            log.exception("a dam_dedupe_action_applied listener failed on step %s", step.index)

    def finish(self, report: RunReport) -> None:
        """Mark the run finished and audit its counts."""
        counts = {o: report.count(o) for o in ("applied", "undone", "skipped", "failed") if report.count(o)}
        self.close(counts, report.notes)
        report.finished = True

    def close(self, counts: Mapping[str, int], notes: list[str], event: str = "finished") -> None:
        """Mark the run finished with these counts and notes, and audit it as ``KIND_EVENT``."""
        with self.catalog.transaction():
            self.catalog.finish_action_run(self.run.id, audit.now())
            detail = {"counts": dict(counts), "notes": notes}
            audit.record(self.catalog, self.actor, f"{self.run.kind}_{event}", self.run.plan_id, self.run.id, detail)
