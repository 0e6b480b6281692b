"""The lines `jobline dev` prints: a payload guessed from the job type, quoted for a shell."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from pydantic import BaseModel, Field

from jobline.devserver import demo_job, example_payload, follow_commands
from jobline.jobs.context import job
from jobline.jobs.spec import JobType, load_queues
from tests.support import REPO


def job_type(model: type[BaseModel] | None) -> JobType:
    """A JobType whose function has this payload model (as if loaded from queues.yaml)."""
    queues = load_queues(REPO / "queues.yaml")
    template = queues.job_types["music.transcode"]

    @job(payload=model)
    def function(ctx: object, req: object) -> None:
        return None

    jt = JobType("demo.kind", "demo", "demo", template.spec, template.policy)
    # cached_property: set the loaded model the way the property would.
    jt.__dict__["payload_model"] = function.payload
    return jt


class Required(BaseModel):
    source: str = Field(min_length=1, examples=["song.wav"])
    count: int = Field(ge=3)
    ratio: float = Field(gt=0.5)
    loud: bool
    tags: list[str]
    name: str
    optional: str = "kept out"


def test_required_fields_are_filled_from_their_schema_examples_first() -> None:
    assert example_payload(job_type(Required)) == {
        "source": "song.wav",
        "count": 3,
        "ratio": 1.5,
        "loud": False,
        "tags": [],
        "name": "example",
    }


class Strict(BaseModel):
    code: str = Field(pattern=r"^[A-Z]{3}$")


def test_a_payload_the_model_refuses_is_not_guessed() -> None:
    assert example_payload(job_type(Strict)) is None


def test_no_model_no_payload() -> None:
    assert example_payload(job_type(None)) is None


def test_the_shipped_queues_give_a_transcode_of_song_wav() -> None:
    assert demo_job(load_queues(REPO / "queues.yaml")) == (
        "music.transcode",
        {"source": "song.wav"},
    )


def test_the_printed_lines_survive_the_shell_with_awkward_payloads(tmp_path: Path) -> None:
    payload = {"text": 'it\'s "quoted" $HOME `and` back\\slashed'}
    lines = follow_commands("http://127.0.0.1:8000", "tok'en", ("reports.summarize", payload))
    assert lines[0] == "export TOKEN='tok'\"'\"'en'"
    body = shlex.split(lines[1].split(" -d ", 1)[1].split(" | ", 1)[0])[0]
    assert json.loads(body) == {"type": "reports.summarize", "payload": payload}
    assert lines[2] == (
        'curl -N -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/api/v1/jobs/$JOB/stream'
    )
