"""The Graph client against the emulator (a real HTTP server: tests/support/graph_emulator.py): sign-in
by secret and by certificate, the token kept and renewed, paging, every failure of its kind.

No Kafka, PostgreSQL or Redis: each test uses a directory of its own on the session's emulator.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import pytest_asyncio

from services.ingest.graph.client import (
    GraphClient,
    GraphError,
    GraphRefused,
    GraphThrottled,
    GraphUnavailable,
    SignInRefused,
)
from services.ingest.graph.credentials import GraphCredentials
from tests.support.graph_emulator import GraphEmulator, make_certificate
from tests.support.peers import Receiver
from tests.support.processes import free_port

SECRET = "Qx8~secret.value-of-the-app"


class FakeClock:
    """The client's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def _app(graph: GraphEmulator, *, lifetime: int = 3599) -> GraphCredentials:
    """An app registration with a client secret, in a directory of its own."""
    directory_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    graph.register_app(directory_id, client_id, secret=SECRET, token_lifetime_seconds=lifetime)
    return GraphCredentials(directory_id, client_id, client_secret=SECRET)


def _client(graph: GraphEmulator, credentials: GraphCredentials, http: httpx.AsyncClient, **options) -> GraphClient:
    return GraphClient(credentials, graph_base_url=graph.base_url, login_base_url=graph.base_url, http=http, **options)


def _statuses(graph: GraphEmulator, credentials: GraphCredentials) -> list[int]:
    return [request["status"] for request in graph.requests(credentials.directory_id)]


async def _pages(client: GraphClient, **options) -> list[list[dict]]:
    return [page async for page in client.list_alerts(**options)]


# --- sign-in ----------------------------------------------------------------------------------------


async def test_signs_in_with_a_client_secret_and_reads_an_alert(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)

    got = await _client(graph_emulator, credentials, http).get_alert(alert["id"])

    assert got["id"] == alert["id"]
    assert got["isTest"] == "false" and got["detectedDateTime"] == alert["detectedDateTime"]
    assert graph_emulator.token_requests(credentials.directory_id) == 1


async def test_signs_in_with_a_certificate(graph_emulator, http):
    bundle, public_certificate = make_certificate()
    directory_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    graph_emulator.register_app(directory_id, client_id, certificate_pem=public_certificate)
    alert = graph_emulator.add_alert(directory_id)
    credentials = GraphCredentials(directory_id, client_id, certificate_pem=bundle)

    pages = await _pages(_client(graph_emulator, credentials, http))

    assert [a["id"] for page in pages for a in page] == [alert["id"]]
    assert graph_emulator.token_requests(directory_id) == 1


async def test_a_certificate_the_app_does_not_know_is_refused_with_the_aadsts_text(graph_emulator, http):
    _, registered = make_certificate()
    other_bundle, _ = make_certificate()
    directory_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    graph_emulator.register_app(directory_id, client_id, certificate_pem=registered)
    client = _client(graph_emulator, GraphCredentials(directory_id, client_id, certificate_pem=other_bundle), http)

    with pytest.raises(SignInRefused) as refused:
        await client.get_alert("any")

    assert refused.value.status == 401 and refused.value.code == "invalid_client"
    assert "AADSTS700027" in str(refused.value)
    assert graph_emulator.requests(directory_id) == []


async def test_an_expired_certificate_is_refused_before_any_request(graph_emulator, http):
    now = datetime.now(UTC)
    bundle, public_certificate = make_certificate(
        not_valid_before=now - timedelta(days=30), not_valid_after=now - timedelta(days=1)
    )
    directory_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    graph_emulator.register_app(directory_id, client_id, certificate_pem=public_certificate)
    client = _client(graph_emulator, GraphCredentials(directory_id, client_id, certificate_pem=bundle), http)

    with pytest.raises(SignInRefused, match="certificate expired on") as refused:
        await client.get_alert("any")

    assert refused.value.code == "certificateInvalid"
    assert graph_emulator.token_requests(directory_id) == 0


async def test_a_wrong_secret_is_refused_with_the_aadsts_message_and_no_secret_in_it(graph_emulator, http):
    credentials = _app(graph_emulator)
    wrong = GraphCredentials(credentials.directory_id, credentials.client_id, client_secret="wrong-secret-value")

    with pytest.raises(SignInRefused) as refused:
        await _client(graph_emulator, wrong, http).get_alert("any")

    error = refused.value
    assert isinstance(error, GraphRefused)
    assert error.status == 401 and error.code == "invalid_client"
    assert f"sign-in of app {credentials.client_id} to directory {credentials.directory_id}" in str(error)
    assert "AADSTS7000215: Invalid client secret provided." in error.message
    assert "wrong-secret-value" not in str(error) and SECRET not in str(error)
    assert graph_emulator.requests(credentials.directory_id) == []  # nothing reached Graph


async def test_an_unknown_directory_is_refused_with_the_aadsts_message(graph_emulator, http):
    unknown = GraphCredentials(str(uuid.uuid4()), str(uuid.uuid4()), client_secret=SECRET)

    with pytest.raises(SignInRefused, match="AADSTS90002") as refused:
        await _client(graph_emulator, unknown, http).get_alert("any")

    assert refused.value.status == 400 and refused.value.code == "invalid_request"


# --- the token: kept, renewed -------------------------------------------------------------------------


async def test_the_token_is_kept_and_reused_across_calls(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)
    client = _client(graph_emulator, credentials, http)

    await client.get_alert(alert["id"])
    await _pages(client)
    await client.update_alert(alert["id"], status="investigating", resolved_reason=None)

    assert graph_emulator.token_requests(credentials.directory_id) == 1
    assert _statuses(graph_emulator, credentials) == [200, 200, 200]


async def test_concurrent_calls_sign_in_once(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)
    client = _client(graph_emulator, credentials, http)

    await asyncio.gather(*(client.get_alert(alert["id"]) for _ in range(5)))

    assert graph_emulator.token_requests(credentials.directory_id) == 1


async def test_the_token_is_renewed_the_leeway_before_it_expires(graph_emulator, http):
    credentials = _app(graph_emulator, lifetime=600)
    alert = graph_emulator.add_alert(credentials.directory_id)
    clock = FakeClock()
    client = _client(graph_emulator, credentials, http, token_leeway_seconds=60, clock=clock)

    await client.get_alert(alert["id"])
    clock.now += 539.9
    await client.get_alert(alert["id"])
    assert graph_emulator.token_requests(credentials.directory_id) == 1
    clock.now += 0.1  # 600 s of life less 60 s of leeway
    await client.get_alert(alert["id"])

    assert graph_emulator.token_requests(credentials.directory_id) == 2
    assert _statuses(graph_emulator, credentials) == [200, 200, 200]


async def test_a_token_shorter_lived_than_the_leeway_is_kept_for_half_its_life(graph_emulator, http):
    credentials = _app(graph_emulator, lifetime=100)
    alert = graph_emulator.add_alert(credentials.directory_id)
    clock = FakeClock()
    client = _client(graph_emulator, credentials, http, token_leeway_seconds=300, clock=clock)

    await client.get_alert(alert["id"])
    clock.now += 49
    await client.get_alert(alert["id"])
    assert graph_emulator.token_requests(credentials.directory_id) == 1
    clock.now += 1
    await client.get_alert(alert["id"])

    assert graph_emulator.token_requests(credentials.directory_id) == 2


async def test_a_short_lived_token_is_renewed_before_graph_sees_it_expired(graph_emulator, http):
    credentials = _app(graph_emulator, lifetime=2)  # the emulator refuses it 2 s after issue
    alert = graph_emulator.add_alert(credentials.directory_id)
    client = _client(graph_emulator, credentials, http)  # the real clock

    await client.get_alert(alert["id"])
    await asyncio.sleep(1.2)  # past half its life: renewed
    await client.get_alert(alert["id"])

    assert graph_emulator.token_requests(credentials.directory_id) == 2
    assert _statuses(graph_emulator, credentials) == [200, 200]  # never a 401


async def test_a_401_renews_the_token_and_retries_once(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)
    client = _client(graph_emulator, credentials, http)
    await client.get_alert(alert["id"])

    graph_emulator.expire_tokens(credentials.directory_id)
    got = await client.get_alert(alert["id"])

    assert got["id"] == alert["id"]
    assert graph_emulator.token_requests(credentials.directory_id) == 2
    assert _statuses(graph_emulator, credentials) == [200, 401, 200]


async def test_a_second_401_is_a_refusal(graph_emulator):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)

    async def revoke_each_token_once_issued(response: httpx.Response) -> None:
        # As a directory whose policy revokes the app's tokens at once: no token is ever good.
        if response.request.url.path.endswith("/oauth2/v2.0/token") and response.status_code == 200:
            graph_emulator.expire_tokens(credentials.directory_id)

    async with httpx.AsyncClient(timeout=5, event_hooks={"response": [revoke_each_token_once_issued]}) as http:
        with pytest.raises(GraphRefused) as refused:
            await _client(graph_emulator, credentials, http).get_alert(alert["id"])

    assert refused.value.status == 401 and refused.value.code == "InvalidAuthenticationToken"
    assert f"GET securityAlerts/{alert['id']}: 401 InvalidAuthenticationToken" in str(refused.value)
    assert graph_emulator.token_requests(credentials.directory_id) == 2
    assert _statuses(graph_emulator, credentials) == [401, 401]


async def test_forget_token_signs_in_again(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)
    client = _client(graph_emulator, credentials, http)

    await client.get_alert(alert["id"])
    client.forget_token()
    await client.get_alert(alert["id"])

    assert graph_emulator.token_requests(credentials.directory_id) == 2


# --- the alerts ---------------------------------------------------------------------------------------


async def test_list_follows_next_links_across_pages(graph_emulator, http):
    credentials = _app(graph_emulator)
    graph_emulator.set_page_size(credentials.directory_id, 2)
    added = [graph_emulator.add_alert(credentials.directory_id)["id"] for _ in range(5)]

    pages = await _pages(_client(graph_emulator, credentials, http))

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [alert["id"] for page in pages for alert in page] == added
    requests = graph_emulator.requests(credentials.directory_id)
    assert [r["query"].keys() for r in requests] == [set(), {"$skiptoken"}, {"$skiptoken"}]
    assert graph_emulator.token_requests(credentials.directory_id) == 1


async def test_list_sends_the_filter_and_its_pages_keep_it(graph_emulator, http):
    credentials = _app(graph_emulator)
    graph_emulator.set_page_size(credentials.directory_id, 2)
    added = [
        graph_emulator.add_alert(credentials.directory_id, status=status)
        for status in ("active", "resolved", "active", "investigating", "active", "resolved")
    ]

    pages = await _pages(_client(graph_emulator, credentials, http), filter="status ne 'resolved'")

    assert [alert["id"] for page in pages for alert in page] == [a["id"] for a in added if a["status"] != "resolved"]
    first = graph_emulator.requests(credentials.directory_id)[0]
    assert first["query"] == {"$filter": "status ne 'resolved'"}


async def test_an_empty_listing_is_one_empty_page(graph_emulator, http):
    credentials = _app(graph_emulator)

    assert await _pages(_client(graph_emulator, credentials, http)) == [[]]


async def test_a_next_link_to_another_host_is_refused_and_gets_no_token(graph_emulator, http):
    credentials = _app(graph_emulator)
    graph_emulator.set_page_size(credentials.directory_id, 1)
    first = graph_emulator.add_alert(credentials.directory_id)
    graph_emulator.add_alert(credentials.directory_id)
    # Graph reached as "localhost": the emulator's links name 127.0.0.1, another host for the client.
    client = GraphClient(
        credentials,
        graph_base_url=graph_emulator.base_url.replace("127.0.0.1", "localhost"),
        login_base_url=graph_emulator.base_url,
        http=http,
    )

    pages = []
    with pytest.raises(GraphRefused, match="next page's link is not on"):
        async for page in client.list_alerts():
            pages.append(page)

    assert [[alert["id"] for alert in page] for page in pages] == [[first["id"]]]
    assert len(graph_emulator.requests(credentials.directory_id)) == 1  # the link was not followed


async def test_a_bad_filter_is_a_refusal_with_graphs_message(graph_emulator, http):
    credentials = _app(graph_emulator)

    with pytest.raises(GraphRefused, match="GET securityAlerts: 400 BadRequest: Invalid filter clause") as refused:
        await _pages(_client(graph_emulator, credentials, http), filter="status eq")

    assert refused.value.status == 400 and refused.value.code == "BadRequest"


async def test_an_unknown_alert_is_a_404_refusal(graph_emulator, http):
    credentials = _app(graph_emulator)

    with pytest.raises(GraphRefused) as refused:
        await _client(graph_emulator, credentials, http).get_alert("no-such-alert")

    assert not isinstance(refused.value, SignInRefused)
    assert refused.value.status == 404 and refused.value.code == "ResourceNotFound"
    assert str(refused.value).startswith("GET securityAlerts/no-such-alert: 404 ResourceNotFound: Resource")


async def test_an_alert_id_is_quoted_in_the_path(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id, id="odd id?with#signs&more")

    got = await _client(graph_emulator, credentials, http).get_alert(alert["id"])

    assert got["id"] == "odd id?with#signs&more"


async def test_update_patches_status_and_reason_and_returns_the_updated_alert(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)
    client = _client(graph_emulator, credentials, http)

    resolved = await client.update_alert(alert["id"], status="resolved", resolved_reason="legitimate")

    assert resolved["id"] == alert["id"]
    assert resolved["status"] == "resolved" and resolved["resolvedReason"] == "legitimate"
    assert resolved["activityLogs"][-1]["statusFrom"] == "active"
    assert resolved["activityLogs"][-1]["statusTo"] == "resolved"
    assert resolved["resolvedOnDateTime"]
    assert graph_emulator.alert(credentials.directory_id, alert["id"])["status"] == "resolved"

    reopened = await client.update_alert(alert["id"], status="active", resolved_reason=None)

    assert reopened["status"] == "active" and reopened["resolvedReason"] is None
    assert [(p["alertId"], p["body"]) for p in graph_emulator.patches(credentials.directory_id)] == [
        (alert["id"], {"status": "resolved", "resolvedReason": "legitimate"}),
        (alert["id"], {"status": "active", "resolvedReason": None}),
    ]


async def test_a_patch_graph_rejects_is_a_refusal_naming_the_value(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)

    with pytest.raises(GraphRefused, match=f"PATCH securityAlerts/{alert['id']}: 400 BadRequest: .*'closed'"):
        await _client(graph_emulator, credentials, http).update_alert(
            alert["id"], status="closed", resolved_reason=None
        )

    assert graph_emulator.patches(credentials.directory_id) == []


async def test_patches_refused_for_lack_of_permission_are_a_refusal(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)
    graph_emulator.refuse_patches(credentials.directory_id)

    with pytest.raises(GraphRefused) as refused:
        await _client(graph_emulator, credentials, http).update_alert(
            alert["id"], status="resolved", resolved_reason="fraud"
        )

    assert refused.value.status == 403 and refused.value.code == "Forbidden"
    assert not isinstance(refused.value, SignInRefused)


# --- Graph busy, down or away -------------------------------------------------------------------------


async def test_429_is_throttled_with_graphs_retry_after_and_the_next_call_succeeds(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)
    client = _client(graph_emulator, credentials, http)
    graph_emulator.throttle(credentials.directory_id, times=1, retry_after=7)

    with pytest.raises(GraphThrottled) as throttled:
        await _pages(client)

    assert throttled.value.retry_after == 7.0
    assert throttled.value.status == 429 and throttled.value.code == "TooManyRequests"
    assert str(throttled.value).startswith("GET securityAlerts: 429 TooManyRequests: Too many requests.")
    assert await _pages(client) == [[graph_emulator.alert(credentials.directory_id, alert["id"])]]


async def test_a_throttled_patch_is_not_applied(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)
    client = _client(graph_emulator, credentials, http)
    graph_emulator.throttle(credentials.directory_id, times=1, retry_after=3)

    with pytest.raises(GraphThrottled) as throttled:
        await client.update_alert(alert["id"], status="resolved", resolved_reason="ignore")

    assert throttled.value.retry_after == 3.0
    assert graph_emulator.patches(credentials.directory_id) == []


async def test_graph_down_is_unavailable_with_its_retry_after(graph_emulator, http):
    credentials = _app(graph_emulator)
    alert = graph_emulator.add_alert(credentials.directory_id)
    client = _client(graph_emulator, credentials, http)
    await client.get_alert(alert["id"])  # signed in before Graph went down

    graph_emulator.set_down(credentials.directory_id, True)
    try:
        with pytest.raises(GraphUnavailable) as unavailable:
            await client.get_alert(alert["id"])
    finally:
        graph_emulator.set_down(credentials.directory_id, False)

    assert unavailable.value.status == 503 and unavailable.value.code == "ServiceUnavailable"
    assert unavailable.value.retry_after == 1.0
    assert str(unavailable.value).startswith(f"GET securityAlerts/{alert['id']}: 503 ServiceUnavailable")
    assert (await client.get_alert(alert["id"]))["id"] == alert["id"]


async def test_sign_in_while_the_identity_platform_is_down_is_unavailable(graph_emulator, http):
    credentials = _app(graph_emulator)
    graph_emulator.set_down(credentials.directory_id, True)
    try:
        with pytest.raises(GraphUnavailable) as unavailable:
            await _pages(_client(graph_emulator, credentials, http))
    finally:
        graph_emulator.set_down(credentials.directory_id, False)

    assert not isinstance(unavailable.value, GraphRefused)
    assert unavailable.value.status == 503 and unavailable.value.code == "temporarily_unavailable"
    assert "AADSTS90033" in str(unavailable.value)


async def test_a_closed_port_is_unavailable(graph_emulator, http):
    credentials = _app(graph_emulator)
    nothing_there = f"http://127.0.0.1:{free_port()}"

    signing_in = GraphClient(credentials, graph_base_url=nothing_there, login_base_url=nothing_there, http=http)
    with pytest.raises(GraphUnavailable, match=r"^sign-in of app .*: cannot reach 127\.0\.0\.1: ConnectError") as e:
        await signing_in.get_alert("any")
    assert e.value.status is None and e.value.retry_after is None

    graph_away = GraphClient(
        credentials, graph_base_url=nothing_there, login_base_url=graph_emulator.base_url, http=http
    )
    with pytest.raises(GraphUnavailable, match=r"^GET securityAlerts: cannot reach 127\.0\.0\.1: ConnectError"):
        await _pages(graph_away)


async def test_no_answer_in_time_is_unavailable(receiver: Receiver):
    credentials = GraphCredentials(str(uuid.uuid4()), str(uuid.uuid4()), client_secret=SECRET)
    release = receiver.hold_next(f"/{credentials.directory_id}/oauth2/v2.0/token")  # answers only when released
    try:
        async with httpx.AsyncClient(timeout=0.5) as http:
            client = GraphClient(
                credentials, graph_base_url=receiver.url(""), login_base_url=receiver.url(""), http=http
            )
            with pytest.raises(GraphUnavailable, match=r"^sign-in of app .*: no answer in time \(ReadTimeout\)"):
                await client.get_alert("any")
    finally:
        release.set()


async def test_a_token_answer_without_a_token_is_unavailable(receiver: Receiver):
    credentials = GraphCredentials(str(uuid.uuid4()), str(uuid.uuid4()), client_secret=SECRET)
    receiver.script(f"/{credentials.directory_id}/oauth2/v2.0/token", (200, {}))  # 200 "{}"
    async with httpx.AsyncClient(timeout=5) as http:
        client = GraphClient(credentials, graph_base_url=receiver.url(""), login_base_url=receiver.url(""), http=http)
        with pytest.raises(GraphUnavailable, match="without an access token"):
            await client.get_alert("any")


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(None, (30, 30)), ("12", (12, 12)), ("in a while", (30, 30)), ("http-date", (100, 120))],
)
async def test_retry_after_in_seconds_or_as_an_http_date_else_30_seconds(receiver: Receiver, retry_after, expected):
    credentials = GraphCredentials(str(uuid.uuid4()), str(uuid.uuid4()), client_secret=SECRET)
    if retry_after == "http-date":
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    receiver.script(
        f"/{credentials.directory_id}/oauth2/v2.0/token", (429, {"Retry-After": retry_after} if retry_after else {})
    )
    async with httpx.AsyncClient(timeout=5) as http:
        client = GraphClient(credentials, graph_base_url=receiver.url(""), login_base_url=receiver.url(""), http=http)
        with pytest.raises(GraphThrottled) as throttled:
            await client.get_alert("any")

    low, high = expected
    assert low <= throttled.value.retry_after <= high


def test_every_failure_is_a_graph_error():
    for kind in (GraphThrottled, GraphUnavailable, GraphRefused, SignInRefused):
        assert issubclass(kind, GraphError)
