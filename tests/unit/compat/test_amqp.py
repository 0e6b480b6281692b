"""Contract of compat/amqp.py with py-amqp: every frame goes through the transport's `_write`,
looked up at each write, so `one_write` can collect a batch and send it once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from amqp.basic_message import Message
from amqp.method_framing import frame_writer
from amqp.spec import Basic
from amqp.transport import SSLTransport, TCPTransport

from jobline.compat.amqp import one_write

FRAME_MAX = 131072
FRAMES_PER_PUBLISH = 3  # method, content header, body


class Socket:
    """A socket's sendall, counting calls."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.calls.append(bytes(data))

    def recv(self, size: int) -> bytes:
        raise AssertionError("nothing is read here")


def _publisher(socket: Socket) -> tuple[SimpleNamespace, object]:
    """A py-amqp transport over `socket` and a frame writer on it, as a Connection sets up."""
    transport = TCPTransport.__new__(TCPTransport)
    transport.sock = socket
    transport._setup_transport()  # TCPTransport's own: _write = sock.sendall
    connection = SimpleNamespace(frame_max=FRAME_MAX, bytes_sent=0, transport=transport)
    return connection, frame_writer(connection, transport)


def _publish(write_frame: object, body: bytes) -> None:
    write_frame(1, 1, Basic.Publish, b"", Message(body))  # type: ignore[operator]


def test_each_frame_is_written_through_the_transports_write() -> None:
    socket = Socket()
    _, write_frame = _publisher(socket)
    _publish(write_frame, b"one")
    _publish(write_frame, b"two")
    assert len(socket.calls) == 2  # py-amqp packs a small message's frames in one write
    assert b"one" in socket.calls[0] and b"two" in socket.calls[1]


def test_one_write_sends_a_batch_in_one_call_with_the_same_bytes() -> None:
    plain, batched = Socket(), Socket()
    _, write_plain = _publisher(plain)
    connection, write_batched = _publisher(batched)
    for body in (b"a", b"b", b"c"):
        _publish(write_plain, body)
    with one_write(connection):
        for body in (b"a", b"b", b"c"):
            _publish(write_batched, body)
        assert batched.calls == []  # nothing sent while the batch is framed
    assert batched.calls == [b"".join(plain.calls)]
    assert connection.transport._write == batched.sendall  # restored


def test_a_batch_that_fails_sends_nothing() -> None:
    socket = Socket()
    connection, write_frame = _publisher(socket)
    with pytest.raises(RuntimeError), one_write(connection):
        _publish(write_frame, b"a")
        raise RuntimeError("framing failed")
    assert socket.calls == []
    assert connection.transport._write == socket.sendall


def test_both_transports_have_the_write_one_write_replaces() -> None:
    assert callable(SSLTransport._write)
    assert callable(TCPTransport.write)
