"""`jobline flower`: auth required in production, broker API derived from the broker URL."""

from __future__ import annotations

from typing import Any

import pytest

from jobline.config import Settings
from jobline.errors import ConfigError
from jobline.flower import broker_api, check_auth, flower_argv

PROD: dict[str, Any] = {
    "env": "production",
    "secret_key": "k" * 40,
    "database_url": "mysql://u:p@db:3306/jobline",
    "broker_url": "amqp://jobline:pa%40ss@rabbit:5672/jobline",
}


def test_production_refuses_flower_without_basic_auth() -> None:
    with pytest.raises(ConfigError, match="JOBLINE_FLOWER_BASIC_AUTH"):
        check_auth(Settings(**PROD))
    assert check_auth(Settings(**PROD, flower_basic_auth="ops:pw")) == "ops:pw"


def test_development_may_run_flower_without_auth_but_not_with_a_malformed_one() -> None:
    assert check_auth(Settings(env="development", flower_basic_auth=None)) is None
    for bad in ("ops", "ops:", ":pw", "a:b,c"):
        with pytest.raises(ConfigError):
            check_auth(Settings(env="development", flower_basic_auth=bad))


def test_the_broker_tab_uses_rabbitmqs_management_api() -> None:
    assert broker_api(Settings(**PROD)) == "http://jobline:pa%40ss@rabbit:15672/api/"
    explicit = Settings(**PROD, flower_broker_api="http://m:15672/api/")
    assert broker_api(explicit) == "http://m:15672/api/"
    assert broker_api(Settings(env="development", broker_url="filesystem://")) is None


def test_flower_forgets_offline_workers_after_the_setting_and_never_sees_credentials() -> None:
    settings = Settings(**PROD, flower_basic_auth="ops:pw", flower_port=5600)
    argv = flower_argv(settings)
    # A restarted worker process is a new node (NAME@host:pid); its old name goes offline.
    assert argv == [
        "flower",
        "--address=127.0.0.1",
        "--port=5600",
        "--enable_events=False",
        "--purge_offline_workers=600",
    ]
    assert not any("pw" in arg for arg in argv)
    kept = flower_argv(Settings(**PROD, flower_purge_offline_seconds=None), "0.0.0.0", 80)
    assert kept == ["flower", "--address=0.0.0.0", "--port=80", "--enable_events=False"]
