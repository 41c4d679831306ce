"""``apply``: carry out an approved plan, step by step, journaled and resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dam_dedupe.action import ActionPlugin, ActionStep, StepSkipped
from dam_dedupe.catalog import ActionRun, Catalog
from dam_dedupe.config import Config
from dam_dedupe.errors import DamDedupeError
from dam_dedupe.governance.plan import Plan
from dam_dedupe.governance.runner import (
    Echo,
    RunJournal,
    RunReport,
    StepResult,
    action_plugin,
    undone_steps,
)
from dam_dedupe.governance.signoff import (
    NotApproved,
    author_may_sign,
    check_registered,
    missing_signoffs,
    required_roles,
)
from dam_dedupe.governance.stores import AdapterPool
from dam_dedupe.host import Host


def approval_problems(catalog: Catalog, config: Config, plan: Plan) -> list[str]:
    """What the plan still lacks before it may be applied (empty when approved).

    The author's own sign-offs do not count unless ``[governance] author_may_sign`` allows
    them now (the setting may have changed since they were given)."""
    signoffs = catalog.signoffs(plan.id)
    if not author_may_sign(config):
        signoffs = [s for s in signoffs if s.signed_by != plan.body.get("created_by")]
    return missing_signoffs(signoffs, required_roles(config))


def _run_to_continue(catalog: Catalog, plan: Plan) -> ActionRun | None:
    """The plan's interrupted apply run, or ``None``; refuses a plan already applied and not undone."""
    runs = catalog.action_runs(plan.id)
    applies = [r for r in runs if r.kind == "apply"]
    if not applies:
        return None
    last = applies[-1]
    if last.status == "running":
        return last
    applied = {e.step for e in catalog.journal(last.id) if e.phase == "after" and e.outcome == "applied"}
    if applied - undone_steps(catalog, last):
        raise DamDedupeError(
            f"plan {plan.id} was already applied in run {last.id}; undo it with 'dam-dedupe undo {last.id}'"
            " or make a new plan"
        )
    return None


def apply_plan(catalog: Catalog, host: Host, config: Config, plan: Plan, by: str = "", dry_run: bool = False,
               out_dir: Path = Path("."), echo: Echo | None = None) -> RunReport:  # fmt: skip
    """Apply an approved plan; resume its interrupted run if there is one.

    Args:
        catalog: the catalog the plan was made with (it holds the sign-offs and the journal).
        host: the loaded plugins.
        config: sources' options and ``[governance] required_roles``.
        plan: the plan, as read by :func:`~dam_dedupe.governance.plan.read_plan`.
        by: who applies it (audit log).
        dry_run: only check each step's asset and say what would happen; nothing is written.
        out_dir: where files for people (a redirect map) are written.
        echo: told one line per step.

    Raises :class:`~dam_dedupe.governance.signoff.NotApproved` without the required sign-offs.
    """
    say = echo or (lambda _line: None)
    check_registered(catalog, plan)
    plugin = action_plugin(host, plan)
    missing = approval_problems(catalog, config, plan)
    stores = AdapterPool(host, config)
    try:
        if dry_run:
            return _dry_run(plan, stores, missing, say)
        if missing:
            raise NotApproved(f"plan {plan.id} is not approved: it still needs {', '.join(missing)} "
                              f"('dam-dedupe approve PLAN --by NAME --role ROLE')")  # fmt: skip
        with catalog.run_lock():
            return _apply(catalog, host, plan, plugin, stores, by, out_dir, say)
    finally:
        stores.close()


def _apply(catalog: Catalog, host: Host, plan: Plan, plugin: ActionPlugin, stores: AdapterPool, by: str,
           out_dir: Path, say: Echo) -> RunReport:  # fmt: skip
    """Start or continue the plan's run and take every step not done yet."""
    earlier = _run_to_continue(catalog, plan)
    if earlier is None:
        journal = RunJournal.start(catalog, host, plan.id, "apply", by)
    else:
        journal = RunJournal(catalog, host, earlier, by)
        journal.resume()
        say(f"continuing interrupted run {earlier.id}")
    report = RunReport(journal.run.id, plan.id, "apply", resumed=earlier is not None)
    for step in plan.steps:
        result = journal.earlier_result(step) or _apply_step(plugin, stores, journal, step)
        report.results.append(result)
        say(_line(result))
    done = [(r.step, r.detail) for r in report.results if r.outcome == "applied"]
    report.notes = plugin.finish(stores, journal.run.id, done, out_dir)
    journal.finish(report)
    return report


def _apply_step(plugin: ActionPlugin, stores: AdapterPool, journal: RunJournal, step: ActionStep) -> StepResult:
    """Run one step: check its asset, journal *before*, act, journal *after*."""
    entry = journal.before.get(step.index)
    if entry is not None:
        before: dict[str, Any] = dict(entry.detail)  # begun before a crash: the plugin inspects and finishes it
    else:
        try:
            _check_state(stores, step)
            before = plugin.prepare(stores, step)
        except StepSkipped as exc:
            return _record(journal, StepResult(step, "skipped", str(exc)))
        except Exception as exc:  # an adapter's or plugin's failure is the step's, not the run's
            return _record(journal, StepResult(step, "failed", _reason(exc)))
        journal.write_before(step, before)
    try:
        after = plugin.apply(stores, step, before)
        result = StepResult(step, "applied", detail=after)
    except StepSkipped as exc:
        result = StepResult(step, "skipped", str(exc))
    except Exception as exc:
        result = StepResult(step, "failed", _reason(exc))
    journal.checkpoint()
    return _record(journal, result)


def _check_state(stores: AdapterPool, step: ActionStep) -> None:
    """Raise :class:`StepSkipped` unless the asset, and for a duplicate its canonical, are as planned.

    A duplicate is never acted on when the copy it defers to is gone or changed.
    """
    reason = step.target.mismatch(stores.adapter(step.target.source).stat(step.target.key))
    if reason is not None:
        raise StepSkipped(reason)
    if step.role == "duplicate":
        canonical = step.canonical
        reason = canonical.mismatch(stores.adapter(canonical.source).stat(canonical.key), content_only=True)
        if reason is not None:
            raise StepSkipped(f"its canonical {canonical.uri} is {reason}; the copy is left as it is")


def _record(journal: RunJournal, result: StepResult) -> StepResult:
    journal.write_after(result, {"expected_sha256": result.step.target.sha256, "result": result.detail})
    return result


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, DamDedupeError) else f"{type(exc).__name__}: {exc}"


def _line(result: StepResult) -> str:
    step = result.step
    tail = f": {result.reason}" if result.reason else ""
    again = " (done before the interruption)" if result.earlier else ""
    return f"{result.outcome:8} {step.operation} {step.target.uri}{tail}{again}"


def _dry_run(plan: Plan, stores: AdapterPool, missing: list[str], say: Echo) -> RunReport:
    """Check every step's asset and say what ``apply`` would do; change nothing."""
    report = RunReport("", plan.id, "apply", dry_run=True)
    if missing:
        report.notes.append(f"not approved yet: needs {', '.join(missing)}")
    for step in plan.steps:
        try:
            _check_state(stores, step)
            reason = ""
        except DamDedupeError as exc:
            reason = str(exc)
        result = StepResult(step, "skipped" if reason else "would", reason, dict(step.params))
        report.results.append(result)
        tail = f": {reason}" if reason else ""
        say(f"would {'skip' if reason else 'do'} {step.operation} {step.target.uri}{tail}")
    return report
