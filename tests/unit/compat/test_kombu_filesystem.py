"""Contract of compat/kombu_filesystem.py with kombu's filesystem transport: its readers skip
a `.part` file, so a message appears to a consumer whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection
from kombu.exceptions import ChannelError
from kombu.utils.json import dumps

from jobline.compat import kombu_filesystem
from jobline.config import EMBEDDED_BROKER, Settings
from jobline.jobs.spec import load_queues
from jobline.queueing.app import broker_options, create_celery

QUEUE = "music"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "queue").mkdir()
    return tmp_path / "queue"


def _channel(folder: Path) -> Any:
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    connection = Connection("filesystem://", transport=kombu_filesystem.Transport)
    connection.transport_options.update(options)
    return connection.default_channel


@pytest.fixture
def channel(folder: Path) -> Iterator[Any]:
    channel = _channel(folder)
    yield channel
    channel.connection.client.release()


def test_a_message_is_read_back_whole_and_no_partial_file_is_left(
    channel: Any, folder: Path
) -> None:
    channel._put(QUEUE, {"body": "x" * 100_000})
    assert [p.name.endswith(f".{QUEUE}.msg") for p in folder.iterdir()] == [True]
    assert channel._size(QUEUE) == 1
    assert channel._get(QUEUE) == {"body": "x" * 100_000}
    assert list(folder.iterdir()) == []


def test_kombu_readers_skip_a_partial_file(channel: Any, folder: Path) -> None:
    """What the rename relies on: `_get`, `_size` and `_purge` take only `<...>.<queue>.msg`."""
    (folder / f"1234-{QUEUE}{kombu_filesystem.PARTIAL_SUFFIX}").write_bytes(b'{"half')
    with pytest.raises(Empty):
        channel._get(QUEUE)
    assert channel._size(QUEUE) == 0
    assert channel._purge(QUEUE) == 0
    assert len(list(folder.iterdir())) == 1


def test_while_a_message_is_written_a_consumer_sees_nothing(
    channel: Any, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the last moment before the rename, the file is complete and no reader takes it."""
    seen: list[tuple[int, str]] = []
    rename: Callable[[str, str], None] = os.replace

    def look_then_rename(src: str, dst: str) -> None:
        with pytest.raises(Empty):
            channel._get(QUEUE)
        seen.append((channel._size(QUEUE), Path(src).read_text()))
        rename(src, dst)

    monkeypatch.setattr("jobline.compat.kombu_filesystem.os.replace", look_then_rename)
    channel._put(QUEUE, {"n": 1})
    assert seen == [(0, dumps({"n": 1}))]
    assert channel._get(QUEUE) == {"n": 1}


def test_a_failed_write_leaves_no_file(
    channel: Any, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: str, dst: str) -> None:
        raise PermissionError(dst)

    monkeypatch.setattr("jobline.compat.kombu_filesystem.os.replace", refuse)
    with pytest.raises(ChannelError):
        channel._put(QUEUE, {"n": 1})
    assert list(folder.iterdir()) == []


def test_the_embedded_broker_uses_this_transport(tmp_path: Path) -> None:
    # The embedded default, whatever the test run's environment names.
    settings = Settings(env="development", var_dir=tmp_path, broker_url=EMBEDDED_BROKER)
    app = create_celery(settings, load_queues(settings.queues_file))
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, kombu_filesystem.Transport)
        assert connection.transport_options == broker_options(settings)
