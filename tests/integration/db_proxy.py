"""A TCP proxy in front of MariaDB that a test owns: cut, it is a real outage for the
connections made through it alone; stalled, a database that stops answering."""

from __future__ import annotations

import asyncio
import contextlib


class DatabaseProxy:
    """Forwards TCP to the server of `database_url` (`url` names the proxy instead).

    `cut()`: every connection is reset and new ones are refused. `stall()`: what either
    side sends is held, the connections still open, until `resume()`.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.hostport = database_url.split("@", 1)[1].split("/", 1)[0]
        host, port = self.hostport.split(":")
        self.target = (host, int(port))
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def start(self) -> str:
        """Listen; the database URL through the proxy."""
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = int(self.server.sockets[0].getsockname()[1])
        self.url = self.database_url.replace(self.hostport, f"127.0.0.1:{port}")
        return self.url

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.pipes):
            writer.transport.abort()

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    async def close(self) -> None:
        self.resume()
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.pipes |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    await self.flowing.wait()
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
