"""URLs shown in messages and listings (`jobline check`, start-up failures, the dev server)
never show a password."""

from __future__ import annotations

import pytest

from jobline.config import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://jobline:s3cret@db:3306/jobline", "mysql://jobline:***@db:3306/jobline"),
        ("amqp://guest:p@ss:w@rd@mq:5672//", "amqp://guest:***@mq:5672//"),
        ("sqlite://var/jobline.db", "sqlite://var/jobline.db"),
        ("filesystem://", "filesystem://"),
    ],
)
def test_the_password_is_masked(url: str, shown: str) -> None:
    assert redact_url(url) == shown
