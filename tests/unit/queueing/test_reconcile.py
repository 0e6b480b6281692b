"""Reconciliation's pure parts: what the broker may hold, which brokers can be reconciled,
where the management API is, and a worker's view of a message's generation."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from jobline.config import Settings, management_api
from jobline.jobs.events import FIRST_GENERATION, EventType
from jobline.jobs.projection import JobView
from jobline.jobs.states import JobState
from jobline.queueing.delivery import stale, started_data
from jobline.queueing.dispatch import message_kwargs
from jobline.queueing.reconcile import BrokerCount, reconcilable
from tests.support import REPO


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, secret_key="x" * 40, **values)  # type: ignore[call-arg, arg-type]


def view(generation: int = FIRST_GENERATION) -> JobView:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return JobView(
        id=uuid.uuid4(),
        type="music.transcode",
        queue="music",
        state=JobState.QUEUED,
        owner_id=None,
        payload={"source": "a.wav"},
        priority=0,
        created_at=now,
        updated_at=now,
        generation=generation,
    )


def test_without_the_management_api_every_consumer_may_hold_its_whole_prefetch() -> None:
    assert BrokerCount(ready=3, consumers=2).held(per_consumer=4) == 11


def test_the_management_api_sample_replaces_the_prefetch_bound() -> None:
    # Idle workers hold nothing: a loss smaller than their prefetch is still found.
    count = BrokerCount(ready=0, consumers=5, sampled_ready=1, sampled_unacked=0)
    assert count.held(per_consumer=10) == 1


def test_a_stale_sample_never_counts_fewer_than_the_ready_messages_now() -> None:
    count = BrokerCount(ready=7, consumers=1, sampled_ready=2, sampled_unacked=1)
    assert count.held(per_consumer=10) == 7


def test_only_rabbitmq_is_reconciled() -> None:
    assert reconcilable(settings(broker_url="amqp://u:p@h:5672/v")) is None
    why = reconcilable(settings(broker_url="filesystem://"))
    assert why is not None and "RabbitMQ" in why


def test_the_management_api_is_derived_from_the_first_broker_url() -> None:
    derived = management_api(settings(broker_url="amqp://u:p%40@one:5672/v;amqp://u:p@two/v"))
    assert derived == "http://u:p%40@one:15672/api/"
    chosen = settings(broker_url="amqp://u:p@h/v", flower_broker_api="http://m:1/api/")
    assert management_api(chosen) == "http://m:1/api/"
    assert management_api(settings(broker_url="filesystem://")) is None


def test_every_message_carries_its_job_and_generation() -> None:
    job = view(generation=3)
    assert message_kwargs(job) == {"job_id": str(job.id), "payload": job.payload, "generation": 3}


def test_a_message_older_than_the_job_is_stale_and_a_current_one_is_not() -> None:
    assert stale(view(generation=2), 1)
    assert not stale(view(generation=2), 2)
    # A message published before generations existed is the first generation.
    assert not stale(view(), FIRST_GENERATION)


def test_started_names_the_generation_only_once_the_job_was_published_again() -> None:
    assert started_data("w@h", "d", FIRST_GENERATION) == {"worker": "w@h", "delivery": "d"}
    assert started_data("w@h", "d", 2)["generation"] == 2


def test_the_dashboard_knows_every_event_type() -> None:
    # It subscribes to each type by name: an event of a type it does not list is not shown.
    script = (REPO / "platform/jobline/ui/static/common.js").read_text()
    listed = re.search(r"const EVENT_TYPES = \[(.*?)\];", script, re.S)
    assert listed is not None
    assert set(re.findall(r'"(\w+)"', listed.group(1))) == {t.value for t in EventType}
    after = re.search(r"const STATE_AFTER = \{(.*?)\};", script, re.S)
    assert after is not None and 'requeued: "queued"' in after.group(1)


def test_the_defaults_publish_a_loss_again_within_a_minute() -> None:
    # A job counts once queued longer than the grace; the first round after that finds it,
    # the next confirms it; one more interval for the management API's statistics (a
    # sample up to 5 s old can still show the lost messages); the relay's next round
    # publishes the outbox row.
    defaults = settings()
    worst = (
        defaults.reconcile_grace_seconds
        + 3 * defaults.reconcile_interval_seconds
        + defaults.relay_interval_seconds
    )
    assert worst <= 60


def test_an_interval_of_zero_turns_reconciliation_off() -> None:
    """`JOBLINE_RECONCILE_INTERVAL_SECONDS=0` (documented "0: never"; bench/ uses it where it
    purges its queue): the relay runs no reconcile loop; any other interval, on RabbitMQ, does."""
    from jobline.jobs.spec import load_queues
    from jobline.jobs.store import JobStore
    from jobline.queueing.app import create_celery
    from jobline.queueing.relay import wire

    amqp = "amqp://guest:guest@127.0.0.1:5672//"
    for interval, runs in ((0.0, False), (10.0, True)):
        config = settings(broker_url=amqp, reconcile_interval_seconds=interval)
        queues = load_queues(REPO / "queues.yaml")
        _, relay = wire(config, queues, create_celery(config, queues), JobStore())
        assert (relay.reconcile is not None) is runs, interval
