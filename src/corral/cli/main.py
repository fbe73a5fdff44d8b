"""``corral`` command line. Commands parse arguments and call facades; they hold no logic.

Errors are one line on stderr naming the flag or variable, with exit code 2 (usage) or 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Coroutine
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import click
import typer

from corral.cli.loop import run as run_loop
from corral.core.redaction import redact_text
from corral.errors import CorralError
from corral.logs import configure_logging
from corral.settings import CorralSettings, load_settings

T = TypeVar("T")

app = typer.Typer(
    name="corral",
    help="Corral: a job queue and cron scheduler on Redis (BullMQ protocol).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click itself suggests the closest command; typer's own suggestion would repeat it.
    suggest_commands=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root() -> None:
    """Corral: a job queue and cron scheduler on Redis (BullMQ protocol)."""


def _die(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"corral: {redact_text(message)}", err=True)
    raise typer.Exit(code)


def _run(main: Coroutine[Any, Any, T], settings: CorralSettings) -> T:
    """Run a command's coroutine on the loop ``settings.uvloop`` picks; a CorralError ends the
    command with its one-line message."""
    try:
        return run_loop(main, use_uvloop=settings.uvloop)
    except CorralError as exc:
        _die(str(exc))


def _settings(*, import_from_here: bool = True) -> CorralSettings:
    if import_from_here and os.getcwd() not in sys.path:
        # Let ``--handlers shop`` find ``./shop`` without PYTHONPATH, as Celery, RQ and arq do
        # (a console script's sys.path holds its own folder, not the current one). Appended,
        # so a folder named like an installed package never shadows it.
        sys.path.append(os.getcwd())
    try:
        settings = load_settings()
    except CorralError as exc:
        _die(str(exc))
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _packages(flag: str) -> list[str]:
    return [p.strip() for p in flag.split(",") if p.strip()]


def _positive(name: str, value: int | None, high: int) -> None:
    if value is not None and not 1 <= value <= high:
        _die(f"{name}: must be between 1 and {high}, got {value}", 2)


@app.command()
def worker(
    queue: Annotated[str | None, typer.Option(help="Queue name (default CORRAL_QUEUE).")] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs at once in this process (default CORRAL_CONCURRENCY).")
    ] = None,
    handlers: Annotated[
        str | None,
        typer.Option(help="Handlers package(s), comma-separated (default CORRAL_HANDLERS)."),
    ] = None,
    limiter_max: Annotated[
        int | None,
        typer.Option(help="At most this many jobs per --limiter-duration, cluster-wide."),
    ] = None,
    limiter_duration: Annotated[int | None, typer.Option(help="Limiter window in ms.")] = None,
    prefetch: Annotated[
        int | None,
        typer.Option(
            help="Jobs held ready beyond --concurrency; 0 for none "
            "(default CORRAL_PREFETCH, else the concurrency - 1)."
        ),
    ] = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT, then drain gracefully."""
    _positive("--concurrency", concurrency, 10_000)
    if prefetch is not None and not 0 <= prefetch <= 10_000:
        _die(f"--prefetch: must be between 0 and 10000, got {prefetch}", 2)
    _positive("--limiter-max", limiter_max, 1_000_000)
    _positive("--limiter-duration", limiter_duration, 86_400_000)
    if (limiter_max is None) != (limiter_duration is None):
        _die("--limiter-max and --limiter-duration must be given together", 2)
    settings = _settings()
    packages = _packages(handlers) if handlers is not None else settings.handler_packages
    if not packages:
        _die("--handlers: no handlers package given (set CORRAL_HANDLERS or pass --handlers)", 2)
    from corral.worker import run_worker

    drained = _run(
        run_worker(
            settings,
            handlers=packages,
            queue=queue,
            concurrency=concurrency,
            prefetch=prefetch,
            limiter_max=limiter_max,
            limiter_duration_ms=limiter_duration,
        ),
        settings,
    )
    raise typer.Exit(0 if drained else 3)


@app.command()
def scheduler(
    queue: Annotated[str | None, typer.Option(help="Queue name (default CORRAL_QUEUE).")] = None,
) -> None:
    """Fire the scheduled jobs of the database until SIGTERM/SIGINT.

    Run several for HA: each tick is enqueued exactly once whichever replica fires it.
    """
    settings = _settings()
    from corral.scheduler import TaskScheduler
    from corral.worker import StopSignal

    async def run() -> None:
        stop = StopSignal()
        stop.install()
        async with TaskScheduler(settings, queue=queue) as task_scheduler:
            await task_scheduler.initialize()
            await stop.stop.wait()

    _run(run(), settings)


@app.command()
def api(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default CORRAL_API_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default CORRAL_API_PORT).")] = None,
) -> None:
    """Serve the admin REST API, /health and /metrics."""
    _positive("--port", port, 65535)
    settings = _settings()
    from corral.http.app import create_app
    from corral.http.serve import serve_until_signal

    async def run() -> None:
        application = create_app(settings)
        await application.state.manager.runtime.check_redis_password()
        await serve_until_signal(
            application,
            host=host or settings.api_host,
            port=port or settings.api_port,
            log_level=settings.log_level,
        )

    _run(run(), settings)


db_app = typer.Typer(help="Database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema in DATABASE_URL to the latest version."""
    settings = _settings(import_from_here=False)
    from corral.runtime import Runtime

    async def run() -> None:
        runtime = Runtime(settings)
        try:
            await runtime.migrate()
        finally:
            await runtime.aclose()

    _run(run(), settings)
    typer.echo(f"database at {settings.database_url_redacted} is up to date")


@app.command()
def dev(
    handlers: Annotated[
        str | None,
        typer.Option(
            help="Your handlers package(s), comma-separated (default CORRAL_HANDLERS; "
            "without either, the examples)."
        ),
    ] = None,
    examples: Annotated[
        bool,
        typer.Option(
            help="Add the example jobs and schedules (only when their handlers are registered: "
            "by default, or with corral.examples.handlers in --handlers)."
        ),
    ] = True,
    host: Annotated[
        str | None, typer.Option(help="API bind address (default CORRAL_API_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="API port (default CORRAL_API_PORT).")] = None,
    folder: Annotated[
        str,
        typer.Option(
            help="State folder: the private Redis's data and password, and the SQLite "
            "database unless DATABASE_URL is set."
        ),
    ] = ".corral",
) -> None:
    """Run Corral all-in-one for development, keeping its state under .corral/.

    A private Redis (unless REDIS_URL is set), a scheduler, a worker with your handlers (or the
    examples), the API and dashboard. A restart in the same folder keeps jobs, job ids and
    schedules, and fires no tick twice. It prints the REDIS_URL your scripts and a second
    `corral worker` join with.
    """
    _positive("--port", port, 65535)
    from corral.dev import DevOptions, run_dev

    settings = _settings()
    api = {"api_host": host or settings.api_host, "api_port": port or settings.api_port}
    options = DevOptions(
        folder=Path(folder),
        handlers=_packages(handlers) if handlers is not None else settings.handler_packages,
        examples=examples,
        redis_from_env="redis_url" in settings.given,
        database_from_env="database_url" in settings.given,
    )
    _run(run_dev(settings.replace(**api), options), settings)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        typer.echo(f"corral {package_version('corral')}")
        ctx.exit(0)


def _with_version(command: click.Command) -> click.Command:
    """``--version`` on the top level and on every command (typer offers it on none)."""
    command.params.append(
        click.Option(
            ["--version"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_print_version,
            help="Show the version and exit.",
        )
    )
    if isinstance(command, click.Group):
        for child in command.commands.values():
            _with_version(child)
    return command


def main() -> None:
    """Entry point. Usage errors are one line on stderr and exit code 2."""
    cli = _with_version(typer.main.get_command(app))
    try:
        code = cli.main(prog_name="corral", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError:
        sys.exit(2)  # click has printed the help
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "corral"
        option = f" (see '{command} --help')"
        typer.echo(f"corral: {redact_text(exc.format_message())}{option}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):  # signal handlers normally catch a Ctrl-C
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
