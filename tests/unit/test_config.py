"""Settings: production refuses the unsafe development defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from jobline.config import EMBEDDED_BROKER, SQLITE_DEFAULT, Settings, tortoise_config

SAFE = {
    "database_url": "mysql://app:pw@db:3306/jobline",
    "broker_url": "amqp://app:pw@mq:5672/jobline",
    "secret_key": "s" * 48,
}


def production(**overrides: Any) -> Settings:
    # Explicit values, no .env: the test must not depend on the environment it runs in.
    return Settings(_env_file=None, env="production", **{**SAFE, **overrides})  # type: ignore[call-arg]


def test_safe_production_settings_are_accepted() -> None:
    settings = production()
    assert settings.env == "production"
    assert settings.dialect == "mysql"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"secret_key": ""}, "JOBLINE_SECRET_KEY"),
        ({"secret_key": "short"}, "JOBLINE_SECRET_KEY"),
        ({"database_url": SQLITE_DEFAULT}, "JOBLINE_DATABASE_URL must not be SQLite"),
        ({"database_url": "sqlite:///srv/x.db"}, "JOBLINE_DATABASE_URL must not be SQLite"),
        ({"broker_url": EMBEDDED_BROKER}, "JOBLINE_BROKER_URL must not be the embedded broker"),
    ],
)
def test_production_refuses_an_unsafe_default(override: dict[str, str], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        production(**override)


def test_production_names_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        production(secret_key="", database_url=SQLITE_DEFAULT, broker_url=EMBEDDED_BROKER)
    text = str(caught.value)
    assert "SECRET_KEY" in text and "SQLite" in text and "embedded broker" in text


def test_development_allows_the_embedded_defaults(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="development",
        database_url=SQLITE_DEFAULT,
        broker_url=EMBEDDED_BROKER,
        secret_key="",
        var_dir=tmp_path,
    )
    assert settings.database.embedded
    secret = settings.resolved_secret()
    assert len(secret) >= 32
    assert settings.resolved_secret() == secret, "generated once, then reused"
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_the_mysql_url_gets_its_charset_and_pool_size() -> None:
    settings = production(db_pool_max=7)
    url = tortoise_config(settings)["connections"]["default"]
    assert url.startswith(SAFE["database_url"] + "?")
    assert "charset=utf8mb4" in url and "maxsize=7" in url


def test_production_cookies_are_secure_and_host_prefixed_by_default() -> None:
    from jobline.accounts.backends import cookie_name

    settings = production(cookie_secure=None)
    assert settings.secure_cookies
    assert cookie_name(settings) == "__Host-jobline_auth"
    assert production(cookie_secure=True).secure_cookies


def test_production_refuses_cookies_without_secure() -> None:
    with pytest.raises(ValidationError, match="JOBLINE_COOKIE_SECURE must not be false"):
        production(cookie_secure=False)


def test_development_cookies_work_over_plain_http(tmp_path: Path) -> None:
    from jobline.accounts.backends import cookie_name

    for env in ("development", "test"):
        settings = Settings(_env_file=None, env=env, var_dir=tmp_path, cookie_secure=None)  # type: ignore[call-arg]
        assert not settings.secure_cookies
        assert cookie_name(settings) == "jobline_auth"


def test_registration_is_closed_in_production_unless_opened(tmp_path: Path) -> None:
    assert not production(registration_open=None).registration_is_open
    assert production(registration_open=True).registration_is_open
    for env in ("development", "test"):
        settings = Settings(_env_file=None, env=env, var_dir=tmp_path, registration_open=None)  # type: ignore[call-arg]
        assert settings.registration_is_open


def test_metrics_are_open_in_development_and_closed_in_production_without_a_token() -> None:
    development = Settings(_env_file=None)  # type: ignore[call-arg]
    assert development.metrics_open_without_token()
    assert not production().metrics_open_without_token()
    assert production(metrics_public=True).metrics_open_without_token()
    # A token closes it everywhere, whatever else says.
    assert not production(metrics_token="t", metrics_public=True).metrics_open_without_token()
    token = Settings(_env_file=None, metrics_token="t")  # type: ignore[call-arg]
    assert not token.metrics_open_without_token()


def test_production_refuses_worker_metrics_on_a_public_address() -> None:
    with pytest.raises(ValidationError) as caught:
        production(worker_metrics_port=9100, worker_metrics_host="0.0.0.0")
    assert "JOBLINE_WORKER_METRICS_HOST" in str(caught.value)
    assert production(worker_metrics_port=9100).worker_metrics_host == "127.0.0.1"
    allowed = production(
        worker_metrics_port=9100, worker_metrics_host="0.0.0.0", metrics_public=True
    )
    assert allowed.metrics_public


def test_a_worker_is_lost_only_after_at_least_two_missed_beats() -> None:
    settings = Settings(_env_file=None, worker_lost_seconds=5, worker_heartbeat_seconds=1)  # type: ignore[call-arg]
    assert (settings.worker_lost_seconds, settings.worker_heartbeat_seconds) == (5, 1)
    with pytest.raises(
        ValidationError, match="JOBLINE_WORKER_HEARTBEAT_SECONDS must be at most half"
    ):
        Settings(_env_file=None, worker_lost_seconds=8)  # type: ignore[call-arg]
