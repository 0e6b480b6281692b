"""What a script sees of `jobline`: help everywhere, exit codes it can rely on, one-line errors.

Exit codes: 0 done, 1 failed, 2 bad configuration or usage, 3 the database or the broker is
unreachable. An error is one line per problem, without a traceback unless --debug.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import typer.main

from jobline.cli import app
from tests.support import JOBLINE, REPO, free_port

pytestmark = pytest.mark.integration

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3
SECRET = "s" * 48
TIMEOUT = 120
SAFE_PRODUCTION = {
    "JOBLINE_ENV": "production",
    "JOBLINE_SECRET_KEY": SECRET,
    "JOBLINE_DATABASE_URL": "mysql://jobline:jobline@127.0.0.1:3306/jobline",
    "JOBLINE_BROKER_URL": "amqp://jobline:jobline@127.0.0.1:5672/jobline",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A deployment directory: queues.yaml and tasks/, nothing else."""
    shutil.copy(REPO / "queues.yaml", tmp_path / "queues.yaml")
    shutil.copytree(
        REPO / "tasks", tmp_path / "tasks", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def jobline(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`jobline ARGS` in `cwd` with exactly these JOBLINE_ variables (none inherited)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    return subprocess.run(
        [JOBLINE, *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The single error line, after checking the exit code and the absence of a traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    return lines[0]


# ------------------------------------------------------------------------ help


def all_commands() -> list[tuple[str, Any]]:
    """(name, command) of every command and sub-command (typer's own click objects)."""
    root: Any = typer.main.get_command(app)
    found: list[tuple[str, Any]] = []
    for name, command in root.commands.items():
        for sub, child in getattr(command, "commands", {}).items():
            found.append((f"{name} {sub}", child))
        found.append((name, command))
    return found


def test_every_command_and_option_explains_itself() -> None:
    for name, command in all_commands():
        assert (command.help or "").strip(), f"`jobline {name}` has no help text"
        for param in command.params:
            if param.param_type_name == "option" and not getattr(param, "hidden", False):
                assert (param.help or "").strip(), f"`jobline {name}` {param.opts} has no help"


@pytest.mark.parametrize("name", [name for name, _ in all_commands()])
def test_help_of_every_command_exits_0(name: str, tmp_path: Path) -> None:
    done = jobline(*name.split(), "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Usage: jobline " + name in " ".join(done.stdout.split())


def test_top_level_help_states_the_exit_codes(tmp_path: Path) -> None:
    done = jobline("--help", cwd=tmp_path)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "Exit codes: 0 done; 1 failed; 2 bad configuration or usage; 3 the database" in text
    assert "dev" in text and "check-config" in text


def test_an_unknown_command_or_option_is_a_usage_error(tmp_path: Path) -> None:
    assert jobline("frobnicate", cwd=tmp_path).returncode == EXIT_CONFIG
    assert jobline("worker", "--domian", "music", cwd=tmp_path).returncode == EXIT_CONFIG


# ---------------------------------------------------------------- check-config


def test_check_config_on_a_good_file_exits_0_and_masks_secrets(project: Path) -> None:
    env = {
        "JOBLINE_SECRET_KEY": SECRET,
        "JOBLINE_DATABASE_URL": "mysql://app:db-password@127.0.0.1:3306/jobline",
        "JOBLINE_BROKER_URL": "amqp://app:mq-password@127.0.0.1:5672/jobline",
        "JOBLINE_FLOWER_BASIC_AUTH": "admin:flower-password",
        "JOBLINE_METRICS_TOKEN": "metrics-token-value",
    }
    done = jobline("check-config", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for secret in (SECRET, "db-password", "mq-password", "flower-password", "metrics-token-value"):
        assert secret not in out
    assert "database_url: mysql://app:***@127.0.0.1:3306/jobline" in out
    assert "broker_url: amqp://app:***@127.0.0.1:5672/jobline" in out
    for domain in ("music", "video"):
        assert (
            f"{domain}: queue={domain} pool=prefork concurrency=2 prefetch=1 processes=1"
            " max_running_per_user=1" in out
        )
    assert "music.transcode: function tasks.music:transcode (imports)" in out
    assert "max_user_priority=5" in out
    assert out.rstrip().endswith("ok")


BAD_FILES = {
    "unknown key": (
        """\
        domains:
          music:
            queue: music
            colour: blue
            job_types:
              transcode: {function: tasks.music:transcode}
        """,
        ["domains.music.colour: Extra inputs are not permitted"],
    ),
    "duplicate job type": (
        """\
        domains:
          music:
            queue: music
            job_types:
              transcode: {function: tasks.music:transcode}
              transcode: {function: tasks.music:fingerprint}
        """,
        ["domains.music.job_types.transcode: declared twice (lines 5 and 6)"],
    ),
    "unimportable function and missing queue": (
        """\
        domains:
          music:
            queue: music
            job_types:
              transcode: {function: tasks.music:no_such_function}
          video:
            job_types:
              thumbnail: {function: tasks.video:thumbnail}
        """,
        ["domains.video.queue: Field required"],
    ),
    "two unimportable functions": (
        """\
        domains:
          music:
            queue: music
            job_types:
              transcode: {function: tasks.music:no_such_function}
              mix: {function: tasks.nowhere:mix}
        """,
        [
            "domains.music.job_types.transcode: function 'tasks.music:no_such_function' cannot be imported",
            "domains.music.job_types.mix: function 'tasks.nowhere:mix' cannot be imported",
        ],
    ),
    "not YAML": (
        "domains: [music\n",
        ["invalid YAML: line 2, column 1: expected ',' or ']', but got '<stream end>'"],
    ),
    "no domains": ("defaults: {max_retries: 1}\n", ["domains: Field required"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_check_config_on_a_bad_file_exits_2_with_a_line_per_problem(
    case: str, project: Path
) -> None:
    text, problems = BAD_FILES[case]
    (project / "queues.yaml").write_text(textwrap.dedent(text))
    done = jobline("check-config", cwd=project)
    assert done.returncode == EXIT_CONFIG, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: queues.yaml: ")
    assert all(line.removeprefix("error: ").startswith("queues.yaml: ") for line in lines)
    for problem in problems:
        assert sum(problem in line for line in lines) == 1, (problem, lines)
    assert len(lines) == len(problems), lines


def test_a_missing_queues_file_is_named(tmp_path: Path) -> None:
    done = jobline("check-config", cwd=tmp_path, env={"JOBLINE_QUEUES_FILE": "nowhere.yaml"})
    line = one_line_error(done, EXIT_CONFIG)
    assert "nowhere.yaml: cannot read" in line


@pytest.mark.parametrize("command", [["serve"], ["worker", "--domain=music"], ["dev"]])
def test_commands_that_start_processes_refuse_a_bad_file(command: list[str], project: Path) -> None:
    (project / "queues.yaml").write_text("domains: {music: {queue: music, job_types: {}}}\n")
    done = jobline(*command, cwd=project)
    assert done.returncode == EXIT_CONFIG
    assert "queues.yaml: domains.music.job_types" in done.stderr


def test_an_unknown_domain_is_named_with_the_declared_ones(project: Path) -> None:
    line = one_line_error(jobline("worker", "--domain=podcasts", cwd=project), EXIT_CONFIG)
    assert "unknown domain 'podcasts'" in line and "music, video" in line


def test_a_malformed_setting_names_its_variable(project: Path) -> None:
    line = one_line_error(
        jobline("check-config", cwd=project, env={"JOBLINE_API_PORT": "eighty"}), EXIT_CONFIG
    )
    assert line.startswith("error: JOBLINE_API_PORT: ")


# ------------------------------------------------------------ production refuses


@pytest.mark.parametrize(
    ("unsafe", "reason"),
    [
        ({"JOBLINE_SECRET_KEY": ""}, "JOBLINE_SECRET_KEY must be set to at least 32 characters"),
        ({"JOBLINE_SECRET_KEY": "changeme"}, "JOBLINE_SECRET_KEY must be set"),
        ({"JOBLINE_DATABASE_URL": "sqlite://var/jobline.sqlite3"}, "must not be SQLite"),
        ({"JOBLINE_BROKER_URL": "filesystem://"}, "must not be the embedded broker"),
    ],
)
def test_production_refuses_an_unsafe_default_before_serving(
    unsafe: dict[str, str], reason: str, project: Path
) -> None:
    done = jobline("serve", cwd=project, env={**SAFE_PRODUCTION, **unsafe})
    line = one_line_error(done, EXIT_CONFIG)
    assert "production refuses unsafe settings" in line and reason in line


@pytest.mark.parametrize("command", [["worker", "--domain=music"], ["migrate"], ["relay"], ["dev"]])
def test_every_command_refuses_it(command: list[str], project: Path) -> None:
    done = jobline(*command, cwd=project, env={**SAFE_PRODUCTION, "JOBLINE_SECRET_KEY": ""})
    assert "JOBLINE_SECRET_KEY must be set" in one_line_error(done, EXIT_CONFIG)


def test_production_without_any_setting_names_every_problem(project: Path) -> None:
    line = one_line_error(
        jobline("serve", cwd=project, env={"JOBLINE_ENV": "production"}), EXIT_CONFIG
    )
    for variable in ("JOBLINE_SECRET_KEY", "JOBLINE_DATABASE_URL", "JOBLINE_BROKER_URL"):
        assert variable in line


def test_production_refuses_flower_without_auth(project: Path) -> None:
    line = one_line_error(jobline("flower", cwd=project, env=SAFE_PRODUCTION), EXIT_CONFIG)
    assert "JOBLINE_FLOWER_BASIC_AUTH" in line


def test_the_gunicorn_entry_point_refuses_too(project: Path) -> None:
    """`gunicorn asgi:app` imports asgi.py, which builds the app from the same settings."""
    shutil.copy(REPO / "asgi.py", project / "asgi.py")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    done = subprocess.run(
        [str(Path(JOBLINE).with_name("python")), "-c", "import asgi"],
        cwd=project,
        env={**clean, **SAFE_PRODUCTION, "JOBLINE_BROKER_URL": "filesystem://"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode != 0
    assert "JOBLINE_BROKER_URL must not be the embedded broker" in done.stderr


# --------------------------------------------------------- unreachable services


def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    return free_port()


@pytest.mark.parametrize("command", [["migrate"], ["serve"], ["worker", "--domain=music"], ["dev"]])
def test_an_unreachable_database_is_one_line_naming_it(command: list[str], project: Path) -> None:
    port = closed_port()
    env = {"JOBLINE_DATABASE_URL": f"mysql://app:db-password@127.0.0.1:{port}/jobline"}
    line = one_line_error(jobline(*command, cwd=project, env=env), EXIT_UNAVAILABLE)
    assert line.startswith(
        f"error: database mysql://app:***@127.0.0.1:{port}/jobline is unreachable"
    )
    assert "db-password" not in line


def test_a_wrong_database_password_is_one_line_naming_it(project: Path) -> None:
    env = {"JOBLINE_DATABASE_URL": "mysql://jobline:wrong-password@127.0.0.1:3306/jobline"}
    line = one_line_error(jobline("migrate", cwd=project, env=env), EXIT_UNAVAILABLE)
    assert "database mysql://jobline:***@127.0.0.1:3306/jobline is unreachable" in line
    assert "Access denied" in line and "wrong-password" not in line


@pytest.mark.parametrize("command", [["serve"], ["worker", "--domain=video"], ["dev"]])
def test_an_unreachable_broker_is_one_line_naming_it(
    command: list[str], project: Path, tmp_path: Path
) -> None:
    port = closed_port()
    env = {
        "JOBLINE_DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}",
        "JOBLINE_BROKER_URL": f"amqp://app:mq-password@127.0.0.1:{port}/jobline",
    }
    line = one_line_error(jobline(*command, cwd=project, env=env), EXIT_UNAVAILABLE)
    assert (
        line
        == f"error: broker amqp://app:***@127.0.0.1:{port}/jobline is unreachable: Connection refused"
    )


def test_debug_adds_the_traceback(project: Path) -> None:
    port = closed_port()
    env = {"JOBLINE_DATABASE_URL": f"mysql://app:pw@127.0.0.1:{port}/jobline"}
    done = jobline("--debug", "migrate", cwd=project, env=env)
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "DatabaseUnavailable" in done.stderr


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_a_green_pool_worker_rerun_patched_still_errs_in_one_line(pool: str, project: Path) -> None:
    """The worker re-runs itself patched (queueing/green.py): its errors stay one line."""
    port = closed_port()
    env = {"JOBLINE_DATABASE_URL": f"mysql://app:db-password@127.0.0.1:{port}/jobline"}
    done = jobline("worker", "--domain=video", f"--pool={pool}", cwd=project, env=env)
    line = one_line_error(done, EXIT_UNAVAILABLE)
    assert line.startswith(f"error: database mysql://app:***@127.0.0.1:{port}/jobline")
