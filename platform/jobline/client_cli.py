"""`jobline submit` and `jobline follow`: the HTTP client from the command line.

They talk to a running API, not to the database: the API's URL and credentials come
from options or the environment (JOBLINE_API_URL, JOBLINE_TOKEN, or JOBLINE_EMAIL with
JOBLINE_PASSWORD), never from the server's settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn, TypeVar

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from jobline.client import Client, ClientError
from jobline.jobs.states import FINAL_EVENTS

DEFAULT_API_URL = "http://127.0.0.1:8000"
EXIT_JOB_FAILED = 1
EXIT_REFUSED = 2
EXIT_UNREACHABLE = 3
PERCENT = 100
T = TypeVar("T")

ApiUrl = Annotated[
    str, typer.Option("--api-url", envvar="JOBLINE_API_URL", help="base URL of the jobline API")
]
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
    api_url: ApiUrl = DEFAULT_API_URL,
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
            lambda: client.submit(type, body, priority=priority, idempotency_key=idempotency_key)
        )
        if not follow:
            typer.echo(json.dumps(job, indent=2))
            return
        typer.echo(f"job {job['id']} ({job['type']}) submitted")
        _show(client, job["id"])


def follow(
    job_id: Annotated[str, typer.Argument(help="the job's id")],
    api_url: ApiUrl = DEFAULT_API_URL,
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
        TextColumn("{task.fields[message]}"),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("waiting", total=PERCENT, message="")
        for event in _iterate(client.follow(job_id)):
            kind, data = event["type"], event["data"]
            if kind == "progress":
                bar.update(
                    task,
                    completed=data.get("progress", 0),
                    message=data.get("message") or "",
                    description="running",
                )
                continue
            bar.update(task, description=kind)
            console.print(f"#{event['seq']} {kind}{_details(kind, data)}")
            if kind in FINAL_EVENTS:
                final = event
                if kind == "succeeded":
                    bar.update(task, completed=PERCENT)
    if final is None:
        job = _call(lambda: client.get(job_id))
        typer.echo(f"job {job_id} is {job['state']}")
        final = {"type": job["state"]}
    if final["type"] != "succeeded":
        raise typer.Exit(EXIT_JOB_FAILED)


def _iterate(events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The events, with the client's errors turned into exits."""
    try:
        yield from events
    except ClientError as exc:
        _fail(exc.message, EXIT_REFUSED)
    except httpx.HTTPError as exc:
        _fail(f"the API is unreachable: {exc}", EXIT_UNREACHABLE)


def _details(kind: str, data: dict[str, Any]) -> str:
    if kind == "succeeded":
        return f": {json.dumps(data.get('result'))}"
    error = data.get("error")
    if error:  # failed, and retrying after a failure
        return f": {error.get('type')}: {error.get('message')}"
    if kind == "started" and data.get("worker"):
        return f" on {data['worker']}"
    return ""


def _connect(api_url: str, token: str | None, email: str | None, password: str | None) -> Client:
    if token:
        return Client(api_url, token)
    if not email:
        _fail("give --token (JOBLINE_TOKEN) or --email (JOBLINE_EMAIL) to log in", EXIT_REFUSED)
    secret = password or typer.prompt("password", hide_input=True)
    return _call(lambda: Client.login(api_url, email or "", secret))


def _call(action: Callable[[], T]) -> T:
    try:
        return action()
    except ClientError as exc:
        _fail(exc.message, EXIT_REFUSED)
    except httpx.HTTPError as exc:
        _fail(f"the API is unreachable: {exc}", EXIT_UNREACHABLE)


def _fail(message: str, code: int) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the client commands to the `jobline` CLI."""
    app.command("submit")(submit)
    app.command("follow")(follow)
