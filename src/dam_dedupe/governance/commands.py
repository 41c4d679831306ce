"""The governance commands: ``plan``, ``approve``, ``apply``, ``undo``, ``runs`` and ``audit``.

They are added to the ``dam-dedupe`` group at the end of :mod:`dam_dedupe.cli`.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dam_dedupe.decisions import read_decisions
from dam_dedupe.display import display_path
from dam_dedupe.errors import ConfigError
from dam_dedupe.governance import audit
from dam_dedupe.governance.apply import apply_plan
from dam_dedupe.governance.plan import read_plan, write_plan
from dam_dedupe.governance.planner import Selection, make_plan
from dam_dedupe.governance.runner import RunReport
from dam_dedupe.governance.signatures import plan_message
from dam_dedupe.governance.signoff import Policy, effective_policy, scheme
from dam_dedupe.governance.signoff import approve as record_signoff
from dam_dedupe.governance.undo import undo_run

if TYPE_CHECKING:
    from dam_dedupe.cli import Context

UNFINISHED_EXIT = 75
"""Exit status of ``apply``/``undo`` when a failure that may pass left the run to be continued (EX_TEMPFAIL)."""

BY_HELP = "Who does this, for the audit log [default: the login name]."
JSON_HELP = "Print the result as one JSON object on stdout, for scripts (docs/cli.md)."


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
  redirect    prefix=...  merge=no|yes  pointer=auto|symlink|hardlink|stub  formats=same|any
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
    type=click.Choice(["exact", "near", "transformed", "derivative"]),
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
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def plan_command(
    obj: Context,
    action: str,
    params: tuple[str, ...],
    sources: tuple[str, ...],
    matches: tuple[str, ...],
    clusters: tuple[str, ...],
    min_confidence: float,
    decisions_path: Path | None,
    by: str | None,
    output: Path,
    as_json: bool,
) -> None:
    """Write a reviewable plan of what ACTION would do to the catalog's duplicates."""
    if not output.parent.is_dir():  # before the plan is registered and audited
        raise ConfigError(f"cannot write {output}: the folder {output.parent} does not exist")
    config, host = obj.config, obj.host
    selection = Selection(tuple(config.source(s).uri for s in sources), matches, clusters, min_confidence)
    decisions = read_decisions(decisions_path) if decisions_path else None
    catalog = obj.catalog()
    try:
        plan = make_plan(catalog, host, config, action, _params(params), selection, decisions, _who(by))
    finally:
        catalog.close()
    write_plan(plan, output)
    if as_json:
        reasons = Counter(entry["reason"] for entry in plan.body["excluded"])
        click.echo(
            json.dumps(
                {
                    "plan_id": plan.id,
                    "file": str(output),
                    "steps": len(plan.body["steps"]),
                    "clusters": len(plan.body["clusters"]),
                    "left_out": dict(reasons),
                    "policy": plan.body["policy"],
                },
                ensure_ascii=False,
            )
        )
        return
    click.echo(
        f"plan {plan.id}: {len(plan.body['steps'])} steps over {len(plan.body['clusters'])} clusters, "
        f"{len(plan.body['excluded'])} copies or clusters left out; wrote {output}"
    )
    reasons = Counter(entry["reason"] for entry in plan.body["excluded"])
    for reason, count in reasons.most_common(5):
        click.echo(f"  left out ({count}): {reason}")
    if not plan.body["steps"]:
        click.echo("nothing to approve: the plan has no steps (see what was left out in the plan file)")
        return
    policy = effective_policy(plan, config)
    roles = ", ".join(policy.required_roles) or "any one role"
    how = "--signature SIG (made with 'dam-dedupe sign')" if policy.signatures else "--by NAME"
    click.echo(
        f"next: sign-offs in the roles {roles}, each by a different person: "
        f"{obj.command(f'approve {output} --role ROLE {how}')}"
    )


@click.command("sign")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", required=True, type=click.Path(dir_okay=False), help="Your private key (OpenSSH).")
@click.option("--role", required=True, help="The role you sign in.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Signature file to write (give it to whoever records the sign-off).",
)
@click.pass_obj
def sign_command(obj: Context, plan_file: Path, key: str, role: str, output: Path) -> None:
    """Sign PLAN_FILE in ROLE with your own key; no catalog is needed (a reviewer's laptop will do)."""
    plan = read_plan(plan_file)
    policy = effective_policy(plan, obj.config)
    signer = scheme(obj.host, obj.config, policy) or scheme(obj.host, obj.config, Policy(signatures="ssh"))
    assert signer is not None
    output.write_text(signer.sign(plan_message(plan), key, role), encoding="ascii")
    click.echo(f"signed plan {plan.id} as {role}: {output}")


@click.command("approve")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--role", required=True, help="In which role (the plan's required roles).")
@click.option(
    "--signature",
    "signature_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The signature 'dam-dedupe sign' (or ssh-keygen -Y sign) made.",
)
@click.option("--by", default=None, help="Who signs off (with signatures, the key says who; --by must agree).")
@click.option("--note", default="", help="A note kept with the sign-off.")
@click.pass_obj
def approve_command(
    obj: Context, plan_file: Path, role: str, signature_file: Path | None, by: str | None, note: str
) -> None:
    """Record a sign-off of PLAN_FILE in ROLE."""
    plan = read_plan(plan_file)
    signature = signature_file.read_text(encoding="ascii") if signature_file else None
    catalog = obj.catalog()
    try:
        missing = record_signoff(catalog, obj.config, plan, by, role, note, signature, obj.host)
        who = catalog.signoffs(plan.id)[-1].signed_by
    finally:
        catalog.close()
    click.echo(f"{who} signed off plan {plan.id} as {role}")
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
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def apply_command(obj: Context, plan_file: Path, dry_run: bool, by: str | None, out_dir: Path, as_json: bool) -> None:
    """Apply an approved PLAN_FILE; run it again to finish an interrupted run."""
    plan = read_plan(plan_file)
    catalog = obj.catalog()
    say = (lambda _line: None) if as_json else click.echo
    try:
        report = apply_plan(catalog, obj.host, obj.config, plan, _who(by), dry_run, out_dir, say)
    finally:
        catalog.close()
    if as_json:
        click.echo(json.dumps(_report_json(report), ensure_ascii=False))
    else:
        for note in report.notes:
            click.echo(note)
        if dry_run:
            click.echo(f"dry run: {report.count('would')} steps would run, {report.count('skipped')} would be skipped")
        else:
            click.echo(f"run {report.run_id}: {_summary(report)}; undo with: {obj.command(f'undo {report.run_id}')}")
            click.echo(RESCAN_HINT)
    if not dry_run and not report.finished:
        raise SystemExit(UNFINISHED_EXIT)


def _report_json(report: RunReport) -> dict[str, object]:
    """A run's outcome for scripts: its id, counts, each step (decoded path, outcome, reason) and notes."""
    outcomes = ("applied", "undone", "skipped", "failed", "interrupted", "would")
    return {
        "run_id": report.run_id or None,
        "plan_id": report.plan_id,
        "kind": report.kind,
        "dry_run": report.dry_run,
        "finished": report.finished,
        "counts": {o: report.count(o) for o in outcomes if report.count(o)},
        "steps": [
            {
                "index": r.step.index,
                "outcome": r.outcome,
                "path": display_path(r.step.target.uri),
                "uri": r.step.target.uri,
                "reason": r.reason,
            }
            for r in report.results
        ],
        "notes": report.notes,
    }


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
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def runs_command(obj: Context, as_json: bool) -> None:
    """List apply and undo runs with their plans and status."""
    catalog = obj.catalog()
    try:
        runs = catalog.action_runs()
    finally:
        catalog.close()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(run) for run in runs], ensure_ascii=False))
        return
    for run in runs:
        undoes = f" undoes {run.undoes}" if run.undoes else ""
        click.echo(
            f"{run.id}  {run.kind:5} {run.status:8} plan {run.plan_id}{undoes}  by {run.started_by} at {run.started}"
        )


@click.group("audit")
def audit_group() -> None:
    """Check or export the audit log of plans, sign-offs, runs and steps."""


@audit_group.command("verify")
@click.option("--head", default=None, help="A hash printed by an earlier verify: the log must still hold it.")
@click.option(
    "--anchor",
    "anchor_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The anchor file kept outside the catalog [default: the configured one, if it exists].",
)
@click.pass_obj
def audit_verify(obj: Context, head: str | None, anchor_file: Path | None) -> None:
    """Check the audit log's chain, its anchor and the tables it vouches for; exit 1 naming every problem."""
    anchor = anchor_file or obj.audit_anchor
    if anchor_file is not None and not anchor_file.is_file():
        raise ConfigError(f"the anchor file {anchor_file} does not exist")
    catalog = obj.catalog()
    try:
        entries = catalog.audit_entries()
        problems = audit.verify(entries, head) + audit.cross_check(entries, catalog.governance_records())
    finally:
        catalog.close()
    if anchor.is_file():
        problems += audit.verify_anchor(entries, anchor.read_text(encoding="ascii"))
    if problems:
        raise click.ClickException("the audit log was tampered with:\n  " + "\n  ".join(problems))
    last = entries[-1].hash if entries else audit.GENESIS
    anchored = f"; matches the anchor {anchor}" if anchor.is_file() else "; no anchor file to check it against"
    click.echo(f"audit log intact: {len(entries)} entries; head {last}{anchored}")


@audit_group.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV file.")
@click.pass_obj
def audit_export(obj: Context, output: Path) -> None:
    """Write the audit log as CSV."""
    if not output.parent.is_dir():
        raise ConfigError(f"cannot write {output}: the folder {output.parent} does not exist")
    catalog = obj.catalog()
    try:
        entries = catalog.audit_entries()
    finally:
        catalog.close()
    audit.export_csv(entries, output)
    click.echo(f"wrote {len(entries)} entries to {output}")
