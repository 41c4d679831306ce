"""The ``dam-dedupe`` command line.

Exit codes a script can rely on (``docs/cli.md``): :data:`EXIT_OK`, :data:`EXIT_FAILED`,
:data:`EXIT_USAGE` and, for ``scan``, :data:`EXIT_SOURCES_FAILED`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from dam_dedupe.catalog import (
    DEFAULT_CATALOG,
    SqlCatalog,
    catalog_exists,
    display_location,
    is_postgresql,
    open_catalog,
)
from dam_dedupe.catalog.postgresql import lost_server
from dam_dedupe.clustering import MatchProgress, build_clusters
from dam_dedupe.config import Config, load_config, matching_settings, normalise_uri
from dam_dedupe.containers import extractor_rows
from dam_dedupe.dask_executor import NO_WORKER_WAIT
from dam_dedupe.decisions_cli import decisions
from dam_dedupe.decoders import decoder_rows
from dam_dedupe.display import display_path
from dam_dedupe.errors import ConfigError, DamDedupeError, MissingExtra
from dam_dedupe.governance import audit
from dam_dedupe.host import Host
from dam_dedupe.matcher.grouping import IndexFactory, Verifier
from dam_dedupe.matcher.neighbours import CandidateIndex
from dam_dedupe.records import ScanSummary
from dam_dedupe.report import FORMATS, TABLES, ReportSettings, write_report
from dam_dedupe.sample import make_sample_library
from dam_dedupe.scan import ExecutorFactory, default_executor, run_scan

if TYPE_CHECKING:
    from dam_dedupe.dask_executor import DaskCluster

EXIT_OK = 0
"""The command did all it was asked."""
EXIT_FAILED = 1
"""The command failed (a missing catalog, a store that refused, a file that cannot be written)."""
EXIT_USAGE = 2
"""The command line or ``dam-dedupe.toml`` is wrong; nothing was done."""
EXIT_SOURCES_FAILED = 3
"""``scan``: at least one source could not be scanned (whole or in part); what could be read is stored."""

DEMO_CATALOG = "dam-dedupe-demo.sqlite"


class Context:
    """What every command shares: the configuration, the catalog path and the plugins.

    ``catalog_named`` says whether the user chose the catalog (``--catalog`` or ``[catalog] path``);
    ``demo`` keeps out of a catalog nobody named, so that it never mixes samples into real data.
    """

    def __init__(self, config: Config, catalog_path: str, catalog_named: bool = False) -> None:
        self.config = config
        self.catalog_path = catalog_path
        self.catalog_named = catalog_named
        self._host: Host | None = None

    @property
    def shown(self) -> str:
        """The catalog's location as messages show it (a PostgreSQL URL without its password)."""
        return display_location(self.catalog_path)

    def command(self, words: str) -> str:
        """``dam-dedupe WORDS`` as the user must type it next: with ``--catalog`` unless it is the default."""
        catalog = f"--catalog {self.shown} " if self.catalog_path != DEFAULT_CATALOG else ""
        return f"dam-dedupe {catalog}{words}"

    @property
    def host(self) -> Host:
        """The plugin host, loaded on first use."""
        if self._host is None:
            self._host = Host()
        return self._host

    def catalog(self, create: bool = False) -> SqlCatalog:
        """Open the catalog; only ``scan`` and ``demo`` may create it (a mistyped name must not look empty)."""
        if not create and not catalog_exists(self.catalog_path):
            raise DamDedupeError(
                f"there is no catalog at {self.shown}; scan first (dam-dedupe scan SOURCE...), "
                "or name an existing catalog with --catalog"
            )
        catalog = open_catalog(self.catalog_path)
        catalog.audit_anchor = self.audit_anchor
        return catalog

    @property
    def audit_anchor(self) -> Path:
        """Where the audit chain's head is anchored: ``[governance] audit_anchor``, else ``CATALOG.anchor``
        (for a PostgreSQL catalog, ``HOST-PORT-DATABASE.anchor`` in ``$XDG_STATE_HOME/dam-dedupe``)."""
        configured = self.config.sections.get("governance", {}).get("audit_anchor")
        if configured:
            return Path(configured).expanduser()
        if is_postgresql(self.catalog_path):  # no file to sit beside: the user's state folder, named for the database
            server = urlsplit(self.catalog_path)
            state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "dam-dedupe"
            database = server.path.strip("/") or "postgres"
            return state / f"{server.hostname or 'local'}-{server.port or 5432}-{database}.anchor"
        return Path(self.catalog_path + ".anchor")


class Failure(click.ClickException):
    """A one-line message on stderr, exit :data:`EXIT_FAILED`."""

    exit_code = EXIT_FAILED


class UsageFailure(Failure):
    """The command line or configuration is wrong: exit :data:`EXIT_USAGE`."""

    exit_code = EXIT_USAGE


class SourcesFailed(Failure):
    """A scan stored what it could but some source failed: exit :data:`EXIT_SOURCES_FAILED`."""

    exit_code = EXIT_SOURCES_FAILED


class FriendlyGroup(click.Group):
    """Turns every user mistake into a one-line message and an exit code, never a traceback.

    The product's own errors and the system's (a folder that does not exist for ``-o``) are
    messages; anything else is a bug, shown as one line unless ``-v`` asks for the traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise UsageFailure(str(exc)) from exc
        except DamDedupeError as exc:
            raise Failure(str(exc)) from exc
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            raise Failure(f"{exc.strerror or exc}{where}") from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            lost = lost_server(exc)
            if lost is not None:
                raise Failure(lost) from exc
            if logging.getLogger().isEnabledFor(logging.INFO):
                raise
            raise Failure(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)") from exc


@click.group(cls=FriendlyGroup)
@click.option(
    "--catalog",
    "catalog_path",
    default=None,
    help=f"Catalog: a SQLite file, or a postgresql:// URL (shared) [default: ./{DEFAULT_CATALOG}].",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Configuration file [default: ./dam-dedupe.toml if present].",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="dam-dedupe")
@click.pass_context
def main(ctx: click.Context, catalog_path: str | None, config_path: str | None, verbose: int) -> None:
    """Find duplicate images across your storage and, with sign-off, act on them."""
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    if verbose < 2:  # cloud SDKs log every request at INFO; keep our own messages readable
        for sdk in ("azure", "botocore", "boto3", "urllib3", "msal"):
            logging.getLogger(sdk).setLevel(logging.WARNING)
    try:
        config = load_config(config_path)
    except DamDedupeError as exc:
        raise UsageFailure(str(exc)) from exc
    configured = config.sections.get("catalog", {}).get("path")
    ctx.obj = Context(config, catalog_path or configured or DEFAULT_CATALOG, bool(catalog_path or configured))


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


class _ListingLine:
    """Listing progress as one line on a terminal: the source and how many assets it has shown so far.

    A large bucket or a SharePoint estate lists for minutes before the first image is read.
    """

    EVERY = 0.2

    def __init__(self) -> None:
        self.drawn = 0.0

    def __call__(self, label: str, listed: int, finished: bool) -> None:
        now = time.monotonic()
        if not finished and now - self.drawn < self.EVERY:
            return
        self.drawn = now
        line = f"\rlisting {label}: {listed:,} assets{' listed' if finished else ''}\x1b[K"
        click.echo(line + ("\n" if finished else ""), file=sys.stderr, nl=False)


def _match_progress() -> MatchProgress | None:
    """A progress line for the match stage when stderr is a terminal, else ``None`` (silent)."""
    return _MatchLine() if sys.stderr.isatty() else None


@dataclass(frozen=True)
class _OnDask:
    """The Dask cluster a command is to use: its scheduler (``None``: a local cluster), index shards
    and how long it may have no worker."""

    scheduler: str | None
    shards: int
    no_worker_wait: float
    verify_here: bool


def _on_dask(
    config: Config,
    cluster: str | None,
    scheduler: str | None,
    index_shards: int | None,
    verify_here: bool | None = None,
) -> _OnDask:
    """The cluster from the command's options, else the named ``[clusters.NAME]`` table (``--cluster``
    or ``[scan] cluster``), else ``[scan]``'s own keys."""
    name = cluster or config.sections.get("scan", {}).get("cluster")
    table = config.sections.get("scan", {})
    if name is not None:
        clusters = config.sections.get("clusters", {})
        if name not in clusters:
            raise UsageFailure(f"no [clusters.{name}] table in the configuration (defined: {sorted(clusters)})")
        table = clusters[name]
    return _OnDask(
        scheduler or table.get("scheduler"),
        index_shards or table.get("index_shards", 1),
        float(table.get("no_worker_wait", NO_WORKER_WAIT)),
        bool(table.get("verify_here", False)) if verify_here is None else verify_here,
    )


@contextlib.contextmanager
def _dask_cluster(on: _OnDask, workers: int | None) -> Iterator[DaskCluster]:
    """The Dask cluster a command works on (the scheduler's, or a local one of ``workers``), its logging quiet."""
    from dam_dedupe.dask_executor import DaskCluster

    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        # Dask (which set its loggers' levels on import) logs each reconnection attempt with a
        # traceback, and a local cluster's start at INFO; the command says itself what failed
        with contextlib.suppress(ImportError):  # without the extra, DaskCluster names the install command
            import distributed  # noqa: F401 - its loggers exist once it is imported
        for name in ["distributed", *logging.root.manager.loggerDict]:
            if name.startswith("distributed"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
    with DaskCluster(on.scheduler, workers or os.cpu_count() or 1, on.no_worker_wait) as cluster:
        yield cluster


def _matching_on(cluster: DaskCluster, on: _OnDask) -> tuple[IndexFactory, Verifier | None]:
    """The matcher's index (in this process, or in ``on.shards`` parts on the cluster) and its
    verifier, which spreads the candidates' verification over the cluster (``None``: verify here)."""
    from dam_dedupe.dask_verify import DaskVerifier

    verifier = None if on.verify_here else DaskVerifier(cluster)
    verified = "" if on.verify_here else "verification "
    if on.shards == 1:
        if verifier is not None:
            click.echo(f"matching with verification on the Dask cluster at {cluster.address}", err=True)
        return CandidateIndex, verifier
    from dam_dedupe.dask_index import DaskIndex

    shards = f"the index in {on.shards} shards " + ("and " if verified else "")
    click.echo(f"matching with {shards}{verified}on the Dask cluster at {cluster.address}", err=True)
    return DaskIndex(cluster, on.shards), verifier


def _scan(
    obj: Context,
    sources: tuple[str, ...],
    workers: int | None,
    preset: str | None,
    reread: bool = False,
    quiet: bool = False,
    executor: str | None = None,
    on: _OnDask | None = None,
) -> ScanSummary:
    config = obj.config
    on = on or _on_dask(config, None, None, None)
    executor = executor or ("dask" if on.scheduler else config.sections.get("scan", {}).get("executor", "local"))
    if executor == "dask":
        with _dask_cluster(on, workers or config.workers) as cluster:
            click.echo(f"fingerprinting on the Dask cluster at {cluster.address} ({cluster.threads} threads)", err=True)
            index, verifier = _matching_on(cluster, on)
            return _scan_with(
                obj, sources, cluster.threads, preset, reread, quiet, cluster, cluster.BATCH, index, True, verifier
            )
    if on.scheduler:
        raise UsageFailure("--scheduler needs --executor dask")
    if on.shards > 1:
        raise UsageFailure("--index-shards needs --executor dask (the shards are held by the Dask workers)")
    return _scan_with(obj, sources, workers, preset, reread, quiet, default_executor)


def _scan_with(
    obj: Context,
    sources: tuple[str, ...],
    workers: int | None,
    preset: str | None,
    reread: bool,
    quiet: bool,
    executor_factory: ExecutorFactory,
    batch: int = 1,
    index: IndexFactory = CandidateIndex,
    shard_listing: bool = False,
    verifier: Verifier | None = None,
) -> ScanSummary:
    config = obj.config
    if preset:
        config = replace(config, matching=matching_settings({"preset": preset}))
    specs = [config.source(s) for s in sources]
    for spec in specs:
        # an unknown scheme is a usage error, found before any work; a missing SDK is a source that fails
        # (the scan records it, scans the others and exits 3)
        with contextlib.suppress(MissingExtra):
            obj.host.adapter_class(spec.uri)
    catalog = obj.catalog(create=True)
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
            specs,
            catalog,
            obj.host,
            config,
            workers,
            executor_factory,
            progress=progress if sys.stderr.isatty() else None,
            reread=reread,
            matching=_match_progress(),
            listing=_ListingLine() if sys.stderr.isatty() else None,
            batch=batch,
            index=index,
            shard_listing=shard_listing,
            verifier=verifier,
        )
    finally:
        for bar in bars.values():
            bar.render_finish()
        catalog.close()
    if not quiet:
        _print_summary(summary)
    return summary


def _failed_sources(summary: ScanSummary) -> None:
    """Say which sources failed and exit with :data:`EXIT_SOURCES_FAILED` (a nightly job must notice)."""
    if summary.failed_sources:
        names = ", ".join(summary.failed_sources)
        raise SourcesFailed(
            f"{len(summary.failed_sources)} of {len(summary.sources)} sources could not be scanned completely "
            f"({names}); what could be read is in the catalog, the reasons are in the report's errors"
        )


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--workers", type=click.IntRange(1), default=None, help="Fingerprinting processes [default: cores].")
@click.option("--preset", type=str, default=None, help="Matching preset (exact, strict, balanced, loose).")
@click.option("--reread", is_flag=True, help="Read unchanged images again too (after installing an analyser).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object (for scripts).")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default=None,
    help="Where images are fingerprinted: local processes, or a Dask cluster (docs/scale.md) [default: local].",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="The Dask scheduler (tcp://HOST:PORT); without it, --executor dask starts a local cluster of --workers.",
)
@click.option(
    "--index-shards",
    type=click.IntRange(1),
    default=None,
    help="Hold the matcher's index in this many parts on the Dask workers (docs/scale.md) [default: 1, here].",
)
@click.option(
    "--cluster",
    "cluster_name",
    metavar="NAME",
    default=None,
    help="The Dask cluster named by [clusters.NAME] in dam-dedupe.toml (its scheduler, shards, wait).",
)
@click.option(
    "--verify-here/--verify-on-cluster",
    default=None,
    help="Where a Dask scan's matcher verifies candidates [default: on the cluster; docs/scale.md].",
)
@click.pass_obj
def scan(
    obj: Context,
    sources: tuple[str, ...],
    workers: int | None,
    preset: str | None,
    reread: bool,
    as_json: bool,
    executor: str | None,
    scheduler: str | None,
    index_shards: int | None,
    cluster_name: str | None,
    verify_here: bool | None,
) -> None:
    """Scan SOURCES (paths, URIs or names from dam-dedupe.toml) into the catalog and match them.

    Exits 3 if any source could not be scanned completely (see docs/cli.md).
    """
    on = _on_dask(obj.config, cluster_name, scheduler, index_shards, verify_here)
    summary = _scan(obj, sources, workers, preset, reread, as_json, executor, on)
    if as_json:
        click.echo(json.dumps({"catalog": obj.shown, **asdict(summary)}, ensure_ascii=False))
    else:
        click.echo(f"catalog: {obj.shown}; see the clusters with: {_report_hint(obj)}")
    _failed_sources(summary)


def check_output(output: str) -> None:
    """Refuse an ``-o`` file whose folder does not exist before any work is done (and any audit entry made)."""
    folder = Path(output).parent
    if not folder.is_dir():
        raise UsageFailure(f"cannot write {output}: the folder {folder} does not exist")


def _report_hint(obj: Context, output: str = "dam-dedupe-report.html") -> str:
    return obj.command(f"report --format html -o {output}")


@main.command()
@click.option("--preset", type=str, default=None, help="Matching preset (exact, strict, balanced, loose).")
@click.option(
    "--index-shards",
    type=click.IntRange(1),
    default=None,
    help="Hold the index in this many parts on a Dask cluster (docs/scale.md) [default: 1, in this process].",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Match on this Dask cluster (verification spread over it; with --index-shards, the index too).",
)
@click.option(
    "--cluster",
    "cluster_name",
    metavar="NAME",
    default=None,
    help="Match on the Dask cluster named by [clusters.NAME] in dam-dedupe.toml.",
)
@click.option(
    "--verify-here/--verify-on-cluster",
    default=None,
    help="Where candidates are verified on a cluster [default: on the cluster; docs/scale.md].",
)
@click.pass_obj
def match(
    obj: Context,
    preset: str | None,
    index_shards: int | None,
    scheduler: str | None,
    cluster_name: str | None,
    verify_here: bool | None,
) -> None:
    """Match the catalog again (for example with another preset) without reading any asset.

    With a scheduler (``--scheduler``, ``--cluster`` or ``dam-dedupe.toml``) or ``--index-shards``, on a
    Dask cluster: the scheduler's, or a local one of a worker a shard (docs/scale.md); the clusters
    are the same."""
    config = obj.config
    if preset:
        config = replace(config, matching=matching_settings({"preset": preset}))
    on = _on_dask(config, cluster_name, scheduler, index_shards, verify_here)
    catalog = obj.catalog()
    try:
        if on.shards == 1 and (not on.scheduler or on.verify_here):
            matched = build_clusters(catalog, config, obj.host, _match_progress())
        else:
            with _dask_cluster(on, on.shards) as cluster:
                index, verifier = _matching_on(cluster, on)
                matched = build_clusters(catalog, config, obj.host, _match_progress(), index, verifier)
    finally:
        catalog.close()
    click.echo(f"{matched.clusters} clusters, {matched.copies} duplicate copies")


@main.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True)
@click.option(
    "--table",
    type=click.Choice(TABLES),
    default="members",
    show_default=True,
    help="For CSV: which table (register is the personal-data register).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="File to write.")
@click.pass_obj
def report(obj: Context, fmt: str, table: str, output: str) -> None:
    """Write the catalog's clusters, canonicals, registers and errors as JSON, CSV or HTML."""
    check_output(output)
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
    for heading, rows in (("decoders:", decoder_rows(host.pm)), ("documents:", extractor_rows(host.pm))):
        click.echo(heading)  # formats: what each decoder and extractor reads, and the extra it needs
        for name, description, status in rows:
            click.echo(f"  {name}: {description}  [{status}]")


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default="dam-dedupe-sample",
    show_default=True,
    help="Where to make the sample library.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="dam-dedupe-report.html", show_default=True)
@click.option(
    "--open/--no-open",
    "open_report",
    default=True,
    help="Open the report in the desktop's browser (only where there is a desktop).",
)
@click.pass_obj
def demo(obj: Context, directory: str, output: str, open_report: bool) -> None:
    """Make a sample library, scan it into a catalog of its own and write an HTML report: the quick start.

    The catalog is ``dam-dedupe-demo.sqlite`` unless one is named, so a real catalog in the
    current folder is never mixed with samples.
    """
    check_output(output)
    if not obj.catalog_named:
        obj.catalog_path = DEMO_CATALOG
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
    click.echo("errors are expected: the sample holds three broken files on purpose (empty, truncated, not an image)")
    report = Path(output).resolve().as_uri()
    opened = open_report and _open_in_desktop_browser(report)
    click.echo(f"report{' (opened in your browser)' if opened else ''}: {report}")
    click.echo("next:")
    click.echo("  1. in the report, check each cluster's copies against its canonical (the compare view)")
    click.echo(f"  2. {obj.command('plan --action quarantine --by YOU -o plan.json')}    # a plan for sign-off")
    click.echo(f"  3. {obj.command('approve plan.json --by REVIEWER --role legal')}")
    click.echo(f"  4. {obj.command('apply plan.json')}    # then 'undo RUN_ID' puts every file back")
    click.echo("  your own folders: dam-dedupe scan /path/to/images (it prints the report command to run next)")


def _open_in_desktop_browser(uri: str) -> bool:
    """Open ``uri`` in a graphical browser where there is a desktop; never a text browser in this terminal."""
    desktop = sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if not desktop or not sys.stdout.isatty():
        return False
    import webbrowser

    try:
        return webbrowser.open(uri)
    except webbrowser.Error:
        return False


@main.group(invoke_without_command=True)
@click.pass_context
def sources(ctx: click.Context) -> None:
    """List the catalog's sources; 'sources forget' takes a mistyped or retired one out of the reports."""
    if ctx.invoked_subcommand is not None:
        return
    catalog = ctx.obj.catalog()
    try:
        overview = catalog.source_overview()
    finally:
        catalog.close()
    for s in overview:
        state = f"forgotten {s.forgotten}" if s.forgotten else f"last scanned {s.last_scanned or 'never'}"
        name = f"{s.name}: " if s.name and s.name != s.uri else ""
        click.echo(f"{name}{display_path(s.uri)}  {s.present} present, {s.gone} gone, {state}")


@sources.command("forget")
@click.argument("source")
@click.option("--by", "actor", required=True, help="Who forgets it (recorded in the audit log).")
@click.option("--reason", default="", help="Why, for the audit log.")
@click.pass_obj
def forget(obj: Context, source: str, actor: str, reason: str) -> None:
    """Leave SOURCE (a name, URI or path) out of matching and reports until it is scanned again.

    Its assets are marked gone, never deleted, and the audit log records who forgot it, when and why.
    """
    uri = obj.config.sources[source].uri if source in obj.config.sources else normalise_uri(source)
    catalog = obj.catalog()
    try:
        with catalog.transaction():
            count = catalog.forget_source(uri)
            audit.record(catalog, actor, "source_forgotten", detail={"uri": uri, "assets": count, "reason": reason})
        build_clusters(catalog, obj.config, obj.host)
    finally:
        catalog.close()
    click.echo(f"forgot {display_path(uri)}: {count} assets marked gone; a scan of it brings it back")


# The governance workflow (plan, approve, apply, undo, runs, audit) lives in its own package.
from dam_dedupe.governance.commands import (  # noqa: E402
    apply_command,
    approve_command,
    audit_group,
    plan_command,
    runs_command,
    sign_command,
    undo_command,
)

main.add_command(plan_command)
main.add_command(sign_command)
main.add_command(approve_command)
main.add_command(apply_command)
main.add_command(undo_command)
main.add_command(runs_command)
main.add_command(audit_group)
main.add_command(decisions)

# The DAM integration service (serve, tokens) lives in its own package.
from dam_dedupe.service.commands import serve_command, tokens_group  # noqa: E402

main.add_command(serve_command)
main.add_command(tokens_group)
