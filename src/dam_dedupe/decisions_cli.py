"""``dam-dedupe decisions``: keep reviewers' decisions from the HTML report in the catalog."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from dam_dedupe.decisions import import_decisions, read_decisions

if TYPE_CHECKING:
    from dam_dedupe.cli import Context


@click.group()
def decisions() -> None:
    """Import and list reviewers' decisions (exported from the HTML report)."""


@decisions.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def import_command(obj: Context, file: str) -> None:
    """Store the decisions in FILE; "keep all" and "not duplicates" then show as decided until a member changes."""
    loaded = read_decisions(file)
    catalog = obj.catalog()
    try:
        result = import_decisions(catalog, loaded)
    finally:
        catalog.close()
    for entry, reason in result.refused:
        click.echo(f"refused {entry.decision} on {entry.cluster}: {reason}", err=True)
    click.echo(f"stored {result.stored} decisions by {loaded.exported_by}; refused {len(result.refused)}")


@decisions.command("list")
@click.pass_obj
def list_command(obj: Context) -> None:
    """List the decisions that still stand (their cluster's contents unchanged)."""
    catalog = obj.catalog()
    try:
        standing = catalog.standing_decisions()
    finally:
        catalog.close()
    for cluster, found in sorted(standing.items()):
        for d in found:
            click.echo(f"{cluster}\t{d.decision}\t{d.uri or ''}\t{d.decided_by}\t{d.decided_at}")
    click.echo(f"{sum(len(v) for v in standing.values())} standing decisions", err=True)
