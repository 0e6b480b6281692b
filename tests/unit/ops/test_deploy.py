"""deploy/: the committed supervisor and compose files are what queues.yaml generates."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from jobline.deploy import compose_yaml, supervisor_conf, worker_programs
from jobline.jobs.spec import Queues, load_queues
from tests.support import REPO

DEPLOY = REPO / "deploy"
LONG_RUNNING_WITH_PROBES = {"mariadb", "rabbitmq", "api", "flower"}


def shipped_queues() -> Queues:
    return load_queues(REPO / "queues.yaml", check_imports=False)


def test_the_committed_supervisor_conf_is_what_the_generator_writes() -> None:
    committed = (DEPLOY / "supervisor" / "jobline.conf").read_text()
    assert committed == supervisor_conf(shipped_queues()), (
        "deploy/supervisor/jobline.conf is out of step with queues.yaml: "
        "run `jobline deploy supervisor`"
    )


def test_supervisor_runs_the_api_a_worker_per_domain_the_relay_and_flower() -> None:
    queues = shipped_queues()
    conf = parsed((DEPLOY / "supervisor" / "jobline.conf").read_text())
    programs = {s.removeprefix("program:") for s in conf.sections() if s.startswith("program:")}
    assert programs == {
        "jobline-api",
        "jobline-relay",
        "jobline-flower",
        *(f"jobline-worker-{d}" for d in queues.domains),
    }
    assert conf["group:jobline"]["programs"].split(",") == sorted(
        programs, key=list(conf["group:jobline"]["programs"].split(",")).index
    )
    assert (
        "gunicorn -c python:jobline.gunicorn_conf jobline.app:create_app()"
        in conf["program:jobline-api"]["command"]
    )
    for name, domain in queues.domains.items():
        section = conf[f"program:jobline-worker-{name}"]
        assert section["command"].endswith(
            f"jobline worker --domain={name} --pool={domain.pool} --concurrency={domain.concurrency}"
        )
        longest = max(jt.policy.time_limit for jt in queues.domain_types(name))
        # deploy/README: "the domain's longest time_limit plus 30 s".
        assert int(section["stopwaitsecs"]) == longest + 30, "a stop lets running jobs finish"
        # TERM to the worker alone lets its prefork children finish their jobs; a KILL
        # after stopwaitsecs takes the whole group.
        assert (section["stopasgroup"], section["killasgroup"]) == ("false", "true")
        assert int(section["numprocs"]) == domain.processes
        assert "%(process_num)d" in section["process_name"]


def test_processes_of_a_domain_are_numprocs_each_with_its_own_metrics_port_and_log() -> None:
    queues = changed_domain(shipped_queues(), "music", processes=3)
    conf = parsed(supervisor_conf(queues, log_dir="/tmp/logs", metrics_port=9300))
    music, video = conf["program:jobline-worker-music"], conf["program:jobline-worker-video"]
    # Supervisor numbers the processes 9300, 9301, 9302: each serves /metrics on its number.
    assert (music["numprocs"], music["numprocs_start"]) == ("3", "9300")
    assert (video["numprocs"], video["numprocs_start"]) == ("1", "9303")
    for section in (music, video):
        assert section["process_name"] == "%(program_name)s-%(process_num)d"
        assert section["environment"] == 'JOBLINE_WORKER_METRICS_PORT="%(process_num)d"'
    assert music["stdout_logfile"] == "/tmp/logs/worker-music-%(process_num)d.log"
    assert conf["program:jobline-api"]["stdout_logfile"] == "/tmp/logs/api.log"
    assert [(w.metrics_port, w.processes) for w in worker_programs(queues, 9300)] == [
        (9300, 3),
        (9303, 1),
    ]


def test_compose_runs_replicas_of_a_domain_with_processes() -> None:
    queues = changed_domain(shipped_queues(), "music", processes=2)
    services = yaml.safe_load(compose_yaml(queues))["services"]
    music, video = services["worker-music"], services["worker-video"]
    assert music["deploy"] == {"replicas": 2}
    # Replicas run the worker as the same pid: one shared hostname would give them one name.
    assert "hostname" not in music
    assert video["hostname"] == "worker-video" and "deploy" not in video


def changed_domain(queues: Queues, name: str, **update: Any) -> Queues:
    """The queues with one domain's keys changed, as an edit of queues.yaml would."""
    domain = queues.domains[name].model_copy(update=update)
    return Queues(
        queues.path,
        queues.raw.model_copy(update={"domains": {**queues.domains, name: domain}}),
        queues.job_types,
    )


def parsed(text: str) -> configparser.ConfigParser:
    conf = configparser.ConfigParser(interpolation=None)
    conf.read_string(text)
    return conf


def test_a_changed_queues_yaml_changes_the_generated_programs() -> None:
    queues = shipped_queues()
    changed = changed_domain(queues, "music", concurrency=7, pool="threads")
    assert "--domain=music --pool=threads --concurrency=7" in supervisor_conf(changed)
    assert "--domain=music --pool=threads --concurrency=7" not in supervisor_conf(queues)


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def test_the_committed_compose_file_is_what_the_generator_writes() -> None:
    committed = (DEPLOY / "compose.yaml").read_text()
    assert committed == compose_yaml(shipped_queues()), (
        "deploy/compose.yaml is out of step with queues.yaml: run `jobline deploy compose`"
    )


def test_compose_has_a_worker_service_per_domain_of_queues_yaml() -> None:
    queues = shipped_queues()
    services = compose()["services"]
    workers = {name for name in services if name.startswith("worker-")}
    assert workers == {f"worker-{d}" for d in queues.domains}
    for program in worker_programs(queues):
        service = services[f"worker-{program.domain}"]
        domain = queues.domains[program.domain]
        assert service["command"] == [
            "jobline",
            "worker",
            f"--domain={program.domain}",
            f"--pool={domain.pool}",
            f"--concurrency={domain.concurrency}",
        ]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["healthcheck"]["test"][0] == "CMD"
        assert str(program.metrics_port) in " ".join(service["healthcheck"]["test"])


def test_compose_stack_mariadb_rabbitmq_migrations_api_flower_health_and_volumes() -> None:
    data = compose()
    services = data["services"]
    assert {"mariadb", "rabbitmq", "migrate", "api", "flower", "relay"} <= set(services)
    for name in LONG_RUNNING_WITH_PROBES:
        assert services[name]["healthcheck"]["test"], name

    mariadb = services["mariadb"]
    mounts = dict(v.split(":", 1) for v in mariadb["volumes"])
    cnf = mounts["./mysql/jobline.cnf"]
    assert cnf.startswith("/etc/mysql/conf.d/")
    assert "max_allowed_packet" in (DEPLOY / "mysql" / "jobline.cnf").read_text()

    rabbit = services["rabbitmq"]
    assert "management" in rabbit["image"]
    rabbit_mounts = dict(v.split(":", 1) for v in rabbit["volumes"])
    assert "./rabbitmq/rabbitmq.conf" in rabbit_mounts
    assert (DEPLOY / "rabbitmq" / "rabbitmq.conf").exists()

    # Every named volume a service uses is declared; bind mounts point at files that exist.
    declared = set(data["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
            else:
                assert source in declared, source
        for dependency in service.get("depends_on", {}):
            assert dependency in services
    assert declared == {"mariadb-data", "rabbitmq-data"}

    assert services["migrate"]["command"] == ["jobline", "migrate"]
    assert services["api"]["command"] == ["gunicorn", "-c", "deploy/gunicorn.conf.py", "asgi:app"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    flower_env = services["flower"]["environment"]
    assert "JOBLINE_FLOWER_BASIC_AUTH" in flower_env
    assert flower_env["JOBLINE_FLOWER_BROKER_API"].endswith("@rabbitmq:15672/api/")
    # The build the services share exists.
    build = services["migrate"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve().exists()


def test_every_compose_service_passes_the_production_checks() -> None:
    """Production refuses unsafe settings (config.py): the generated services must not be."""
    from jobline.config import Settings

    secrets = {
        "JOBLINE_SECRET_KEY": "s" * 48,
        "JOBLINE_DB_PASSWORD": "db",
        "JOBLINE_RABBITMQ_PASSWORD": "mq",
        "JOBLINE_FLOWER_BASIC_AUTH": "admin:pw",
    }
    for name, service in compose()["services"].items():
        env = service.get("environment") or {}
        if env.get("JOBLINE_ENV") != "production":
            continue
        values: dict[str, Any] = {}
        for key, value in env.items():
            text = str(value)
            for secret, replacement in secrets.items():
                text = re.sub(r"\$\{" + secret + r"[^}]*\}", replacement, text)
            values[key.removeprefix("JOBLINE_").lower()] = text
        settings = Settings(_env_file=None, **values)
        assert settings.env == "production", name


def test_gunicorn_starts_from_an_empty_metrics_directory(tmp_path: Path) -> None:
    """deploy/README: PROMETHEUS_MULTIPROC_DIR is 'emptied when gunicorn starts'."""
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    (metrics / "counter_1234.db").write_bytes(b"a previous run's samples")
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "JOBLINE_ENV": "development",
        "JOBLINE_VAR_DIR": str(tmp_path / "var"),
    }
    # A process of its own: the module reads its directory once, at import, as gunicorn's
    # master does.
    code = "import jobline.gunicorn_conf as conf; conf.on_starting(None); print(conf.keepalive)"
    env["JOBLINE_UVICORN_KEEP_ALIVE_SECONDS"] = "7"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        check=True,
        cwd=tmp_path,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert metrics.is_dir() and list(metrics.iterdir()) == []
    # README, slow clients: gunicorn's keepalive is JOBLINE_UVICORN_KEEP_ALIVE_SECONDS too.
    assert done.stdout.split() == ["7"]
