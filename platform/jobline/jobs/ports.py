"""What the jobs domain needs from the outside, as protocols: the adapters implement them.

The domain (service.py, batching.py) depends on these and never on the broker's code;
`jobline.queueing.relay` implements `Publisher` over Celery/RabbitMQ and the outbox, and
`jobline.queueing.relay.wire` is the one place that builds it. Imports run one way: from
the adapters into the domain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol
from uuid import UUID

from jobline.jobs.outbox import Dispatch
from jobline.jobs.projection import JobView


class Publisher(Protocol):
    """Sends stored job attempts to their workers, from their claimed outbox rows.

    The contract: a job is stored with its outbox row before it is published, so a publish
    that fails, times out or never happens is retried by the relay from that row; the
    `queued` event commits with the row's deletion. Nothing here may raise for a broker
    failure: the answer is None (publish) or None per job (publish_many).
    """

    lease: float
    """Seconds a claim holds an outbox row: nobody else publishes it before then."""

    @property
    def healthy(self) -> bool:
        """Whether publishing lately worked; when not, requests leave it to the relay."""
        ...

    @property
    def batches(self) -> bool:
        """Whether publish_many is available (a confirming channel to the broker)."""
        ...

    async def publish(self, dispatch: Dispatch, view: JobView | None = None) -> JobView | None:
        """Publish one claimed row; the job's view after, or None when the broker failed.

        `view` is the job as its caller just stored it, which spares reading it again.
        """
        ...

    async def publish_many(
        self,
        dispatches: Sequence[Dispatch],
        views: Mapping[UUID, JobView],
        request_ids: Mapping[UUID, str] | None = None,
    ) -> dict[UUID, JobView | None]:
        """publish() for many claimed rows of jobs just stored (`views`), in one round trip."""
        ...

    async def revoke(self, task_id: str) -> None:
        """Ask the workers to drop a queued message unrun (best effort, bounded in time)."""
        ...
