"""queues.yaml: the shipped file loads; a bad file fails naming the file, the key and the reason."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from jobline.errors import ConfigError
from jobline.jobs.spec import load_queues
from tests.support import REPO

GOOD_TYPE = "{function: tasks.music:transcode}"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "queues.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problem_of(tmp_path: Path, text: str) -> str:
    """The error message a file gives; it must name the file."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_queues(path)
    message = caught.value.message
    assert str(path) in message
    return message


def test_the_shipped_file_loads_with_its_policies_resolved() -> None:
    queues = load_queues(REPO / "queues.yaml")
    assert set(queues.domains) >= {"music", "video"}
    types = queues.job_types
    assert {"music.transcode", "video.thumbnail", "video.publish", "video.render"} <= set(types)
    transcode = types["music.transcode"]
    assert (transcode.domain, transcode.queue, transcode.importable) == ("music", "music", True)
    assert transcode.spec.rate_limit == "600/m"
    assert transcode.payload_model is not None
    assert transcode.policy.max_retries == 3  # from defaults
    render = types["video.render"]
    assert not render.importable
    assert render.spec.task_name == "video.render"
    assert render.payload_model is None
    assert render.policy.time_limit == 7200  # the domain overrides the defaults
    publish = types["video.publish"]
    assert publish.policy.max_retries == 4  # the job type overrides its domain
    assert TimeoutError in publish.retry_exceptions()
    assert types["music.validate_master"].policy.max_retries == 0
    assert queues.domain_types("video") == [t for t in types.values() if t.domain == "video"]


def test_backoff_doubles_per_attempt_up_to_its_cap() -> None:
    policy = load_queues(REPO / "queues.yaml").job_types["video.publish"].policy
    delays = [policy.backoff(attempt) for attempt in range(1, 30)]
    assert delays[:3] == [policy.retry_backoff, policy.retry_backoff * 2, policy.retry_backoff * 4]
    assert max(delays) == policy.retry_backoff_max


@pytest.mark.parametrize(
    ("where", "text"),
    [
        (
            "defaults.max_retriez",
            "defaults: {max_retriez: 3}\ndomains: {m: {queue: m, job_types: {a: X}}}",
        ),
        ("domains.m.colour", "domains: {m: {queue: m, colour: red, job_types: {a: X}}}"),
        (
            "domains.m.job_types.a.speed",
            "domains: {m: {queue: m, job_types: {a: {function: tasks.music:transcode, speed: 2}}}}",
        ),
        (": nonsense:", "nonsense: 1\ndomains: {m: {queue: m, job_types: {a: X}}}"),
    ],
)
def test_an_unknown_key(tmp_path: Path, where: str, text: str) -> None:
    message = problem_of(tmp_path, text.replace("X", GOOD_TYPE))
    assert where in message
    assert "Extra inputs are not permitted" in message


def test_a_duplicate_job_type(tmp_path: Path) -> None:
    message = problem_of(
        tmp_path,
        """\
        domains:
          music:
            queue: music
            job_types:
              transcode: {function: tasks.music:transcode}
              transcode: {function: tasks.music:fingerprint}
        """,
    )
    assert "domains.music.job_types.transcode" in message
    assert "declared twice (lines 5 and 6)" in message


def test_an_unimportable_function(tmp_path: Path) -> None:
    message = problem_of(
        tmp_path, "domains: {m: {queue: m, job_types: {a: {function: tasks.nowhere:go}}}}"
    )
    assert "domains.m.job_types.a" in message
    assert "'tasks.nowhere:go' cannot be imported" in message
    message = problem_of(
        tmp_path, "domains: {m: {queue: m, job_types: {a: {function: tasks.music:nothing}}}}"
    )
    assert "'tasks.music:nothing' cannot be imported" in message


def test_a_module_with_a_syntax_error_is_one_line_naming_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: a syntax error in tasks/ was a whole traceback; now one problem per module."""
    (tmp_path / "brokenjobs.py").write_text("x = 1\ndef broken(:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    message = problem_of(
        tmp_path,
        "domains: {m: {queue: m, job_types: {"
        "a: {function: brokenjobs:a}, b: {function: brokenjobs:b}}}}",
    )
    assert message.count("\n") == 0, message
    assert "domains.m.job_types.a: function 'brokenjobs:a' cannot be imported" in message
    assert "invalid syntax (brokenjobs.py, line 2)" in message


def test_a_module_that_raises_on_import_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "raisingjobs.py").write_text("raise RuntimeError('no\\ndatabase here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = problem_of(
        tmp_path, "domains: {m: {queue: m, job_types: {a: {function: raisingjobs:a}}}}"
    )
    assert message.endswith("cannot be imported: RuntimeError: no database here"), message


def test_a_function_not_decorated_with_job(tmp_path: Path) -> None:
    message = problem_of(
        tmp_path, "domains: {m: {queue: m, job_types: {a: {function: tasks.music:CODECS}}}}"
    )
    assert "domains.m.job_types.a: function 'tasks.music:CODECS' is not decorated with @job" in (
        message
    )


def test_a_missing_queue(tmp_path: Path) -> None:
    message = problem_of(tmp_path, f"domains: {{m: {{job_types: {{a: {GOOD_TYPE}}}}}}}")
    assert "domains.m.queue: Field required" in message


@pytest.mark.parametrize(
    "job_type",
    ["{}", "{description: nothing to run}", "{function: tasks.music:transcode, task_name: x.y}"],
)
def test_both_or_neither_function_and_task_name(tmp_path: Path, job_type: str) -> None:
    message = problem_of(tmp_path, f"domains: {{m: {{queue: m, job_types: {{a: {job_type}}}}}}}")
    assert "domains.m.job_types.a" in message
    assert "give exactly one of 'function' or 'task_name'" in message


@pytest.mark.parametrize("rate", ["fast", "10/d", "/m", "-1/s"])
def test_a_bad_rate_limit(tmp_path: Path, rate: str) -> None:
    message = problem_of(
        tmp_path,
        f"domains: {{m: {{queue: m, job_types: {{a: {{function: tasks.music:transcode, rate_limit: '{rate}'}}}}}}}}",
    )
    assert "domains.m.job_types.a.rate_limit" in message
    assert "should match pattern" in message


def test_two_domains_on_one_queue(tmp_path: Path) -> None:
    message = problem_of(
        tmp_path,
        f"""\
        domains:
          music: {{queue: shared, job_types: {{a: {GOOD_TYPE}}}}}
          video: {{queue: shared, job_types: {{b: {GOOD_TYPE}}}}}
        """,
    )
    assert "domains.video.queue: queue 'shared' is already used by domain 'music'" in message


@pytest.mark.parametrize(
    ("where", "limits"),
    [
        ("defaults", "defaults: {time_limit: 60, soft_time_limit: 60}"),
        (
            "domain",
            "domains: {m: {queue: m, time_limit: 60, soft_time_limit: 90, job_types: {a: X}}}",
        ),
        (
            "job type",
            "domains: {m: {queue: m, job_types: {a: {function: tasks.music:transcode, soft_time_limit: 4000}}}}",
        ),
    ],
)
def test_soft_time_limit_not_below_time_limit(tmp_path: Path, where: str, limits: str) -> None:
    text = limits.replace("X", GOOD_TYPE)
    if where == "defaults":
        text += f"\ndomains: {{m: {{queue: m, job_types: {{a: {GOOD_TYPE}}}}}}}"
    message = problem_of(tmp_path, text)
    assert "domains.m.job_types.a: soft_time_limit must be below time_limit" in message


def test_a_bad_retry_for(tmp_path: Path) -> None:
    message = problem_of(
        tmp_path,
        "domains: {m: {queue: m, job_types: {a: {function: tasks.music:transcode, retry_for: [builtins.len, nowhere.Err]}}}}",
    )
    assert "retry_for 'builtins.len' is not an exception class" in message
    assert "retry_for 'nowhere.Err' cannot be imported" in message


@pytest.mark.parametrize("text", ["", "- a list\n", "domains: {}", "domains: [1, 2\n"])
def test_an_empty_or_malformed_file(tmp_path: Path, text: str) -> None:
    problem_of(tmp_path, text)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_queues(tmp_path / "absent.yaml")


def test_imports_are_not_checked_when_asked_not_to(tmp_path: Path) -> None:
    path = write(tmp_path, "domains: {m: {queue: m, job_types: {a: {function: tasks.nowhere:go}}}}")
    assert set(load_queues(path, check_imports=False).job_types) == {"m.a"}


def test_processes_default_to_one_and_are_read_per_domain(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""\
        domains:
          music: {{queue: music, processes: 3, job_types: {{a: {GOOD_TYPE}}}}}
          video: {{queue: video, job_types: {{b: {GOOD_TYPE}}}}}
        """,
    )
    domains = load_queues(path).domains
    assert (domains["music"].processes, domains["video"].processes) == (3, 1)


@pytest.mark.parametrize(
    ("value", "reason"),
    [("0", "greater than or equal to 1"), ("-2", "greater than or equal to 1"), ("two", "integer")],
)
def test_a_bad_processes_count(tmp_path: Path, value: str, reason: str) -> None:
    message = problem_of(
        tmp_path, f"domains: {{m: {{queue: m, processes: {value}, job_types: {{a: {GOOD_TYPE}}}}}}}"
    )
    assert "domains.m.processes" in message
    assert reason in message


def test_max_running_per_user_defaults_to_concurrency_minus_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        defaults:
          max_user_priority: 3
        domains:
          wide:   {{queue: wide, concurrency: 8, job_types: {{t: {GOOD_TYPE}}}}}
          narrow: {{queue: narrow, concurrency: 1, job_types: {{t: {GOOD_TYPE}}}}}
          capped:
            queue: capped
            max_running_per_user: 3
            max_user_priority: 7
            job_types: {{t: {GOOD_TYPE}, u: {{function: tasks.music:transcode, max_user_priority: 9}}}}
        """,
    )
    types = load_queues(path).job_types
    # Room for another user on a worker; a domain of one slot still runs its jobs.
    assert types["wide.t"].max_running_per_user == 7
    assert types["narrow.t"].max_running_per_user == 1
    assert types["capped.t"].max_running_per_user == 3
    # max_user_priority: the job type's, else its domain's, else the defaults'.
    assert [
        types[name].policy.max_user_priority for name in ("wide.t", "capped.t", "capped.u")
    ] == [
        3,
        7,
        9,
    ]


def test_max_running_per_user_from_defaults_and_zero_for_no_cap(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        defaults:
          max_running_per_user: 0
        domains:
          open:  {{queue: open, concurrency: 4, job_types: {{t: {GOOD_TYPE}}}}}
          two:   {{queue: two, max_running_per_user: 2, job_types: {{t: {GOOD_TYPE}}}}}
        """,
    )
    types = load_queues(path).job_types
    assert (types["open.t"].max_running_per_user, types["two.t"].max_running_per_user) == (0, 2)
    assert load_queues(REPO / "queues.yaml").job_types["music.transcode"].max_running_per_user == 1


@pytest.mark.parametrize(
    "text",
    [
        "defaults: {max_running_per_user: -1}",
        "defaults: {max_user_priority: 10}",
    ],
)
def test_bad_fairness_settings(tmp_path: Path, text: str) -> None:
    message = problem_of(
        tmp_path, f"{text}\ndomains: {{d: {{queue: d, job_types: {{t: {GOOD_TYPE}}}}}}}"
    )
    assert "defaults." in message


def test_a_job_type_cannot_set_max_running_per_user(tmp_path: Path) -> None:
    message = problem_of(
        tmp_path,
        "domains: {d: {queue: d, job_types: "
        "{t: {function: tasks.music:transcode, max_running_per_user: 1}}}}",
    )
    assert "max_running_per_user" in message
