"""The `caretaker` command: one entry point for every process and admin task."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from caretaker.settings import get_settings

app = typer.Typer(help="Caretaker: equipment telemetry and patrol inspection for properties.",
                  no_args_is_help=True, add_completion=False)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def fail(message: str) -> None:
    """Print a clear error and exit non-zero."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Apply the database migrations not yet applied."""
    from caretaker.db import connect
    from caretaker.migrations import migrate as run

    with connect() as conn:
        applied = run(conn)
    typer.echo(f"applied {len(applied)} migration(s)" + "".join(
        f"\n  {m.version:03d}_{m.name}" for m in applied))


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin, supervisor, engineer, guard or viewer")],
    site: Annotated[str | None, typer.Option(help="limit the token to this site")] = None,
    guard: Annotated[str | None, typer.Option(help="the guard a guard token belongs to")] = None,
    name: Annotated[str | None, typer.Option(help="a label for the token")] = None,
) -> None:
    """Create an API token; the token is printed alone on the last line."""
    from caretaker.db import connect
    from caretaker.tokens import create_token

    try:
        with connect() as conn:
            token = create_token(conn, role=role, site_id=site, guard_id=guard, name=name)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"created a {role} token" + (f" for site {site}" if site else ""), err=True)
    typer.echo(token)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
) -> None:
    """Serve the REST API."""
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    _logging()
    uvicorn.run(create_app(settings), host=host or settings.api_host,
                port=port or settings.api_port, log_level="info", access_log=False)


@app.command()
def rules() -> None:
    """Run the rules worker: rule evaluation, patrol checks, escalations, retention."""
    from rules.worker import main as run

    _logging()
    run()


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except RuntimeError as exc:  # configuration problems: say what to do, no traceback
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
