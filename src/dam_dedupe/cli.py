"""The ``dam-dedupe`` command line."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from dam_dedupe.catalog import DEFAULT_CATALOG, SqliteCatalog, open_catalog
from dam_dedupe.clustering import MatchProgress, build_clusters
from dam_dedupe.config import Config, load_config, matching_settings
from dam_dedupe.decisions_cli import decisions
from dam_dedupe.errors import DamDedupeError, MissingExtra
from dam_dedupe.host import Host
from dam_dedupe.records import ScanSummary
from dam_dedupe.report import FORMATS, TABLES, ReportSettings, write_report
from dam_dedupe.sample import make_sample_library
from dam_dedupe.scan import run_scan


class Context:
    """What every command shares: the configuration, the catalog path and the plugins."""

    def __init__(self, config: Config, catalog_path: str) -> None:
        self.config = config
        self.catalog_path = catalog_path
        self._host: Host | None = None

    @property
    def host(self) -> Host:
        """The plugin host, loaded on first use."""
        if self._host is None:
            self._host = Host()
        return self._host

    def catalog(self) -> SqliteCatalog:
        """Open the catalog."""
        return open_catalog(self.catalog_path)


class FriendlyGroup(click.Group):
    """Turns the product's own errors into a one-line message and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DamDedupeError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=FriendlyGroup)
@click.option("--catalog", "catalog_path", default=None, help=f"Catalog file [default: ./{DEFAULT_CATALOG}].")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="Configuration file [default: ./dam-dedupe.toml if present].")  # fmt: skip
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="dam-dedupe")
@click.pass_context
def main(ctx: click.Context, catalog_path: str | None, config_path: str | None, verbose: int) -> None:
    """Find duplicate images across your storage and, with sign-off, act on them."""
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    if verbose < 2:  # cloud SDKs log every request at INFO; keep our own messages readable
        for sdk in ("azure", "botocore", "boto3", "urllib3", "msal"):
            logging.getLogger(sdk).setLevel(logging.WARNING)
    try:
        config = load_config(config_path)
    except DamDedupeError as exc:
        raise click.ClickException(str(exc)) from exc
    catalog = catalog_path or config.sections.get("catalog", {}).get("path", DEFAULT_CATALOG)
    ctx.obj = Context(config, catalog)


def _print_summary(summary: ScanSummary) -> None:
    click.echo(
        f"listed {summary.listed}, fingerprinted {summary.fingerprinted}, unchanged {summary.unchanged}, "
        f"gone {summary.gone}, skipped {summary.skipped}, errors {summary.errors}"
    )


class _MatchLine:
    """The match stage's progress as one line on a terminal: stage, done/total and rate, redrawn at
    most every ``EVERY`` seconds. Matching a large library takes minutes; a log or CI run gets no line."""

    EVERY = 0.2

    def __init__(self) -> None:
        self.stage, self.started, self.drawn = "", 0.0, 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.started, self.drawn = stage, now, 0.0
        if done < total and now - self.drawn < self.EVERY:
            return
        self.drawn = now
        rate = done / max(now - self.started, 1e-3)
        line = f"\rmatching: {stage} {done:,}/{total:,} ({rate:,.0f}/s)\x1b[K"
        click.echo(line + ("\n" if done >= total else ""), file=sys.stderr, nl=False)


def _match_progress() -> MatchProgress | None:
    """A progress line for the match stage when stderr is a terminal, else ``None`` (silent)."""
    return _MatchLine() if sys.stderr.isatty() else None


def _scan(
    obj: Context, sources: tuple[str, ...], workers: int | None, preset: str | None, reread: bool = False
) -> None:
    config = obj.config
    if preset:
        config = replace(config, matching=matching_settings({"preset": preset}))
    specs = [config.source(s) for s in sources]
    catalog = obj.catalog()
    bars: dict[str, Any] = {}

    def progress(label: str, done: int, total: int) -> None:
        if label not in bars:
            for bar in bars.values():
                bar.render_finish()
            bars[label] = click.progressbar(length=total, label=f"fingerprinting {label}", file=sys.stderr)
        bar = bars[label]
        bar.update(done - bar.pos)

    try:
        summary = run_scan(
            specs, catalog, obj.host, config, workers, progress=progress, reread=reread, matching=_match_progress()
        )
    finally:
        for bar in bars.values():
            bar.render_finish()
        catalog.close()
    _print_summary(summary)
    report_hint = "dam-dedupe report --format html -o report.html"
    click.echo(f"catalog: {obj.catalog_path}; see the clusters with: {report_hint}")


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--workers", type=click.IntRange(1), default=None, help="Fingerprinting processes [default: cores].")
@click.option("--preset", type=str, default=None, help="Matching preset (exact, strict, balanced, loose).")
@click.option("--reread", is_flag=True, help="Read unchanged images again too (after installing an analyser).")
@click.pass_obj
def scan(obj: Context, sources: tuple[str, ...], workers: int | None, preset: str | None, reread: bool) -> None:
    """Scan SOURCES (paths, URIs or names from dam-dedupe.toml) into the catalog and match them."""
    _scan(obj, sources, workers, preset, reread)


@main.command()
@click.option("--preset", type=str, default=None, help="Matching preset (exact, strict, balanced, loose).")
@click.pass_obj
def match(obj: Context, preset: str | None) -> None:
    """Match the catalog again (for example with another preset) without reading any asset."""
    config = obj.config
    if preset:
        config = replace(config, matching=matching_settings({"preset": preset}))
    catalog = obj.catalog()
    try:
        clusters = build_clusters(catalog, config, obj.host, _match_progress())
    finally:
        catalog.close()
    click.echo(f"{len(clusters)} clusters, {sum(len(c.members) - 1 for c in clusters)} duplicate copies")


@main.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True)
@click.option("--table", type=click.Choice(TABLES), default="members", show_default=True,
              help="For CSV: which table (register is the personal-data register).")  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="File to write.")
@click.pass_obj
def report(obj: Context, fmt: str, table: str, output: str) -> None:
    """Write the catalog's clusters, canonicals, registers and errors as JSON, CSV or HTML."""
    settings = ReportSettings.from_config(obj.config)
    catalog = obj.catalog()
    try:
        write_report(catalog, fmt, output, settings, table)
    finally:
        catalog.close()
    click.echo(f"wrote {output}")


@main.command()
@click.pass_obj
def plugins(obj: Context) -> None:
    """List installed plugins, the adapters, actions and analysers they provide, and which extras are missing."""
    host = obj.host
    click.echo("plugins:")
    for name, plugin in sorted(host.pm.list_name_plugin(), key=lambda item: str(item[0])):
        if plugin is not None:
            click.echo(f"  {name}: {getattr(plugin, '__name__', plugin)}")
    click.echo("adapters:")
    for scheme, cls in sorted(host.adapters.items()):
        try:
            cls.check_available()
            status = "ready"
        except MissingExtra as exc:
            status = f"needs: pip install 'dam-dedupe[{exc.extra}]'"
        click.echo(f"  {scheme}://  {cls.description}  [{status}]")
    click.echo("actions:")
    for name, action in sorted(host.actions.items()):
        click.echo(f"  {name}: {action.description}")
    click.echo("analysers:")
    for impl in sorted(host.pm.hook.dam_dedupe_analyse_asset.get_hookimpls(), key=lambda i: i.plugin_name):
        check = getattr(impl.plugin, "check_available", None)
        try:
            if check is not None:
                check()
            status = "ready"
        except MissingExtra as exc:
            status = f"needs: pip install 'dam-dedupe[{exc.extra}]'"
        click.echo(f"  {impl.plugin_name}  [{status}]")


@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="dam-dedupe-sample", show_default=True,
              help="Where to make the sample library.")  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="dam-dedupe-report.html", show_default=True)
@click.pass_obj
def demo(obj: Context, directory: str, output: str) -> None:
    """Make a sample library, scan it into the catalog and write an HTML report: the quick start."""
    root = make_sample_library(Path(directory))
    click.echo(f"sample library: {root}")
    # the sample's brand folder plays the authorised library, so its copies are proposed as canonical
    obj.config = replace(obj.config, authoritative=(*obj.config.authoritative, (root / "品牌").resolve().as_uri()))
    _scan(obj, (str(root),), None, None)
    catalog = obj.catalog()
    try:
        write_report(catalog, "html", output, ReportSettings.from_config(obj.config))
    finally:
        catalog.close()
    click.echo(f"report: {Path(output).resolve()}")


# The governance workflow (plan, approve, apply, undo, runs, audit) lives in its own package.
from dam_dedupe.governance.commands import (  # noqa: E402
    apply_command,
    approve_command,
    audit_group,
    plan_command,
    runs_command,
    undo_command,
)

main.add_command(plan_command)
main.add_command(approve_command)
main.add_command(apply_command)
main.add_command(undo_command)
main.add_command(runs_command)
main.add_command(audit_group)
main.add_command(decisions)
