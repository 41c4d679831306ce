"""``apply``: carry out an approved plan, step by step, journaled and resumable.

Before a step acts, its asset must be as planned (size, etag, version, store hash, object
id); a duplicate's canonical must be present, unchanged and not the same object as the
duplicate; and before the first step of a cluster that removes or replaces a duplicate,
the canonical's bytes are read back through its adapter and matched by SHA-256.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dam_dedupe.action import ActionPlugin, ActionStep, ExpectedAsset, StepSkipped, Stores, sha256_of
from dam_dedupe.catalog import ActionRun, Catalog
from dam_dedupe.config import Config
from dam_dedupe.display import display_path
from dam_dedupe.errors import AssetGone, DamDedupeError, TransientError
from dam_dedupe.governance.plan import Plan
from dam_dedupe.governance.runner import (
    Echo,
    RunJournal,
    RunReport,
    StepResult,
    action_plugin,
    incomplete_after,
    undone_steps,
)
from dam_dedupe.governance.signoff import NotApproved, approval_problems, check_registered
from dam_dedupe.governance.stores import AdapterPool
from dam_dedupe.host import Host


def _run_to_continue(catalog: Catalog, plan: Plan) -> ActionRun | None:
    """The plan's interrupted apply run, or ``None``; a plan is applied once.

    A plan applied and then undone is not applied again on its old sign-offs: the stores
    have changed since it was made, so a new plan from a fresh scan needs new sign-offs.
    """
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
    if applied:
        raise DamDedupeError(
            f"plan {plan.id} was applied in run {last.id} and undone; a plan is applied once: scan again, "
            "make a new plan and have it signed off again"
        )
    return None


def apply_plan(
    catalog: Catalog,
    host: Host,
    config: Config,
    plan: Plan,
    by: str = "",
    dry_run: bool = False,
    out_dir: Path = Path("."),
    echo: Echo | None = None,
) -> RunReport:
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
    plugin = action_plugin(host, plan)
    with catalog.snapshot():  # the registered plan and its sign-offs as of one moment
        check_registered(catalog, plan)
        policy, missing = approval_problems(catalog, config, host, plan)
    say(f"policy: {policy.describe()}")
    stores = AdapterPool(host, config)
    try:
        if dry_run:
            return _dry_run(plan, plugin, stores, missing, say)
        if missing:
            raise NotApproved(
                f"plan {plan.id} is not approved: it still needs {', '.join(missing)} "
                f"('dam-dedupe approve PLAN --role ROLE')"
            )
        with catalog.run_lock():
            return _apply(catalog, host, plan, plugin, stores, by, out_dir, say)
    finally:
        stores.close()


def _apply(
    catalog: Catalog,
    host: Host,
    plan: Plan,
    plugin: ActionPlugin,
    stores: AdapterPool,
    by: str,
    out_dir: Path,
    say: Echo,
) -> RunReport:
    """Start or continue the plan's run and take every step not done yet.

    A step whose store cannot answer now is *interrupted*; the other steps of that
    store are left for the next attempt, the run is not finished, and ``apply`` run again
    continues it.
    """
    earlier = _run_to_continue(catalog, plan)
    if earlier is None:
        journal = RunJournal.start(catalog, host, plan.id, "apply", by)
    else:
        journal = RunJournal(catalog, host, earlier, by)
        journal.resume()
        say(f"continuing interrupted run {earlier.id}")
    stores.on_progress = journal.write_progress
    report = RunReport(journal.run.id, plan.id, "apply", resumed=earlier is not None)
    canonicals = CanonicalCheck()
    away: set[str] = set()
    for step in plan.steps:
        result = journal.earlier_result(step)
        if result is None and away & {step.target.source, step.canonical.source}:
            result = StepResult(step, "interrupted", "its store could not be reached earlier in this run")
        result = result or _apply_step(plugin, stores, journal, step, canonicals)
        if result.outcome == "interrupted":
            away |= {step.target.source, step.canonical.source}
        report.results.append(result)
        say(_line(result))
    if report.count("interrupted"):
        report.notes.append(
            f"{report.count('interrupted')} steps were interrupted by a failure that may pass; "
            f"run 'dam-dedupe apply' on the plan again to continue run {journal.run.id}"
        )
        return report
    try:
        report.notes = plugin.finish(stores, journal.run.id, _did_something(journal, report), out_dir)
    except TransientError as exc:
        report.notes.append(f"the run's manifests could not be written yet ({exc}); run 'dam-dedupe apply' again")
        return report
    journal.finish(report)
    return report


def _did_something(journal: RunJournal, report: RunReport) -> list[tuple[ActionStep, dict[str, Any]]]:
    """Every applied step with its *after*, and every other step that journaled a part done, for ``finish``."""
    done: list[tuple[ActionStep, dict[str, Any]]] = []
    for result in report.results:
        index = result.step.index
        if result.outcome == "applied":
            done.append((result.step, result.detail))
        elif index in journal.progress and index in journal.before:
            before = dict(journal.before[index].detail)
            done.append((result.step, incomplete_after(result.outcome, before, journal.progress[index])))
    return done


def _apply_step(
    plugin: ActionPlugin, stores: AdapterPool, journal: RunJournal, step: ActionStep, canonicals: CanonicalCheck
) -> StepResult:
    """Run one step: check its asset (and its canonical), journal *before*, act, journal *after*."""
    entry = journal.before.get(step.index)
    if entry is not None:
        before: dict[str, Any] = dict(entry.detail)  # begun before a crash: the plugin inspects and finishes it
    else:
        try:
            _check_state(stores, step)
            if plugin.removes_originals and step.role == "duplicate":
                canonicals.check(stores, step)
            before = plugin.prepare(stores, step)
        except StepSkipped as exc:
            return _record(journal, StepResult(step, "skipped", str(exc)))
        except TransientError as exc:
            return journal.interrupted(step, _reason(exc))
        except Exception as exc:  # an adapter's or plugin's failure is the step's, not the run's
            return _record(journal, StepResult(step, "failed", _reason(exc)))
        journal.write_before(step, before)
    try:
        after = plugin.apply(stores, step, before)
        result = StepResult(step, "applied", detail=after)
    except StepSkipped as exc:
        result = StepResult(step, "skipped", str(exc))
    except TransientError as exc:
        return journal.interrupted(step, _reason(exc))
    except Exception as exc:
        result = StepResult(step, "failed", _reason(exc))
    return _record(journal, result)


def _check_state(stores: Stores, step: ActionStep) -> None:
    """Raise :class:`StepSkipped` unless the asset, and for a duplicate its canonical, are as planned.

    A duplicate is never acted on when the copy it defers to is gone or changed, or when
    the store says the two are one object reached under two URIs.
    """
    target = stores.adapter(step.target.source).stat(step.target.key)
    reason = step.target.mismatch(target)
    if reason is not None:
        raise StepSkipped(reason)
    if step.role == "duplicate":
        canonical = step.canonical
        now = stores.adapter(canonical.source).stat(canonical.key)
        reason = canonical.mismatch(now, content_only=True)
        if reason is not None:
            raise StepSkipped(f"its canonical {canonical.uri} is {reason}; the copy is left as it is")
        now_id = now.object_id if now is not None else None
        one_object = target is not None and now_id is not None and target.object_id == now_id
        if step.target.same_object(canonical) or one_object:
            raise StepSkipped(
                f"it is the same object as its canonical {canonical.uri} (reached under two URIs); left as it is"
            )


class CanonicalCheck:
    """Each cluster's canonical verified by content hash, once per run, before its first destructive step.

    The plan's size, etag and store hash do not prove the bytes where the store has no
    content hash (local files, multipart S3 objects, Azure blobs without Content-MD5), so
    the canonical is read back through its adapter and its SHA-256 compared with the plan's.
    """

    def __init__(self) -> None:
        self.reasons: dict[tuple[str, str], str | None] = {}

    def check(self, stores: Stores, step: ActionStep) -> None:
        """Raise :class:`StepSkipped` if the step's canonical no longer holds the bytes the plan saw."""
        key = (step.cluster, step.canonical.uri)
        if key not in self.reasons:
            self.reasons[key] = canonical_content_problem(stores, step.canonical)
        if (reason := self.reasons[key]) is not None:
            raise StepSkipped(reason)


def canonical_content_problem(stores: Stores, canonical: ExpectedAsset) -> str | None:
    """Why ``canonical``'s bytes are not the ones the plan saw (read back and hashed), or ``None`` if they are."""
    adapter = stores.adapter(canonical.source)
    record = adapter.stat(canonical.key)
    try:
        found = sha256_of(adapter, record) if record is not None else None
    except AssetGone:
        found = None
    if found is None:
        return f"its canonical {canonical.uri} is gone; the copy is left as it is"
    if found != canonical.sha256:
        return (
            f"its canonical {canonical.uri} now holds other content (SHA-256 {found}, the plan saw "
            f"{canonical.sha256}); the copies of this cluster are left as they are"
        )
    return None


def _record(journal: RunJournal, result: StepResult) -> StepResult:
    journal.write_after(result, {"expected_sha256": result.step.target.sha256, "result": result.detail})
    return result


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, DamDedupeError) else f"{type(exc).__name__}: {exc}"


def describe(step: ActionStep) -> str:
    """One step as a reviewer reads it: the file (decoded), what happens to it, and the canonical it copies."""
    target, canonical = display_path(step.target.uri), display_path(step.canonical.uri)
    params = step.params
    tags = params.get("tags")
    if step.role == "canonical":
        what = _tagged(tags) if isinstance(tags, dict) else step.operation.replace("_", " ")
        return f"{target} (the canonical): {what}"
    if isinstance(tags, dict):
        what = _tagged({k: v for k, v in tags.items() if v != step.canonical.uri})
    elif "quarantine_key" in params and step.operation == "quarantine":
        what = f"moved to {display_path(params['quarantine_key'])}"
    elif "pointer" in params:
        what = (
            f"replaced by a {params['pointer']} to the canonical, backed up at {display_path(params['quarantine_key'])}"
        )
    else:
        what = step.operation.replace("_", " ")
    return f"{target}: {what}; a copy of {canonical}"


def _tagged(tags: dict[str, Any]) -> str:
    return "tagged " + ", ".join(f"{key}={display_path(str(value))}" for key, value in tags.items())


def _line(result: StepResult) -> str:
    tail = f": {result.reason}" if result.reason else ""
    again = " (done before the interruption)" if result.earlier else ""
    return f"{result.outcome:8} {describe(result.step)}{tail}{again}"


def _dry_run(plan: Plan, plugin: ActionPlugin, stores: AdapterPool, missing: list[str], say: Echo) -> RunReport:
    """Check every step's asset (and canonical, by hash) and say what ``apply`` would do; change nothing."""
    report = RunReport("", plan.id, "apply", dry_run=True)
    if missing:
        report.notes.append(f"not approved yet: needs {', '.join(missing)}")
    canonicals = CanonicalCheck()
    for step in plan.steps:
        try:
            _check_state(stores, step)
            if plugin.removes_originals and step.role == "duplicate":
                canonicals.check(stores, step)
            reason = ""
        except DamDedupeError as exc:
            reason = str(exc)
        result = StepResult(step, "skipped" if reason else "would", reason, dict(step.params))
        report.results.append(result)
        tail = f": {reason}" if reason else ""
        say(f"would {'skip' if reason else 'do'}: {describe(step)}{tail}")
    return report
