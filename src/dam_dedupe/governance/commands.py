"""The governance commands: ``plan``, ``approve``, ``apply``, ``undo``, ``runs`` and ``audit``.

They are added to the ``dam-dedupe`` group at the end of :mod:`dam_dedupe.cli`.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dam_dedupe.decisions import read_decisions
from dam_dedupe.errors import ConfigError
from dam_dedupe.governance import audit
from dam_dedupe.governance.apply import apply_plan
from dam_dedupe.governance.plan import read_plan, write_plan
from dam_dedupe.governance.planner import Selection, make_plan
from dam_dedupe.governance.runner import RunReport
from dam_dedupe.governance.signoff import approve as record_signoff
from dam_dedupe.governance.undo import undo_run

if TYPE_CHECKING:
    from dam_dedupe.cli import Context

UNFINISHED_EXIT = 75
"""Exit status of ``apply``/``undo`` when a failure that may pass left the run to be continued (EX_TEMPFAIL)."""

BY_HELP = "Who does this, for the audit log [default: the login name]."


def _who(by: str | None) -> str:
    """The actor for the audit log: ``--by``, else the login name."""
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError) as exc:  # no login name in some containers
        raise ConfigError("cannot tell who you are; say it with --by NAME") from exc


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param takes NAME=VALUE, not {pair!r}")
        params[name.strip()] = value.strip()
    return params


def _summary(report: RunReport) -> str:
    outcomes = ("applied", "undone", "skipped", "failed", "interrupted")
    counts = ", ".join(f"{o} {report.count(o)}" for o in outcomes if report.count(o))
    return counts or "no steps"


PLAN_EPILOG = """\b
Parameters of the built-in actions:
  tag         none
  quarantine  prefix=_dam-dedupe-quarantine  merge=no|yes
  redirect    prefix=...  merge=no|yes  pointer=auto|symlink|hardlink|stub
An unknown parameter is refused with the list the action accepts."""


RESCAN_HINT = "the catalog and its reports show the stores as last scanned: scan the sources again to see this"


@click.command("plan", epilog=PLAN_EPILOG)
@click.option("--action", required=True, help="The action: tag, quarantine, redirect (see 'dam-dedupe plugins').")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="An action parameter, e.g. prefix=_quarantine, merge=yes, pointer=stub (repeatable).",
)
@click.option("--source", "sources", multiple=True, help="Act only on copies in this source (repeatable).")
@click.option(
    "--match",
    "matches",
    multiple=True,
    type=click.Choice(["exact", "near", "transformed"]),
    help="Act only on copies matched so (repeatable).",
)
@click.option("--cluster", "clusters", multiple=True, help="Plan only this cluster id (repeatable).")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.0, help="Leave less certain copies alone.")
@click.option(
    "--decisions",
    "decisions_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Reviewers' decisions exported by the HTML review (see docs/governance.md).",
)
@click.option("--by", default=None, help=BY_HELP)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Plan file to write."
)
@click.pass_obj
def plan_command(obj: Context, action: str, params: tuple[str, ...], sources: tuple[str, ...],
                 matches: tuple[str, ...], clusters: tuple[str, ...], min_confidence: float,
                 decisions_path: Path | None, by: str | None, output: Path) -> None:  # fmt: skip
    """Write a reviewable plan of what ACTION would do to the catalog's duplicates."""
    config, host = obj.config, obj.host
    selection = Selection(tuple(config.source(s).uri for s in sources), matches, clusters, min_confidence)
    decisions = read_decisions(decisions_path) if decisions_path else None
    catalog = obj.catalog()
    try:
        plan = make_plan(catalog, host, config, action, _params(params), selection, decisions, _who(by))
    finally:
        catalog.close()
    write_plan(plan, output)
    click.echo(f"plan {plan.id}: {len(plan.body['steps'])} steps over {len(plan.body['clusters'])} clusters, "
               f"{len(plan.body['excluded'])} copies or clusters left out; wrote {output}")  # fmt: skip
    click.echo(f"next: dam-dedupe approve {output} --by NAME --role ROLE")


@click.command("approve")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--by", required=True, help="Who signs off.")
@click.option("--role", required=True, help="In which role (see [governance] required_roles).")
@click.option("--note", default="", help="A note kept with the sign-off.")
@click.pass_obj
def approve_command(obj: Context, plan_file: Path, by: str, role: str, note: str) -> None:
    """Sign off PLAN_FILE as BY in ROLE."""
    plan = read_plan(plan_file)
    catalog = obj.catalog()
    try:
        missing = record_signoff(catalog, obj.config, plan, by, role, note)
    finally:
        catalog.close()
    click.echo(f"{by} signed off plan {plan.id} as {role}")
    click.echo(f"still needed before apply: {', '.join(missing)}" if missing else "the plan may now be applied")


@click.command("apply")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check each step and say what would happen; change nothing.")
@click.option("--by", default=None, help=BY_HELP)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where files for people (the redirect map) are written.",
)
@click.pass_obj
def apply_command(obj: Context, plan_file: Path, dry_run: bool, by: str | None, out_dir: Path) -> None:
    """Apply an approved PLAN_FILE; run it again to finish an interrupted run."""
    plan = read_plan(plan_file)
    catalog = obj.catalog()
    try:
        report = apply_plan(catalog, obj.host, obj.config, plan, _who(by), dry_run, out_dir, click.echo)
    finally:
        catalog.close()
    for note in report.notes:
        click.echo(note)
    if dry_run:
        click.echo(f"dry run: {report.count('would')} steps would run, {report.count('skipped')} would be skipped")
    else:
        click.echo(f"run {report.run_id}: {_summary(report)}; undo with: dam-dedupe undo {report.run_id}")
        click.echo(RESCAN_HINT)
        if not report.finished:
            raise SystemExit(UNFINISHED_EXIT)


@click.command("undo")
@click.argument("run_id")
@click.option("--dry-run", is_flag=True, help="Say which steps would be reversed; change nothing.")
@click.option("--by", default=None, help=BY_HELP)
@click.pass_obj
def undo_command(obj: Context, run_id: str, dry_run: bool, by: str | None) -> None:
    """Reverse apply run RUN_ID, newest step first, verifying restored bytes by hash."""
    catalog = obj.catalog()
    try:
        report = undo_run(catalog, obj.host, obj.config, run_id, _who(by), dry_run, click.echo)
    finally:
        catalog.close()
    for note in report.notes:
        click.echo(note)
    if not dry_run:
        click.echo(f"undo run {report.run_id}: {_summary(report)}")
        click.echo(RESCAN_HINT)
        if not report.finished:
            raise SystemExit(UNFINISHED_EXIT)


@click.command("runs")
@click.pass_obj
def runs_command(obj: Context) -> None:
    """List apply and undo runs with their plans and status."""
    catalog = obj.catalog()
    try:
        for run in catalog.action_runs():
            undoes = f" undoes {run.undoes}" if run.undoes else ""
            click.echo(f"{run.id}  {run.kind:5} {run.status:8} plan {run.plan_id}{undoes}  by {run.started_by} "
                       f"at {run.started}")  # fmt: skip
    finally:
        catalog.close()


@click.group("audit")
def audit_group() -> None:
    """Check or export the audit log of plans, sign-offs, runs and steps."""


@audit_group.command("verify")
@click.option("--head", default=None, help="A hash printed by an earlier verify: the log must still hold it.")
@click.pass_obj
def audit_verify(obj: Context, head: str | None) -> None:
    """Check the audit log's hash chain; exit 1 naming every broken entry."""
    catalog = obj.catalog()
    try:
        entries = catalog.audit_entries()
    finally:
        catalog.close()
    problems = audit.verify(entries, head)
    if problems:
        raise click.ClickException("the audit log was tampered with:\n  " + "\n  ".join(problems))
    last = entries[-1].hash if entries else audit.GENESIS
    click.echo(f"audit log intact: {len(entries)} entries; head {last} (keep it to check later with --head)")


@audit_group.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV file.")
@click.pass_obj
def audit_export(obj: Context, output: Path) -> None:
    """Write the audit log as CSV."""
    catalog = obj.catalog()
    try:
        entries = catalog.audit_entries()
    finally:
        catalog.close()
    audit.export_csv(entries, output)
    click.echo(f"wrote {len(entries)} entries to {output}")
