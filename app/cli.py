"""The `gatehouse` command."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from app.core.config import Settings

cli = typer.Typer(
    help="Gatehouse: identity, RBAC and field/row-level access control.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        typer.secho("Invalid configuration:", fg=typer.colors.RED, err=True)
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "settings"
            typer.secho(f"  {field}: {error['msg']}", err=True)
        raise typer.Exit(code=2)


def _print_credentials(report: object) -> None:
    for username, password in getattr(report, "printed_credentials", []):
        typer.secho(
            f"Created {username} with password: {password}  (shown once; change it after login)",
            fg=typer.colors.YELLOW,
        )


@cli.command()
def migrate(revision: str = "head") -> None:
    """Apply database migrations."""
    from app.bootstrap import migrate as run_migrate

    settings = _settings()
    run_migrate(settings.DATABASE_URL, revision)
    typer.echo(f"database at {revision}")


@cli.command()
def seed(
    demo: Annotated[bool, typer.Option(help="Also load demo users and records")] = False,
) -> None:
    """Seed permissions, built-in roles, default navigation/policies and the super-admin."""
    from app.bootstrap import run_seed

    _print_credentials(run_seed(_settings(), demo=demo))


@cli.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    reload: bool = False,
    demo: Annotated[bool, typer.Option(help="Load demo users and synthetic records")] = False,
) -> None:
    """Migrate, seed and run the server (SQLite file gatehouse.db unless DATABASE_URL is set)."""
    import uvicorn

    from app.bootstrap import migrate as run_migrate
    from app.bootstrap import run_seed

    settings = _settings()
    if workers > 1 and settings.REDIS_URL is None:
        typer.secho(
            "Note: without REDIS_URL, workers share revocations and permission changes by"
            f" polling the database every {settings.STATE_POLL_INTERVAL_SECONDS}s, and rate"
            " limits are per worker.",
            fg=typer.colors.YELLOW,
        )
    run_migrate(settings.DATABASE_URL)
    _print_credentials(run_seed(settings, demo=demo))
    typer.echo(f"Gatehouse on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=None if reload else workers,
        reload=reload,
        proxy_headers=False,  # X-Forwarded-For is handled by our middleware (TRUSTED_PROXIES)
        server_header=False,
        access_log=False,
        log_level=settings.LOG_LEVEL.lower(),
    )


@cli.command("create-superuser")
def create_superuser(
    username: Annotated[str, typer.Option(prompt=True)],
    email: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Create a user holding the superadmin role."""
    import asyncio

    from app.bootstrap import create_superuser as run

    settings = _settings()
    created = asyncio.run(run(settings, username=username, email=email, password=password))
    typer.echo("created" if created else "a user with that username already exists")
    if not created:
        raise typer.Exit(code=1)


@cli.command("check-config")
def check_config() -> None:
    """Validate the configuration and print it with secrets masked."""
    settings = _settings()
    secret_keys = {"SECRET_KEY", "SMTP_PASSWORD", "SUPERADMIN_PASSWORD", "DEMO_PASSWORD"}
    for key, value in settings.model_dump().items():
        shown = "***" if key in secret_keys and value else value
        typer.echo(f"{key}={shown}")
    typer.secho("configuration is valid", fg=typer.colors.GREEN)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
