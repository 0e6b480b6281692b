"""The `jobline` command line (typer)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated, Any

import typer

from jobline import client_cli, commands
from jobline.audit.cli import audit_app
from jobline.commands import (
    EXIT_CONFIG,
    EXIT_FAILED,
    fail,
    load_queues_or_exit,
    run,
    settings_or_exit,
)
from jobline.config import USER_SETTINGS, Settings, redact_url
from jobline.db import apply_migrations
from jobline.deploy import deploy_app
from jobline.errors import ConfigError

app = typer.Typer(
    help="jobline: an event-sourced async job platform.",
    epilog=(
        "Exit codes: 0 done; 1 failed; 2 bad configuration or usage;"
        " 3 the database or the broker is unreachable. Errors are one line; --debug adds"
        " the traceback."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
users_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(deploy_app, name="deploy")
client_cli.register(app)  # submit, follow: over HTTP


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False) -> None:
    """jobline: submit jobs over HTTP, run them on Celery workers, keep every transition."""
    commands.show_tracebacks(debug)
    # The deployment's own job code (tasks/) lives in the working directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def check_services_or_exit(settings: Settings, *, broker: bool = True) -> None:
    """Stop with one line (exit 3) when the database, or the broker, does not answer."""
    from jobline.preflight import check_services

    run(check_services(settings, broker=broker))


@app.command()
def migrate() -> None:
    """Apply the database migrations (aerich) for the configured database."""
    settings = settings_or_exit()
    check_services_or_exit(settings, broker=False)
    applied = run(apply_migrations(settings))
    typer.echo(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    reload: Annotated[bool, typer.Option(help="reload on code changes (development)")] = False,
) -> None:
    """Run the HTTP API with uvicorn (production: gunicorn -c deploy/gunicorn.conf.py asgi:app)."""
    import uvicorn

    from jobline.logging import configure

    settings = settings_or_exit()
    load_queues_or_exit(settings)
    check_services_or_exit(settings)
    configure(settings.log_format, settings.log_level)
    uvicorn.run(
        "jobline.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        reload=reload,
        proxy_headers=True,
        log_config=None,  # configured above: JOBLINE_LOG_FORMAT, request ids on every line
        # Slow or idle clients: see api/limits.py (body read timeout) and deploy/README.md.
        timeout_keep_alive=settings.uvicorn_keep_alive_seconds,
        limit_concurrency=settings.uvicorn_limit_concurrency,
    )


@app.command()
def worker(
    domain: Annotated[str, typer.Option(help="the domain from queues.yaml whose queue to consume")],
    pool: Annotated[str | None, typer.Option(help="override the domain's pool")] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="override the domain's concurrency")
    ] = None,
    loglevel: Annotated[
        str, typer.Option("--log-level", "--loglevel", help="DEBUG, INFO, WARNING or ERROR")
    ] = "INFO",
    name: Annotated[
        str | None,
        typer.Option(
            help="node name (default DOMAIN@host:pid, unique per process; Celery's %h"
            " is the host name)"
        ),
    ] = None,
) -> None:
    """Run a Celery worker on one domain's queue, named DOMAIN@host:pid."""
    from celery import signals

    from jobline.queueing import green, telemetry
    from jobline.queueing.app import worker_node_name

    settings = settings_or_exit()
    # Before any import creates a metric: the prefork children inherit the directory.
    telemetry.prepare_metrics_dir(settings, domain)
    from jobline.queueing import heartbeat
    from jobline.queueing.worker import worker_app

    queues = load_queues_or_exit(settings)
    if domain not in queues.domains:
        fail(
            f"unknown domain {domain!r}; queues.yaml declares: {', '.join(queues.domains)}",
            EXIT_CONFIG,
        )
    spec = queues.domains[domain]
    chosen_pool = pool or spec.pool
    if chosen_pool in green.GREEN_POOLS and not green.patched():
        if not green.available(chosen_pool):
            fail(
                f"pool {chosen_pool!r} (domain {domain}) needs {chosen_pool} installed:"
                f" pip install 'jobline[{chosen_pool}]'",
                EXIT_CONFIG,
            )
        # Celery patches only as the `celery` command; worker_main() below never does.
        green.rerun_patched(chosen_pool)
    check_services_or_exit(settings)
    celery = worker_app(settings, queues, domain)
    # Celery's worker_main() drops the worker's exit status: one that could not start (an
    # "Unrecoverable error") would exit 0, and a supervisor would take that for a clean stop.
    exit_code: list[int] = []

    def remember_exit_code(sender: Any = None, **_: Any) -> None:
        exit_code.append(getattr(sender, "exitcode", None) or 0)

    signals.worker_shutdown.connect(remember_exit_code, weak=False)
    # Its proof of life: a running job of a worker gone silent is recovered (jobs/workers.py).
    heartbeat.install(settings, domain)
    celery.worker_main(
        [
            "worker",
            f"--queues={spec.queue}",
            # Celery's control queue is exclusive to a node name: the default carries the pid, so
            # several workers of a domain run on one host.
            f"--hostname={name or worker_node_name(domain)}",
            f"--pool={chosen_pool}",
            f"--concurrency={concurrency or spec.concurrency}",
            f"--prefetch-multiplier={spec.prefetch}",
            f"--loglevel={loglevel}",
            # queues.yaml's `task_events` (off by default); worker_app sets the same.
            *(["--task-events"] if spec.task_events else []),
            "--without-gossip",
            "--without-mingle",
        ]
    )
    if exit_code and exit_code[-1]:
        raise typer.Exit(exit_code[-1])


@app.command()
def flower(
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 5555)")] = None,
) -> None:
    """Run Flower on the configured broker, with basic auth from JOBLINE_FLOWER_BASIC_AUTH."""
    from jobline import flower as flower_module

    settings = settings_or_exit()
    try:
        flower_module.run(settings, host, port)
    except ConfigError as exc:
        fail(exc.message, EXIT_CONFIG)


@app.command()
def dev(
    host: Annotated[str | None, typer.Option(help="the API's address (JOBLINE_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="the API's port (JOBLINE_API_PORT)")] = None,
) -> None:
    """Run everything on this machine: migrations, a demo account, the API, a worker per domain.

    With no settings: SQLite and a broker kept in files, both under var/.

    With JOBLINE_DATABASE_URL and JOBLINE_BROKER_URL: MariaDB and RabbitMQ, and Flower too.

    Ctrl-C stops every process it started.
    """
    from jobline.devserver import DevFailed, DevServer

    settings = settings_or_exit()
    if settings.env == "production":
        fail(
            "jobline dev is for development (it creates a demo account); in production run"
            " `jobline serve` and `jobline worker --domain NAME`",
            EXIT_CONFIG,
        )
    queues = load_queues_or_exit(settings)
    check_services_or_exit(settings)
    server = DevServer(settings, queues, host or settings.api_host, port or settings.api_port)
    try:
        code = run(server.run())
    except DevFailed as exc:
        fail(str(exc))
    raise typer.Exit(code)


@app.command("check-config")
def check_config(
    write_consumer_timeout: Annotated[
        bool,
        typer.Option(
            "--write-consumer-timeout",
            help="set consumer_timeout in deploy/rabbitmq/rabbitmq.conf from queues.yaml",
        ),
    ] = False,
) -> None:
    """Print the queues and job types (do their functions import?), then the resolved settings (secrets masked); exit non-zero on error."""
    from jobline.jobs.spec import load_queues, running_cap
    from jobline.queueing import consumer_timeout

    settings = settings_or_exit()
    try:
        queues = load_queues(settings.queues_file, check_imports=True)
    except ConfigError as exc:
        fail(exc.message, EXIT_CONFIG)
        return
    typer.echo(f"queues ({queues.path}):")
    for name, domain in queues.domains.items():
        cap = running_cap(queues.raw.defaults, domain) or "none"
        typer.echo(
            f"  {name}: queue={domain.queue} pool={domain.pool} concurrency={domain.concurrency}"
            f" prefetch={domain.prefetch} processes={domain.processes} max_running_per_user={cap}"
        )
        for jt in queues.domain_types(name):
            target = (
                f"function {jt.spec.function} (imports)"
                if jt.importable
                else f"task_name {jt.spec.task_name} (send_task)"
            )
            typer.echo(
                f"    {jt.name}: {target}; retries={jt.policy.max_retries} time_limit={jt.policy.time_limit}s"
                f" max_user_priority={jt.policy.max_user_priority}"
            )
    margin = settings.consumer_timeout_margin_seconds
    if write_consumer_timeout:
        wanted = consumer_timeout.wanted_ms(queues, margin)
        changed = consumer_timeout.write_ms(wanted)
        typer.echo(
            f"consumer_timeout: {'wrote' if changed else 'kept'} {wanted} ms in "
            f"{consumer_timeout.conf_path()} (RabbitMQ applies it at its next start)"
        )
    timeout_check = consumer_timeout.check(queues, margin)
    if timeout_check.problem is not None:
        typer.secho(f"warning: {timeout_check.problem}", fg=typer.colors.YELLOW, err=True)
        typer.echo("  fix: jobline check-config --write-consumer-timeout")
    else:
        typer.echo(f"consumer_timeout: {timeout_check.configured} ms ({timeout_check.source})")
    # The queues and their imports first: what a newcomer checks; the settings after them,
    # the ones a deployment sets before the tuning.
    values = settings.model_dump()
    for heading, names in (
        ("settings", [n for n in values if n in USER_SETTINGS]),
        ("tuning", [n for n in values if n not in USER_SETTINGS]),
    ):
        typer.echo(f"{heading}:")
        for name in names:
            typer.echo(f"  {name}: {_shown_setting(name, values[name])}")
    typer.echo("ok")


def _shown_setting(name: str, value: Any) -> Any:
    """A setting's value as check-config prints it: secrets masked, URLs without passwords."""
    if name in {"secret_key", "flower_basic_auth", "flower_broker_api", "metrics_token"} and value:
        return "***"
    if name in {"database_url", "broker_url"}:
        return redact_url(str(value))
    return value


@app.command()
def relay() -> None:
    """Publish the outbox (jobs stored while the broker was away, delayed jobs once due,
    retries) and recover the running jobs of workers that stopped beating."""
    from jobline.db import close_db, open_db
    from jobline.jobs.store import JobStore
    from jobline.queueing.app import create_celery
    from jobline.queueing.relay import wire

    settings = settings_or_exit()
    queues = load_queues_or_exit(settings)

    async def serve() -> None:
        await open_db(settings)
        celery = create_celery(settings, queues)
        _, outbox_relay = wire(settings, queues, celery, JobStore())
        typer.echo(f"relay {outbox_relay.name}: publishing the outbox (Ctrl-C stops)")
        try:
            await outbox_relay.run()
        finally:
            celery.close()
            await close_db()

    with contextlib.suppress(KeyboardInterrupt):
        run(serve())


@app.command()
def reconcile(
    domain: Annotated[
        list[str] | None, typer.Option("--domain", help="only this domain (repeatable)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only count and print what would be published")
    ] = False,
) -> None:
    """Publish again the queued jobs whose message the broker lost (what the relays do
    every JOBLINE_RECONCILE_INTERVAL_SECONDS), printing the counts per domain and why."""
    from jobline.db import close_db, open_db
    from jobline.jobs.store import JobStore
    from jobline.queueing.reconcile import BrokerCounts, Reconciler, Round, reconcilable

    settings = settings_or_exit()
    queues = load_queues_or_exit(settings)
    unknown = sorted(set(domain or ()) - set(queues.domains))
    if unknown:
        fail(
            f"no domain {', '.join(unknown)} in {settings.queues_file} "
            f"(domains: {', '.join(queues.domains)})",
            EXIT_CONFIG,
        )
    why_not = reconcilable(settings)
    if why_not is not None:
        fail(why_not, EXIT_CONFIG)

    async def go() -> Round:
        await open_db(settings)
        try:
            reconciler = Reconciler(JobStore(), queues, settings, BrokerCounts(settings))
            return await reconciler.run_once(domain, dry_run=dry_run, wait=True)
        finally:
            await close_db()

    done = run(go())
    if done.skipped is not None:
        fail(done.skipped, EXIT_FAILED)
    for part in done.domains:
        typer.echo(part.describe())
        for candidate in part.chosen:
            typer.echo(
                f"  {candidate.job_id} queued since {candidate.queued_at.isoformat()} "
                f"(attempt {candidate.attempt}, generation {candidate.generation})"
            )
    lost = sum(len(part.chosen) for part in done.domains)
    if dry_run:
        typer.echo(f"would publish {lost} job(s) again (dry run: nothing changed)")
    else:
        typer.echo(
            f"requeued {done.republished} of {lost} lost job(s): the relays publish them "
            "from the outbox"
        )


@app.command()
def replay(
    job: Annotated[
        list[str] | None, typer.Option("--job", help="only this job id (repeatable)")
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="only compare; exit 1 if any job differs")
    ] = False,
) -> None:
    """Rebuild job projections from their events; --verify lists the jobs that differ."""
    from uuid import UUID

    from jobline.db import close_db, open_db
    from jobline.jobs.replay import ReplayReport, describe
    from jobline.jobs.replay import replay as replay_jobs

    settings = settings_or_exit()
    try:
        job_ids = [UUID(j) for j in job] if job else None
    except ValueError:
        fail("--job must be a job id (UUID)", EXIT_CONFIG)
        return

    async def go() -> ReplayReport:
        await open_db(settings)
        try:
            return await replay_jobs(job_ids, verify=verify)
        finally:
            await close_db()

    report = run(go())
    for difference in report.differences:
        typer.echo(describe(difference))
    if verify:
        typer.echo(f"checked {report.checked} job(s); {len(report.differences)} differ")
        if report.differences:
            raise typer.Exit(1)
        return
    typer.echo(f"checked {report.checked} job(s); rewrote {report.rewritten}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="the account's email")],
    superuser: Annotated[bool, typer.Option("--superuser", help="may see every job")] = False,
    password: Annotated[
        str | None, typer.Option(help="read from stdin or prompted when omitted", hidden=True)
    ] = None,
) -> None:
    """Create an account (password prompted, or read from stdin)."""
    from jobline.accounts.users import create_user
    from jobline.db import close_db, open_db

    settings = settings_or_exit()
    check_services_or_exit(settings, broker=False)
    if password is None:
        password = (
            sys.stdin.readline().strip()
            if not sys.stdin.isatty()
            else typer.prompt("password", hide_input=True, confirmation_prompt=True)
        )
    if not password:
        fail("a password is required", EXIT_CONFIG)

    async def create() -> str:
        await open_db(settings)
        try:
            user = await create_user(email, password or "", superuser=superuser)
        finally:
            await close_db()
        return str(user.id)

    from fastapi_users.exceptions import InvalidPasswordException, UserAlreadyExists

    try:
        user_id = run(create())
    except UserAlreadyExists:
        fail(f"an account for {email} already exists")
    except InvalidPasswordException as exc:
        fail(f"password refused: {exc.reason}")
    else:
        typer.echo(f"created {'superuser' if superuser else 'user'} {email} ({user_id})")
