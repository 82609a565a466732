"""A bare HTTP/1.1 client on asyncio streams, for load generators that must not be the bottleneck.

httpx spends about a millisecond of CPU per request in the bench's own process; at 200 alerts/s,
each posted and then read, that was most of a core and the generator itself fell behind its schedule
(45 of 200 alerts/s offered in the run of 9c4649f). This client writes a request's bytes and reads the
status line, the headers and a ``Content-Length`` or chunked body: tens of microseconds a request.
It speaks only what the bench needs: keep-alive connections to one host, no TLS, no redirects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class HTTPError(Exception):
    """The connection failed or the answer was not HTTP/1.1 as expected."""


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    def _request_bytes(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def _head(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
        raw = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HTTPError(f"not an HTTP/1.1 answer: {status_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        """Sends one request and reads its whole answer: (status, body). Reconnects once if a kept-alive
        connection was closed by the server before this request."""
        for attempt in (1, 2):
            try:
                reader, writer = await self._open()
                writer.write(self._request_bytes(method, path, headers, body))
                status, answer_headers = await self._head(reader)
                if answer_headers.get("transfer-encoding", "").lower() == "chunked":
                    content = b"".join([chunk async for chunk in _chunks(reader)])
                else:
                    content = await reader.readexactly(int(answer_headers.get("content-length", "0")))
                if answer_headers.get("connection", "").lower() == "close":
                    self.close()
                return status, content
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
                self.close()
                if attempt == 2:
                    raise HTTPError(str(error) or type(error).__name__) from error
        raise AssertionError("unreachable")

    async def stream(self, path: str, headers: dict[str, str]) -> AsyncIterator[bytes]:
        """GET ``path`` and yield its body's chunks as they come (a server-sent event stream); the
        connection is this stream's alone."""
        try:
            reader, writer = await self._open()
            writer.write(self._request_bytes("GET", path, headers, b""))
            status, answer_headers = await self._head(reader)
            if status != 200:
                raise HTTPError(f"GET {path} answered {status}")
            if answer_headers.get("transfer-encoding", "").lower() == "chunked":
                async for chunk in _chunks(reader):
                    yield chunk
            else:
                while data := await reader.read(65536):
                    yield data
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
            raise HTTPError(str(error) or type(error).__name__) from error
        finally:
            self.close()


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers are sent to us
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]


class Pool:
    """Up to ``size`` kept-alive connections to one base URL; a request waits for a free one."""

    def __init__(self, base_url: str, size: int) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http://host:port base URLs: {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self._free: asyncio.LifoQueue[Connection] = asyncio.LifoQueue()
        for _ in range(size):
            self._free.put_nowait(Connection(self.host, self.port))

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        connection = await self._free.get()
        try:
            return await connection.request(method, path, headers, body)
        finally:
            self._free.put_nowait(connection)

    def close(self) -> None:
        while not self._free.empty():
            self._free.get_nowait().close()
