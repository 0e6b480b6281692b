"""py-amqp internals: a transport's `_write`, the one place every frame goes through.
Tested with amqp 5.4.

py-amqp writes each frame as soon as it is framed (`frame_writer` calls
`transport.write`, which calls `transport._write`, the socket's sendall): a batch of
publishes is a system call per message. `one_write` collects them and sends them at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def one_write(connection: Any) -> Iterator[None]:
    """Send the frames written on `connection` (a py-amqp Connection) inside the block in one
    write when it ends; a block that raises sends nothing at all.

    Without the attribute (another transport), each frame is written as usual.
    """
    transport: Any = getattr(connection, "transport", None)
    send = getattr(transport, "_write", None)
    if send is None:
        yield
        return
    frames: list[bytes] = []
    # py-amqp hands over a view of a buffer it reuses for the next frame: copied.
    transport._write = lambda data: frames.append(bytes(data))
    try:
        yield
    finally:
        transport._write = send
    send(b"".join(frames))
