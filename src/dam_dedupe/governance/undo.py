"""``undo``: reverse an apply run, newest step first, verifying restored bytes by hash.

Every step that did anything is reversed: applied steps, and steps that failed, were
interrupted or were left in doubt by a crash, from the parts they journaled and what the
store holds. An apply run left unfinished (interrupted) may be undone instead of being
continued: undo then closes it, so a later ``apply`` of the plan starts a new run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dam_dedupe.action import ActionPlugin, ActionStep, StepSkipped
from dam_dedupe.catalog import ActionRun, Catalog
from dam_dedupe.config import Config
from dam_dedupe.errors import DamDedupeError, TransientError
from dam_dedupe.governance.plan import Plan
from dam_dedupe.governance.runner import (
    Echo,
    RunJournal,
    RunReport,
    StepResult,
    action_plugin,
    incomplete_after,
    progress_of,
    undone_steps,
)
from dam_dedupe.governance.stores import AdapterPool
from dam_dedupe.host import Host


def _apply_run(catalog: Catalog, run_id: str) -> tuple[ActionRun, Plan]:
    """The apply run ``run_id`` (finished, or interrupted) and its plan, or a clear refusal."""
    run = catalog.action_run(run_id)
    if run is None:
        raise DamDedupeError(f"no run {run_id} in this catalog; 'dam-dedupe runs' lists them")
    if run.kind != "apply":
        raise DamDedupeError(f"{run_id} is an undo run; only apply runs can be undone")
    body = catalog.plan_body(run.plan_id)
    if body is None:
        raise DamDedupeError(f"the plan {run.plan_id} of run {run_id} is missing from the catalog")
    plan = Plan.from_body(json.loads(body))
    if plan.id != run.plan_id:
        raise DamDedupeError(f"the catalog's copy of plan {run.plan_id} was altered; undo refused")
    return run, plan


def _undo_to_continue(catalog: Catalog, run: ActionRun) -> ActionRun | None:
    """The interrupted undo of ``run``, or ``None`` (a finished undo that left steps is followed by a new one)."""
    for other in catalog.action_runs(run.plan_id):
        if other.kind == "undo" and other.undoes == run.id and other.status == "running":
            return other
    return None


@dataclass(frozen=True)
class _Pending:
    """What an undo of an apply run has to do: the run's journaled *before*/*after* and the steps left."""

    befores: dict[int, dict[str, object]]
    afters: dict[int, dict[str, object]]
    done_before: set[int]
    steps: list[ActionStep]

    @classmethod
    def of(cls, catalog: Catalog, run: ActionRun, plan: Plan) -> _Pending:
        """Steps the run did anything in, newest first, less those a finished undo already reversed.

        Applied steps come with their *after*. A step that began (it has a *before*) and
        failed, or has no *after* (interrupted, or in doubt after a crash), comes with
        :func:`~dam_dedupe.governance.runner.incomplete_after`; so does a skipped step that
        journaled a part done. A step skipped before it changed anything is left alone.
        """
        journal = catalog.journal(run.id)
        befores = {e.step: e.detail for e in journal if e.phase == "before"}
        outcomes = {e.step: (e.outcome, e.detail) for e in journal if e.phase == "after"}
        progress = progress_of(catalog, run.id)
        afters: dict[int, dict[str, object]] = {}
        for index, before in befores.items():
            outcome, detail = outcomes.get(index, ("interrupted", {}))
            if outcome == "applied":
                afters[index] = dict(detail)
            elif outcome != "skipped" or index in progress:
                afters[index] = incomplete_after(outcome, before, progress.get(index, {}))
        done = undone_steps(catalog, run)
        steps = [s for s in reversed(plan.steps) if s.index in afters and s.index not in done]
        if not steps and done:
            raise DamDedupeError(f"run {run.id} was already undone")
        return cls(befores, afters, done, steps)


def undo_run(
    catalog: Catalog,
    host: Host,
    config: Config,
    run_id: str,
    by: str = "",
    dry_run: bool = False,
    echo: Echo | None = None,
) -> RunReport:
    """Undo every applied step of apply run ``run_id``, newest first; resume an interrupted undo.

    Steps that were skipped or failed in the apply run changed nothing and are left alone;
    a step an undo had to skip is retried by the next ``undo`` of the same run.
    Returns the undo run's report; its ``run_id`` is the undo run's own id.
    """
    say = echo or (lambda _line: None)
    run, plan = _apply_run(catalog, run_id)
    plugin = action_plugin(host, plan)
    if dry_run:
        report = RunReport("", plan.id, "undo", dry_run=True)
        for step in _Pending.of(catalog, run, plan).steps:
            report.results.append(StepResult(step, "would"))
            say(f"would undo {step.operation} {step.target.uri}")
        return report
    with catalog.run_lock():
        run = _close_interrupted(catalog, host, run, by, say)
        pending = _Pending.of(catalog, run, plan)
        earlier = _undo_to_continue(catalog, run)
        if earlier is None:
            journal = RunJournal.start(catalog, host, plan.id, "undo", by, undoes=run.id)
        else:
            journal = RunJournal(catalog, host, earlier, by)
            journal.resume()
            say(f"continuing interrupted undo {earlier.id}")
        stores = AdapterPool(host, config, journal.write_progress)
        try:
            report = RunReport(journal.run.id, plan.id, "undo", resumed=earlier is not None)
            away: set[str] = set()  # sources that could not be reached: their other steps wait for the next undo
            for step in pending.steps:
                result = journal.earlier_result(step)
                if result is None and step.target.source in away:
                    result = StepResult(step, "interrupted", "its store could not be reached earlier in this undo")
                result = result or _undo_step(
                    plugin, stores, journal, step, pending.befores.get(step.index, {}), pending.afters[step.index]
                )
                if result.outcome == "interrupted":
                    away.add(step.target.source)
                report.results.append(result)
                tail = f": {result.reason}" if result.reason else ""
                say(f"{result.outcome:8} {step.operation} {step.target.uri}{tail}")
            if report.count("interrupted"):
                report.notes.append(
                    f"{report.count('interrupted')} steps were interrupted by a failure that may pass; "
                    f"run 'dam-dedupe undo {run.id}' again to continue undo run {journal.run.id}"
                )
                return report
            undone = pending.done_before | {r.step.index for r in report.results if r.outcome == "undone"}
            if set(pending.afters) <= undone:
                report.notes = plugin.finish_undo(stores, run.id, [s for s in plan.steps if s.index in pending.afters])
            journal.finish(report)
            return report
        finally:
            stores.close()


def _close_interrupted(catalog: Catalog, host: Host, run: ActionRun, by: str, say: Echo) -> ActionRun:
    """Close an apply run left unfinished, so that it is undone rather than continued later; return it as closed."""
    if run.status == "finished":
        return run
    note = "closed by undo: its unfinished steps are undone, not continued"
    RunJournal(catalog, host, run, by).close({}, [note], event="closed_by_undo")
    say(f"apply run {run.id} was interrupted; it is closed, and what it did is undone")
    closed = catalog.action_run(run.id)
    assert closed is not None
    return closed


def _undo_step(
    plugin: ActionPlugin,
    stores: AdapterPool,
    journal: RunJournal,
    step: ActionStep,
    before: dict[str, object],
    after: dict[str, object],
) -> StepResult:
    """Reverse one step: journal *before*, undo, journal *after*; a failure that may pass leaves it to continue."""
    if step.index not in journal.before:
        journal.write_before(step, {})
    try:
        result = StepResult(step, "undone", detail=plugin.undo(stores, step, before, after))
    except StepSkipped as exc:
        result = StepResult(step, "skipped", str(exc))
    except TransientError as exc:
        return journal.interrupted(step, str(exc))
    except Exception as exc:  # an adapter's or plugin's failure is the step's, not the run's
        reason = str(exc) if isinstance(exc, DamDedupeError) else f"{type(exc).__name__}: {exc}"
        result = StepResult(step, "failed", reason)
    journal.write_after(result, {"restored": result.detail})
    return result
