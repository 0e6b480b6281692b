"""kombu's filesystem transport (the embedded broker), with a message file that appears whole.
Tested with kombu 5.7.

kombu's `Channel._put` opens `<time>_<uuid>.<queue>.msg` in the queue folder and then writes
the message into it. A consumer polling the folder can see the file between the two, move
it away and read zero or half the bytes: `loads` then raises in the worker's consumer loop,
which Celery takes for an unrecoverable error, and the worker exits with code 1 (`jobline
dev` then stops everything). It happened in CI, on a loaded machine.

Here a message is written under a name no queue matches (`.part`: `_get`, `_size` and
`_purge` take only names whose text after the first dot is `<queue>.msg`), then renamed to
its real name, which a rename does at once: a consumer sees no file or the whole message.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# Not `<anything>.<queue>.msg`: invisible to every reader of the folder until renamed.
PARTIAL_SUFFIX = ".part"


class Channel(filesystem.Channel):  # type: ignore[misc]  # kombu ships no types
    """The filesystem channel, writing each message whole."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # kombu's own name (the folder is read in name order: milliseconds first).
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        final = os.path.join(folder, name)
        partial = os.path.join(folder, f"{uuid.uuid4()}{PARTIAL_SUFFIX}")
        try:
            with open(partial, "wb", buffering=0) as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):  # type: ignore[misc]  # kombu ships no types
    """`filesystem://` with Channel above: Celery's `broker_transport` names this class."""

    Channel = Channel
