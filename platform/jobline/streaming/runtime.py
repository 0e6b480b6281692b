"""Wiring the streaming parts of a process from its settings."""

from __future__ import annotations

import asyncio

from jobline.config import EMBEDDED_BROKER, Settings
from jobline.streaming.feed import EventFeed, FeedOptions
from jobline.streaming.notify import NoticeListener, Notifier
from jobline.streaming.reader import EventReader


def notices_enabled(settings: Settings) -> bool:
    """Notices need a broker with fanout exchanges; the embedded one has none."""
    return settings.feed_notifications and not settings.broker_url.startswith(EMBEDDED_BROKER)


def start_notifier(settings: Settings) -> Notifier | None:
    """The after-commit hook a process's JobStore publishes notices with (None: polling)."""
    if not notices_enabled(settings):
        return None
    notifier = Notifier(
        settings.broker_url,
        settings.events_exchange,
        buffer=settings.feed_batch,
        retry_seconds=settings.feed_poll_seconds,
        connect_timeout=settings.broker_publish_timeout_seconds,
        probe_seconds=settings.feed_notices_probe_seconds,
    )
    notifier.start()
    return notifier


class StreamingRuntime:
    """An API process's streaming parts: its notifier, its one feed and the notice listener."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.notifier = start_notifier(settings)
        notices = self.notifier is not None
        self.feed = EventFeed(
            EventReader(),
            FeedOptions(
                poll_seconds=(
                    settings.feed_poll_seconds if notices else settings.feed_fast_poll_seconds
                ),
                idle_poll_seconds=settings.feed_poll_seconds,
                min_read_interval=settings.feed_min_read_interval_ms / 1000,
                batch=settings.feed_batch,
                gap_seconds=settings.feed_gap_seconds,
                buffer_events=settings.sse_buffer_events,
            ),
            mode="notices" if notices else "poll",
        )
        self.listener: NoticeListener | None = None

    async def start(self) -> None:
        await self.feed.start()
        if self.notifier is not None:
            self.listener = NoticeListener(
                self.settings.broker_url,
                self.settings.events_exchange,
                asyncio.get_running_loop(),
                self.feed.notified,
                self.feed.wake,
                max_pending=self.settings.feed_batch,
                retry_seconds=self.settings.feed_poll_seconds,
                connect_timeout=self.settings.broker_publish_timeout_seconds,
                stop_check_seconds=self.settings.feed_poll_seconds,
                linger_seconds=self.settings.feed_notices_linger_seconds,
            )
            self.feed.on_demand = self.listener.want
            self.listener.want(self.feed.subscriber_count > 0)
            self.listener.start()

    async def stop(self) -> None:
        timeout = self.settings.broker_publish_timeout_seconds
        if self.listener is not None:
            await asyncio.to_thread(self.listener.stop, timeout)
        await self.feed.stop()
        if self.notifier is not None:
            await asyncio.to_thread(self.notifier.stop, timeout)
