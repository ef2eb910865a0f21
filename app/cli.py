"""The `gatehouse` command."""

from __future__ import annotations

from pathlib import Path
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
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
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
    workers: Annotated[
        int, typer.Option(min=1, envvar="WEB_CONCURRENCY", help="Worker processes")
    ] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development)")] = False,
    demo: Annotated[bool, typer.Option(help="Load demo users and synthetic records")] = False,
) -> None:
    """Migrate, seed and run the server (SQLite file gatehouse.db unless DATABASE_URL is set)."""
    import uvicorn

    from app.bootstrap import migrate as run_migrate
    from app.bootstrap import run_seed
    from app.core.logging import configure_logging

    settings = _settings()
    configure_logging("DEBUG" if settings.DEBUG else settings.LOG_LEVEL, settings.LOG_JSON)
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
        # Watch the application's code whatever the working directory is.
        reload_dirs=[str(Path(__file__).resolve().parent)] if reload else None,
        proxy_headers=False,  # X-Forwarded-For is handled by our middleware (TRUSTED_PROXIES)
        server_header=False,
        access_log=False,
        # uvicorn's own loggers propagate to the JSON handler set up by create_app().
        log_config=None,
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
    import re

    from app.bootstrap import create_superuser as run
    from app.core.passwords import password_problems
    from app.modules.users.schemas import USERNAME_PATTERN, check_email

    settings = _settings()
    # The same rules as POST /api/v1/users: a valid username and email, the password policy.
    username = username.strip()
    problems = []
    if not re.match(USERNAME_PATTERN, username):
        problems.append(
            "Username must be 3 to 64 letters, digits, '.', '_' or '-', starting with a letter"
            " or digit"
        )
    try:
        email = check_email(email)
    except ValueError as exc:
        problems.append(f"Email is {exc}")
    problems += [
        f"Password {problem}"
        for problem in password_problems(password, settings, username=username, email=email)
    ]
    if problems:
        for problem in problems:
            typer.secho(problem, fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    refused = asyncio.run(run(settings, username=username, email=email, password=password))
    typer.echo(refused or "created")
    if refused:
        raise typer.Exit(code=1)


@cli.command("check-config")
def check_config() -> None:
    """Validate the configuration and print it with secrets masked."""
    settings = _settings()
    for key, value in masked_settings(settings).items():
        typer.echo(f"{key}={value}")
    typer.secho(
        f"configuration is valid (ENVIRONMENT={settings.ENVIRONMENT})", fg=typer.colors.GREEN
    )


SECRET_SETTINGS = {"SECRET_KEY", "SMTP_PASSWORD", "SUPERADMIN_PASSWORD", "DEMO_PASSWORD"}
URL_SETTINGS = {"DATABASE_URL", "REDIS_URL"}


def _mask_url(url: str) -> str:
    """`scheme://user:secret@host/db` -> `scheme://user:***@host/db`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, location = rest.rpartition("@")
    user, has_password, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if has_password else ''}@{location}"


def masked_settings(settings: Settings) -> dict[str, object]:
    """Every setting, with secrets replaced by `***` and passwords removed from URLs."""
    shown: dict[str, object] = {}
    for key, value in settings.model_dump().items():
        if key in SECRET_SETTINGS and value:
            shown[key] = "***"
        elif key in URL_SETTINGS and isinstance(value, str):
            shown[key] = _mask_url(value)
        else:
            shown[key] = value
    return shown


@cli.command("explain")
def explain_command(
    user: Annotated[str, typer.Argument(help="Username or user id")],
    permission: Annotated[str, typer.Argument(help="resource:action, e.g. patient:read")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the explanation as JSON")] = False,
) -> None:
    """Explain whether USER holds PERMISSION and through which paths (exit 0 allowed, 1 denied)."""
    import asyncio

    import orjson

    from app.authz.explain import explain
    from app.authz.permissions import is_valid_permission
    from app.core.database import create_null_pool_engine

    if not is_valid_permission(permission):
        typer.secho(f"not a permission (resource:action): {permission}", fg=typer.colors.RED)
        raise typer.Exit(code=2)
    settings = _settings()

    async def run() -> object:
        engine = create_null_pool_engine(settings.DATABASE_URL)
        try:
            async with engine.connect() as conn:
                return await explain(conn, user, permission)
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    if result is None:
        typer.secho(f"no such user: {user}", fg=typer.colors.RED)
        raise typer.Exit(code=2)
    from app.authz.explain import Explanation

    assert isinstance(result, Explanation)
    if as_json:
        typer.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        color = typer.colors.GREEN if result.allowed else typer.colors.RED
        typer.secho(result.render(), fg=color)
    raise typer.Exit(code=0 if result.allowed else 1)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
