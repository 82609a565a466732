"""Outbound HTTP only to public addresses: a guard against server-side request forgery (SSRF).

A tenant's admin sets the URL of a ticketing channel; the notifier POSTs alerts there and keeps the
start of the answer in the delivery log, which the tenant can read. Without a guard, that URL could
name an address inside our network (a metadata service, a database's HTTP port, the other
services) and read from it. So by default a delivery may only connect to globally routable
addresses:

- the write API refuses a channel URL whose host is a loopback, private, link-local or otherwise
  non-public IP literal, or ``localhost`` (``refusal_for_url``: a clear 422 at once);
- the notifier resolves the host itself when it connects and refuses the connection if any address
  is not public, then connects to the address it checked (``GuardedTransport``), so a name that
  resolves differently a moment later (DNS rebinding) cannot slip through. TLS still verifies the
  certificate against the host name of the URL.

``WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true`` lifts the guard, for a deployment whose ticketing systems
live on its private network, and for local development and tests (receivers on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(Exception):
    """The destination is not a public address (and private ones are not allowed)."""


def why_not_public(address: IPAddress) -> str | None:
    """None for a globally routable address; otherwise what it is (for the message)."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4 carried inside IPv6 (mapped, 6to4, Teredo) is judged by the IPv4 address it carries.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None and (reason := why_not_public(embedded)) is not None:
            return reason
        if address.ipv4_mapped is not None:
            return None
    for kind, flag in (
        ("a loopback", address.is_loopback),
        ("an unspecified", address.is_unspecified),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
    ):
        if flag:
            return f"{kind} address"
    return None if address.is_global else "a non-public address"


def refusal_for_url(url: str) -> str | None:
    """Why a URL may not be a webhook target, judged without DNS (an IP literal or ``localhost``)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is a loopback name"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:  # the shorthand forms the resolver also accepts: 127.1, 2130706433, 0x7f000001
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None  # a name: checked when the notifier connects
    reason = why_not_public(address)
    return None if reason is None else f"{host} is {reason}"


async def public_addresses(host: str, port: int, timeout: float | None = None) -> list[str]:
    """The addresses ``host`` resolves to, all of them public; raises :class:`EgressRefused` otherwise."""
    try:
        async with asyncio.timeout(timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s") from exc
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    if not infos:
        raise httpcore.ConnectError(f"{host} resolves to no address")
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for text in addresses:
        reason = why_not_public(ipaddress.ip_address(text.split("%", 1)[0]))
        if reason is not None:
            raise EgressRefused(f"{host} resolves to {text}, {reason}; not a permitted webhook target")
    return addresses


class _PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """Connects only to public addresses, to the very address it checked."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # One connect timeout for the lookup and every attempt together, as for a plain connect.
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        last: Exception | None = None
        for address in await public_addresses(host, port, timeout):
            remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if remaining is not None and remaining <= 0:
                raise httpcore.ConnectTimeout(f"connecting to {host} took longer than {timeout} s")
            try:
                return await self._inner.connect_tcp(address, port, remaining, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address for {host}")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, whose connections go through :class:`_PublicOnlyBackend`.

    httpx has no public hook for the network backend, so the connection pool it built is replaced by
    an equal one with the guarded backend (``test_egress.py`` fails loudly should httpx change this).
    """

    def __init__(
        self, *, verify: bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),  # httpx's
    ) -> None:
        super().__init__(verify=verify, limits=limits)
        pool = self._pool
        if not isinstance(pool, httpcore.AsyncConnectionPool):  # pragma: no cover - httpx changed
            raise RuntimeError("httpx's transport no longer has the expected connection pool")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=pool._ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PublicOnlyBackend(httpcore.AnyIOBackend()),
        )


def webhook_client(allow_private: bool, **options: Any) -> httpx.AsyncClient:
    """The HTTP client for webhook deliveries: guarded unless private addresses are allowed."""
    if allow_private:
        return httpx.AsyncClient(**options)
    return httpx.AsyncClient(transport=GuardedTransport(), **options)
