"""consumer_timeout derived from queues.yaml, read and written in rabbitmq.conf, and checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobline.cli import app
from jobline.jobs.spec import Queues, load_queues
from jobline.queueing import consumer_timeout
from tests.support import REPO

CONF = """# comment
consumer_timeout = 1800000

management.tcp.port = 15672
"""


@pytest.fixture
def queues() -> Queues:
    return load_queues(REPO / "queues.yaml")


def test_wanted_is_the_longest_time_limit_plus_the_margin(queues: Queues) -> None:
    assert queues.longest_time_limit == 7200  # video's time_limit
    assert consumer_timeout.wanted_ms(queues, 300) == 7_500_000


def test_read_and_write_keep_the_rest_of_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text(CONF)
    assert consumer_timeout.read_ms(conf) == 1_800_000
    assert consumer_timeout.write_ms(7_500_000, conf) is True
    assert conf.read_text() == CONF.replace("1800000", "7500000")
    assert consumer_timeout.write_ms(7_500_000, conf) is False


def test_a_file_without_the_setting_gets_it_appended(tmp_path: Path) -> None:
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text("management.tcp.port = 15672\n")
    assert consumer_timeout.read_ms(conf) is None
    consumer_timeout.write_ms(42, conf)
    assert consumer_timeout.read_ms(conf) == 42


def test_check_names_the_risk_of_a_short_timeout(tmp_path: Path, queues: Queues) -> None:
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text(CONF)
    problem = consumer_timeout.check(queues, 300, conf).problem
    assert problem is not None
    assert "1800000 ms" in problem and "7500000 ms" in problem and "delivered twice" in problem
    consumer_timeout.write_ms(7_500_000, conf)
    assert consumer_timeout.check(queues, 300, conf).problem is None


def test_check_config_warns_when_the_override_disagrees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBLINE_QUEUES_FILE", str(REPO / "queues.yaml"))
    monkeypatch.setenv(consumer_timeout.ENV_OVERRIDE, "1800000")
    from jobline.config import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["check-config"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "warning: consumer_timeout is 1800000 ms in JOBLINE_CONSUMER_TIMEOUT_MS" in result.output
    assert "--write-consumer-timeout" in result.output


def test_the_shipped_rabbitmq_conf_agrees_with_the_shipped_queues(queues: Queues) -> None:
    from jobline.config import Settings

    margin = Settings(_env_file=None).consumer_timeout_margin_seconds  # type: ignore[call-arg]
    assert consumer_timeout.read_ms() == consumer_timeout.wanted_ms(queues, margin)


def test_a_project_without_a_checkout_gets_a_rabbitmq_conf_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """jobline installed as a package: no checkout's deploy/ to read or write."""
    monkeypatch.setattr(consumer_timeout, "RABBITMQ_CONF", tmp_path / "site-packages" / "none")
    monkeypatch.delenv(consumer_timeout.ENV_OVERRIDE, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOBLINE_QUEUES_FILE", str(REPO / "queues.yaml"))
    monkeypatch.syspath_prepend(str(REPO))  # the shipped queues.yaml's tasks
    from jobline.config import get_settings

    get_settings.cache_clear()
    try:
        first = CliRunner().invoke(app, ["check-config"])
        written = CliRunner().invoke(app, ["check-config", "--write-consumer-timeout"])
        again = CliRunner().invoke(app, ["check-config"])
    finally:
        get_settings.cache_clear()
    assert first.exit_code == 0, first.output
    assert "deploy/rabbitmq/rabbitmq.conf sets no consumer_timeout" in first.output
    assert written.exit_code == 0, written.output
    assert "wrote 7500000 ms in deploy/rabbitmq/rabbitmq.conf" in written.output
    conf = tmp_path / "deploy" / "rabbitmq" / "rabbitmq.conf"
    assert conf.read_text() == "consumer_timeout = 7500000\n"
    assert again.exit_code == 0 and "warning" not in again.output, again.output
    assert "consumer_timeout: 7500000 ms (deploy/rabbitmq/rabbitmq.conf)" in again.output


def test_the_checkout_keeps_its_own_rabbitmq_conf_from_any_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert consumer_timeout.conf_path() == consumer_timeout.RABBITMQ_CONF
    assert consumer_timeout.RABBITMQ_CONF.is_relative_to(REPO)
