"""Webhook targets: only public addresses unless private ones are allowed (against a real HTTP receiver)."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest

from shared import egress
from shared.egress import EgressRefused, refusal_for_url, webhook_client, why_not_public


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("192.168.0.10", "a private address"),
        ("169.254.169.254", "a link-local address"),  # cloud metadata services
        ("fe80::1", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("100.64.0.1", "a non-public address"),  # carrier-grade NAT
        ("224.0.0.1", "a multicast address"),
        ("2002:7f00:1::", "a loopback address"),  # 6to4 carrying 127.0.0.1
        ("2002:a00:7::", "a private address"),  # 6to4 carrying 10.0.0.7
    ],
)
def test_non_public_addresses_are_named(address, kind):
    assert why_not_public(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "20.190.128.1", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert why_not_public(ipaddress.ip_address(address)) is None


def test_urls_are_judged_by_their_literal_host_without_dns():
    assert refusal_for_url("http://localhost:8080/hook") == "localhost is a loopback name"
    assert refusal_for_url("http://[::1]/hook") == "::1 is a loopback address"
    assert refusal_for_url("https://10.0.0.7/hook") == "10.0.0.7 is a private address"
    assert refusal_for_url("https://tickets.example/hook") is None  # a name: judged when connecting
    assert refusal_for_url("https://8.8.8.8/hook") is None
    # The shorthand IPv4 forms a resolver accepts are literals too.
    for shorthand in ("127.1", "2130706433", "0x7f000001"):
        assert refusal_for_url(f"http://{shorthand}/hook") == f"{shorthand} is a loopback address"


async def test_the_guarded_client_refuses_a_private_receiver_that_the_open_one_reaches(receiver):
    url = receiver.url("/guarded")
    async with webhook_client(allow_private=False) as guarded:
        with pytest.raises(EgressRefused, match="127.0.0.1, a loopback address"):
            await guarded.post(url, content=b"{}")
        # A name resolving to a private address is refused too (localhost, resolved at connect time).
        with pytest.raises(EgressRefused, match="loopback"):
            await guarded.post(url.replace("127.0.0.1", "localhost"), content=b"{}")
    assert receiver.calls("/guarded") == []
    async with webhook_client(allow_private=True) as open_client:
        assert (await open_client.post(url, content=b"{}")).status_code == 200
    assert len(receiver.calls("/guarded")) == 1


async def test_the_guarded_client_connects_to_the_address_it_checked(receiver, monkeypatch):
    # Treat loopback as public for this test: the request must then go through the guarded
    # connection path (resolved by the guard, connected by address) and arrive whole.
    monkeypatch.setattr(egress, "why_not_public", lambda address: None)
    url = receiver.url("/pinned").replace("127.0.0.1", "localhost")
    async with webhook_client(allow_private=False) as guarded:
        response = await guarded.post(url, content=b'{"x": 1}', headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 200
    [call] = receiver.calls("/pinned")
    assert call.body == b'{"x": 1}' and call.headers["host"].startswith("localhost:")


async def test_a_lookup_slower_than_the_connect_timeout_is_a_connect_timeout(monkeypatch):
    async def never_answers(*args, **kwargs):
        await asyncio.Event().wait()

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", never_answers)
    async with webhook_client(allow_private=False, timeout=httpx.Timeout(10, connect=0.3)) as guarded:
        with pytest.raises(httpx.ConnectTimeout):
            await guarded.post("https://tickets.example/hook", content=b"{}")
