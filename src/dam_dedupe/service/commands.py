"""The ``serve`` and ``tokens`` commands, added to the ``dam-dedupe`` group by :mod:`dam_dedupe.cli`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from dam_dedupe.errors import MissingExtra
from dam_dedupe.service.tokens import SCOPES, create_token, now

if TYPE_CHECKING:
    from dam_dedupe.cli import Context


def _require_service_extra() -> None:
    """Name the install command when FastAPI or uvicorn is missing, instead of a traceback."""
    for package in ("fastapi", "uvicorn"):
        try:
            __import__(package)
        except ImportError as exc:
            raise MissingExtra("service", package) from exc


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="Port to listen on.")
@click.pass_obj
def serve_command(obj: Context, host: str, port: int) -> None:
    """Serve the catalog over HTTP (checks at upload, DAM webhooks, clusters and plans) until SIGTERM.

    Put it behind a reverse proxy that terminates TLS (docs/integrations.md); tokens come from
    'dam-dedupe tokens create'.
    """
    _require_service_extra()
    import uvicorn

    from dam_dedupe.service.app import create_app
    from dam_dedupe.service.limits import BodyLimit
    from dam_dedupe.service.settings import ServiceSettings
    from dam_dedupe.service.state import ServiceState

    obj.catalog().close()  # a mistyped catalog is refused here, not served empty
    settings = ServiceSettings.from_section(obj.config.sections.get("service", {}))
    state = ServiceState(obj.catalog, obj.config, obj.host, settings)
    state.start()
    click.echo(f"serving {obj.shown} ({len(state.index)} images) on http://{host}:{port}", err=True)
    if host not in ("127.0.0.1", "::1", "localhost"):
        click.echo("listening beyond loopback: terminate TLS in a reverse proxy (docs/integrations.md)", err=True)
    try:
        app = BodyLimit(create_app(state), settings.max_body_bytes)
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
    finally:
        state.stop()


@click.group("tokens")
def tokens_group() -> None:
    """Make, list and revoke the service's bearer tokens (only a hash of each is kept)."""


@tokens_group.command("create")
@click.argument("name")
@click.option(
    "--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES), help="What it may do (repeatable)."
)
@click.pass_obj
def create_command(obj: Context, name: str, scopes: tuple[str, ...]) -> None:
    """Make a token NAME; the token is printed once, alone on the last line."""
    catalog = obj.catalog(create=True)
    try:
        token = create_token(catalog, name, set(scopes))
    finally:
        catalog.close()
    click.echo(f"token {name} ({', '.join(sorted(set(scopes)))}); it is shown only now:")
    click.echo(token)


@tokens_group.command("list")
@click.pass_obj
def list_command(obj: Context) -> None:
    """Show each token's name, scopes, when it was made and last used (never the token)."""
    catalog = obj.catalog()
    try:
        tokens = catalog.tokens()
    finally:
        catalog.close()
    for token in tokens:
        state = f"revoked {token.revoked}" if token.revoked else "in force"
        click.echo(
            f"{token.name}  scopes {','.join(sorted(token.scopes))}  created {token.created}  "
            f"last used {token.last_used or 'never'}  {state}"
        )


@tokens_group.command("revoke")
@click.argument("name")
@click.pass_obj
def revoke_command(obj: Context, name: str) -> None:
    """Revoke token NAME; a running service refuses it from the next request."""
    catalog = obj.catalog()
    try:
        revoked = catalog.revoke_token(name, now())
    finally:
        catalog.close()
    if not revoked:
        raise click.ClickException(f"no token named {name!r} is in force")
    click.echo(f"revoked {name}")
