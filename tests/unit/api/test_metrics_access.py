"""Who may read /metrics: api/observe.metrics_allowed."""

from __future__ import annotations

from typing import Any

from jobline.api.observe import metrics_allowed
from jobline.config import Settings

SAFE = {
    "env": "production",
    "database_url": "mysql://app:pw@db:3306/jobline",
    "broker_url": "amqp://app:pw@mq:5672/jobline",
    "secret_key": "s" * 48,
}


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **{**SAFE, **overrides})  # type: ignore[call-arg]


def test_the_token_as_a_bearer_and_nothing_else() -> None:
    with_token = settings(metrics_token="s3cret")
    assert metrics_allowed(with_token, "Bearer s3cret")
    assert metrics_allowed(with_token, "bearer  s3cret ")
    for header in (None, "", "Bearer", "Bearer s3cre", "Bearer s3cretx", "Basic s3cret", "s3cret"):
        assert not metrics_allowed(with_token, header), header
    assert not metrics_allowed(with_token, "Bearer sécret")


def test_production_without_a_token_serves_nobody_unless_public() -> None:
    assert not metrics_allowed(settings(), None)
    assert not metrics_allowed(settings(), "Bearer anything")
    assert metrics_allowed(settings(metrics_public=True), None)
