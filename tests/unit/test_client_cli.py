"""`jobline follow` prints what a job wrote as text: no markup, no terminal escapes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from jobline import client_cli

HOSTILE = "x[/bold] [link=https://evil.example]click[/link]"
OSC8_LINK = "\x1b]8;"


class FakeClient:
    """What _show needs of jobline.client.Client: a job's events, then the job."""

    base_url = "http://127.0.0.1:8000"  # named in the CLI's errors

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def follow(self, job_id: str) -> Iterator[dict[str, Any]]:
        yield from self.events

    def get(self, job_id: str) -> dict[str, Any]:
        return {"id": job_id, "state": self.events[-1]["type"]}


def event(seq: int, type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "type": type, "data": data}


def follow_output(monkeypatch: pytest.MonkeyPatch, events: list[dict[str, Any]]) -> str:
    """Run `jobline follow` on these events with a terminal console; what it printed."""
    out = io.StringIO()
    monkeypatch.setattr(client_cli, "_connect", lambda *_: FakeClient(events))
    monkeypatch.setattr(
        client_cli,
        "Console",
        lambda **_: Console(file=out, force_terminal=True, color_system="truecolor", width=300),
    )
    app = typer.Typer()
    client_cli.register(app)
    result = CliRunner().invoke(app, ["follow", "some-job", "--token", "t"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return out.getvalue()


def test_job_text_with_markup_neither_crashes_nor_makes_a_link(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression (issue 13.8): the message crashed `follow` (MarkupError) or became a link."""
    text = follow_output(
        monkeypatch,
        [
            event(1, "started", {"worker": "w@h"}),
            event(2, "progress", {"progress": 50, "message": HOSTILE}),
            event(3, "failed", {"error": {"type": HOSTILE, "message": HOSTILE}}),
        ],
    )
    assert OSC8_LINK not in text
    assert "[link=https://evil.example]click[/link]" in text
    assert "x[/bold]" in text


def test_terminal_escape_sequences_from_a_job_are_written_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"
    text = follow_output(
        monkeypatch,
        [
            event(1, "progress", {"progress": 10, "message": link}),
            event(2, "succeeded", {"result": {"note": "\x1b[2J:warning:"}}),
        ],
    )
    assert OSC8_LINK not in text and "\x1b[2J" not in text
    assert "\\x1b]8;;https://evil.example" in text
    # The result is JSON: json.dumps already wrote its escape as \u001b; emoji codes stay text.
    assert ":warning:" in text


def test_shown_keeps_printable_text_and_writes_out_control_characters() -> None:
    assert client_cli.shown("chunk 1/10 é ✓") == "chunk 1/10 é ✓"
    assert client_cli.shown("a\x1b[31mb\nc\x07") == "a\\x1b[31mb\\nc\\x07"
