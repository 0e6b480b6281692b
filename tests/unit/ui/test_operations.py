"""The operations page's broker part: RabbitMQ's management API, or saying there is none."""

from __future__ import annotations

from jobline.config import Settings
from jobline.ui.operations import _without_credentials, queue_depths


async def test_without_a_management_api_the_page_says_so() -> None:
    settings = Settings(broker_url="filesystem://", secret_key="x" * 40)
    api, problem, queues = await queue_depths(settings, {"music": "music", "video": "video"})
    assert api is None
    assert problem is not None and "management API" in problem
    assert [(q.domain, q.queue, q.consumers) for q in queues] == [
        ("music", "music", None),
        ("video", "video", None),
    ]


async def test_an_unreachable_management_api_is_named_without_its_password() -> None:
    settings = Settings(
        broker_url="amqp://guest:s3cret@127.0.0.1:1/vhost",
        flower_broker_api="http://guest:s3cret@127.0.0.1:1/api/",
        secret_key="x" * 40,
    )
    api, problem, _ = await queue_depths(settings, {"music": "music"})
    assert api == "http://127.0.0.1:1/api"
    assert problem is not None and "did not answer" in problem
    assert "s3cret" not in _without_credentials("http://guest:s3cret@host:15672/api/")
