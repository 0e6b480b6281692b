"""`jobline submit` and `jobline follow`: the HTTP client from the command line.

They talk to a running API, not to the database: credentials come from options or the
environment (JOBLINE_TOKEN, or JOBLINE_EMAIL with JOBLINE_PASSWORD). The API's URL is
--api-url or JOBLINE_API_URL; without either, the address `jobline dev` and `jobline
serve` listen on (JOBLINE_API_HOST, JOBLINE_API_PORT, from the environment or `.env`),
so a client beside a server on another port finds it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn, TypeVar

import httpx
import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from jobline.client import Client, ClientError
from jobline.config import Settings
from jobline.jobs.states import FINAL_EVENTS

# A server bound to every address is reached on this machine's loopback.
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
EXIT_JOB_FAILED = 1
EXIT_REFUSED = 2
EXIT_UNREACHABLE = 3
PERCENT = 100
T = TypeVar("T")

ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar="JOBLINE_API_URL",
        help="base URL of the jobline API  [default: http://JOBLINE_API_HOST:JOBLINE_API_PORT,"
        " as jobline dev serves it]",
        show_default=False,
    ),
]


class ServerAddress(BaseSettings):
    """The two settings of jobline's Settings that say where the API listens.

    Read on their own: a client needs no database URL or secret, and production's checks
    on those must not stop `jobline submit`.
    """

    model_config = SettingsConfigDict(env_prefix="JOBLINE_", env_file=".env", extra="ignore")

    # The server's own defaults, so the two cannot drift apart.
    api_host: str = Settings.model_fields["api_host"].default
    api_port: int = Settings.model_fields["api_port"].default


def default_api_url() -> str:
    """http://HOST:PORT of the API `jobline dev` / `jobline serve` start with these settings."""
    try:
        address = ServerAddress()
    except ValidationError as exc:  # e.g. JOBLINE_API_PORT=abc
        first = exc.errors()[0]
        name = "JOBLINE_" + "_".join(str(part) for part in first["loc"]).upper()
        _fail(f"{name}: {first['msg']}", EXIT_REFUSED)
    host = ANY_ADDRESS.get(address.api_host, address.api_host)
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal in a URL
    return f"http://{host}:{address.api_port}"


Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="JOBLINE_TOKEN",
        help="bearer token (from POST /api/v1/auth/jwt/login)",
        show_default=False,
    ),
]
Email = Annotated[
    str | None,
    typer.Option(
        "--email", envvar="JOBLINE_EMAIL", help="log in with this account instead of a token"
    ),
]
Password = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="JOBLINE_PASSWORD",
        help="the account's password (prompted when --email is given without it)",
        show_default=False,
    ),
]


def submit(
    type: Annotated[str, typer.Argument(help="job type, e.g. music.transcode")],
    payload: Annotated[str, typer.Option(help="the job's payload, a JSON object")] = "{}",
    follow: Annotated[
        bool, typer.Option("--follow", help="show live progress until the job ends")
    ] = False,
    priority: Annotated[int, typer.Option(min=0, max=9, help="0 (default) to 9")] = 0,
    idempotency_key: Annotated[
        str | None, typer.Option(help="a repeated key returns the first job")
    ] = None,
    api_url: ApiUrl = None,
    token: Token = None,
    email: Email = None,
    password: Password = None,
) -> None:
    """Submit a job to the API and print it; with --follow, show its progress live.

    Exits 1 if the followed job fails or is cancelled, 2 if the API refuses the request,
    3 if the API is unreachable.
    """
    try:
        body = json.loads(payload)
    except ValueError as exc:
        _fail(f"--payload is not JSON: {exc}", EXIT_REFUSED)
    if not isinstance(body, dict):
        _fail("--payload must be a JSON object", EXIT_REFUSED)
    with _connect(api_url, token, email, password) as client:
        job = _call(
            lambda: client.submit(type, body, priority=priority, idempotency_key=idempotency_key),
            client.base_url,
        )
        if not follow:
            typer.echo(json.dumps(job, indent=2))
            return
        typer.echo(f"job {job['id']} ({job['type']}) submitted")
        _show(client, job["id"])


def follow(
    job_id: Annotated[str, typer.Argument(help="the job's id")],
    api_url: ApiUrl = None,
    token: Token = None,
    email: Email = None,
    password: Password = None,
) -> None:
    """Show a job's events live with a progress bar, until it ends.

    Exits 0 if it succeeded, 1 if it failed or was cancelled, 2 if the API refuses the
    request (unknown job, bad credentials), 3 if the API is unreachable.
    """
    with _connect(api_url, token, email, password) as client:
        _show(client, job_id)


def _show(client: Client, job_id: str) -> None:
    """Follow the job: a bar for its progress, a line for every other event."""
    console = Console(stderr=False)
    final: dict[str, Any] | None = None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        # Job-provided text is never markup (a `[link=...]` in it would be a link).
        TextColumn("{task.fields[message]}", markup=False),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("waiting", total=PERCENT, message="")
        for event in _iterate(client.follow(job_id), client.base_url):
            kind, data = event["type"], event["data"]
            if kind == "progress":
                bar.update(
                    task,
                    completed=data.get("progress", 0),
                    message=shown(data.get("message") or ""),
                    description="running",
                )
                continue
            # The description column is markup (its [bold]): the event's type is escaped.
            bar.update(task, description=escape(shown(kind)))
            line = f"#{event['seq']} {kind}{_details(kind, data)}"
            console.print(shown(line), markup=False, emoji=False, highlight=False)
            if kind in FINAL_EVENTS:
                final = event
                if kind == "succeeded":
                    bar.update(task, completed=PERCENT)
    if final is None:
        job = _call(lambda: client.get(job_id), client.base_url)
        typer.echo(f"job {job_id} is {job['state']}")
        final = {"type": job["state"]}
    if final["type"] != "succeeded":
        raise typer.Exit(EXIT_JOB_FAILED)


def _iterate(events: Iterator[dict[str, Any]], url: str) -> Iterator[dict[str, Any]]:
    """The events, with the client's errors turned into exits."""
    try:
        yield from events
    except ClientError as exc:
        _fail(_refusal(exc), EXIT_REFUSED)
    except httpx.HTTPError as exc:
        _fail(_unreachable(url, exc), EXIT_UNREACHABLE)


def shown(text: str) -> str:
    """Text from a job (its messages, errors, result) as a terminal may show it.

    Printed without markup by the caller; here control characters (an escape sequence can
    make a terminal link, retitle or clear it) are written out as `\\xNN` instead.
    """
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def _details(kind: str, data: dict[str, Any]) -> str:
    if kind == "succeeded":
        return f": {json.dumps(data.get('result'))}"
    error = data.get("error")
    if error:  # failed, and retrying after a failure
        return f": {error.get('type')}: {error.get('message')}"
    if kind == "started" and data.get("worker"):
        return f" on {data['worker']}"
    return ""


def _connect(
    api_url: str | None, token: str | None, email: str | None, password: str | None
) -> Client:
    url = (api_url or default_api_url()).rstrip("/")
    if token:
        return Client(url, token)
    if not email:
        _fail("give --token (JOBLINE_TOKEN) or --email (JOBLINE_EMAIL) to log in", EXIT_REFUSED)
    secret = password or typer.prompt("password", hide_input=True)
    return _call(lambda: Client.login(url, email or "", secret), url)


def _call(action: Callable[[], T], url: str) -> T:
    try:
        return action()
    except ClientError as exc:
        _fail(_refusal(exc), EXIT_REFUSED)
    except httpx.HTTPError as exc:
        _fail(_unreachable(url, exc), EXIT_UNREACHABLE)


def _unreachable(url: str, exc: httpx.HTTPError) -> str:
    """The URL tried, what went wrong, and where the URL came from."""
    return (
        f"the API at {url} is unreachable: {exc or type(exc).__name__} "
        "(set --api-url or JOBLINE_API_URL, or JOBLINE_API_PORT as the server has it)"
    )


def _refusal(exc: ClientError) -> str:
    """The API's message, and each field it names with its reason (a 422's `errors`)."""
    lines = [exc.message]
    for error in exc.errors:
        where = ".".join(str(part) for part in error.get("loc", ())) or "(the payload)"
        lines.append(f"  {where}: {error.get('msg', error)}")
    return "\n".join(lines)


def _fail(message: str, code: int) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the client commands to the `jobline` CLI."""
    app.command("submit")(submit)
    app.command("follow")(follow)
