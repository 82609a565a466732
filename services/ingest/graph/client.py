"""Microsoft Graph's partner security alerts, for one app registration: sign-in, list, get, update.

httpx does the HTTP; the token request is one form POST to the identity platform
(``{login}/{directory}/oauth2/v2.0/token``, client credentials), signed with joserfc when the app
signs in with a certificate (``credentials.client_assertion``). The token is kept until shortly
before it expires and renewed once when Graph answers 401 (a token revoked or expired early).

Every failure is a :class:`GraphError` whose kind tells the caller what to do: wait as told
(:class:`GraphThrottled`, 429), try again later (:class:`GraphUnavailable`: no answer, a timeout, a
5xx), or stop and show it (:class:`GraphRefused`, a permanent 4xx; :class:`SignInRefused` when the
identity platform refused the credentials). The message names the request and carries Graph's own
code and text, never a secret or a token.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from services.ingest.graph.credentials import CertificateInvalid, GraphCredentials, client_assertion

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALERTS_PATH = "/beta/security/partner/securityAlerts"
DEFAULT_THROTTLE_SECONDS = 30.0  # a 429 without a usable Retry-After


class GraphError(Exception):
    """A Graph or sign-in request that did not succeed. ``status`` is None when no answer came."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class GraphThrottled(GraphError):
    """429: try again after ``retry_after`` seconds (Graph's ``Retry-After``, else 30)."""

    def __init__(self, message: str, *, retry_after: float, status: int | None = 429, code: str | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class GraphUnavailable(GraphError):
    """No answer, a timeout, a 5xx or a garbled answer: try again later (``retry_after`` if Graph said)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class GraphRefused(GraphError):
    """A permanent refusal (400, 403, 404, a second 401, ...): the same request will not succeed."""


class SignInRefused(GraphRefused):
    """The identity platform refused the credentials (the message carries its AADSTS text), or the
    certificate cannot sign in (expired, for instance): the connection's credentials need fixing."""


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float  # on the client's clock


MAX_RETRY_AFTER_SECONDS = 86_400.0


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; None if absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    # A day at most: an absurd value (1e400 is infinity) must not overflow a date or park a
    # connection for ever.
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _one_line(text: str) -> str:
    # The identity platform's error_description goes on with "\r\nTrace ID: ...\r\nCorrelation ID: ...":
    # kept (support asks for them), on one line.
    return " ".join(text.split())


def _graph_failure(response: httpx.Response) -> tuple[str | None, str]:
    """Graph's error code and message (``{"error": {"code", "message", "innerError"}}``), tolerant of any body."""
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = str(error.get("message") or "")
        inner = error.get("innerError")
        request_id = inner.get("request-id") if isinstance(inner, dict) else None
        if request_id:
            message = f"{message} (request-id {request_id})".strip()
        return code, message
    return None, response.reason_phrase or response.text[:200]


def _sign_in_failure(response: httpx.Response) -> tuple[str | None, str]:
    """The identity platform's ``{"error": "invalid_client", "error_description": "AADSTS...: ..."}``."""
    body = _json(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], _one_line(str(body.get("error_description") or ""))
    return None, response.reason_phrase or response.text[:200]


def _failure(what: str, response: httpx.Response, code: str | None, text: str, *, sign_in: bool) -> GraphError:
    status = response.status_code
    message = f"{what}: {status} {code or response.reason_phrase}" + (f": {text}" if text else "")
    if status == 429:
        return GraphThrottled(message, retry_after=_retry_after(response) or DEFAULT_THROTTLE_SECONDS, code=code)
    if status >= 500 or status == 408:
        return GraphUnavailable(message, retry_after=_retry_after(response), status=status, code=code)
    refused = SignInRefused if sign_in else GraphRefused
    return refused(message, status=status, code=code)


class GraphClient:
    """Graph's partner security alerts as one app registration sees them. One per connection: it
    keeps the token. ``http`` is shared, and configured (timeouts) by its owner."""

    def __init__(
        self,
        credentials: GraphCredentials,
        *,
        graph_base_url: str,
        login_base_url: str,
        http: httpx.AsyncClient,
        token_leeway_seconds: float = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credentials = credentials
        self._graph = httpx.URL(graph_base_url.rstrip("/"))
        self._alerts_url = f"{graph_base_url.rstrip('/')}{ALERTS_PATH}"
        self._token_url = f"{login_base_url.rstrip('/')}/{quote(credentials.directory_id, safe='')}/oauth2/v2.0/token"
        self._http = http
        self._leeway = token_leeway_seconds
        self._clock = clock
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()

    # --- the alerts ------------------------------------------------------------------------------

    async def list_alerts(self, *, filter: str | None = None) -> AsyncIterator[list[dict]]:
        """Every alert (matching the OData ``filter``), one list per page, following ``@odata.nextLink``."""
        url: str = self._alerts_url
        params = {"$filter": filter} if filter else None
        seen_links: set[str] = set()
        while True:
            page = await self._request("GET", url, "GET securityAlerts", params=params)
            values = page.get("value") if isinstance(page, dict) else None
            if not isinstance(values, list):
                raise GraphUnavailable("GET securityAlerts: the answer holds no list of alerts")
            yield values
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return
            if not isinstance(next_link, str) or not self._is_graph(next_link):
                # The token goes to Graph only, whatever a page says.
                raise GraphRefused(f"GET securityAlerts: the next page's link is not on {self._graph}: {next_link!r}")
            if next_link in seen_links:
                raise GraphRefused("GET securityAlerts: the next page's link repeats an earlier one")
            seen_links.add(next_link)
            url, params = next_link, None  # the link carries the query ($skiptoken keeps the filter)

    async def get_alert(self, alert_id: str) -> dict:
        """One alert; :class:`GraphRefused` (404) if Graph has none by that id."""
        return await self._request("GET", self._alert_url(alert_id), f"GET securityAlerts/{alert_id}")

    async def update_alert(self, alert_id: str, *, status: str, resolved_reason: str | None) -> dict:
        """PATCH the alert's status (and resolvedReason, null clearing it); Graph's updated alert
        (documented: 200 with the alert; ``{}`` should it answer 204 No Content)."""
        body = {"status": status, "resolvedReason": resolved_reason}
        return await self._request("PATCH", self._alert_url(alert_id), f"PATCH securityAlerts/{alert_id}", json=body)

    def forget_token(self) -> None:
        """Drop the cached token: the next request signs in again."""
        self._token = None

    # --- requests --------------------------------------------------------------------------------

    def _alert_url(self, alert_id: str) -> str:
        return f"{self._alerts_url}/{quote(alert_id, safe='')}"

    def _is_graph(self, link: str) -> bool:
        try:
            url = httpx.URL(link)
        except httpx.InvalidURL:
            return False
        base_path = self._graph.path.rstrip("/") + "/"
        return (
            url.scheme == self._graph.scheme
            and url.host == self._graph.host
            and url.port == self._graph.port
            and url.path.startswith(base_path)
        )

    async def _request(self, method: str, url: str, what: str, **options: Any) -> Any:
        """Send with the token; on a 401 sign in again and send once more."""
        for attempt in (1, 2):
            token = await self._access_token()
            response = await self._send(
                what,
                method,
                url,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json",
                    "client-request-id": str(uuid.uuid4()),
                },
                **options,
            )
            if response.status_code == 401 and attempt == 1:
                self._drop(token)
                continue
            if response.status_code == 204:
                return {}
            if response.is_success:
                body = _json(response)
                if body is None:
                    raise GraphUnavailable(f"{what}: {response.status_code} with a body that is not JSON")
                return body
            code, text = _graph_failure(response)
            raise _failure(what, response, code, text, sign_in=False)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, what: str, method: str, url: str, **options: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **options)
        except httpx.TimeoutException as exc:
            raise GraphUnavailable(f"{what}: no answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise GraphUnavailable(f"{what}: cannot reach {httpx.URL(url).host}: {type(exc).__name__} {exc}") from None

    def _drop(self, token: str) -> None:
        # Only the token that was refused: another request may have renewed it meanwhile.
        if self._token is not None and self._token.value == token:
            self._token = None

    # --- sign-in ---------------------------------------------------------------------------------

    async def _access_token(self) -> str:
        async with self._token_lock:  # concurrent requests sign in once
            token = self._token
            if token is None or self._clock() >= token.renew_at:
                token = self._token = await self._sign_in()
            return token.value

    async def _sign_in(self) -> _Token:
        credentials = self._credentials
        what = f"sign-in of app {credentials.client_id} to directory {credentials.directory_id}"
        form = {"client_id": credentials.client_id, "scope": GRAPH_SCOPE, "grant_type": "client_credentials"}
        if credentials.client_secret:
            form["client_secret"] = credentials.client_secret
        else:
            try:
                assertion = client_assertion(credentials, self._token_url, now=datetime.now(UTC))
            except CertificateInvalid as exc:
                raise SignInRefused(f"{what}: {exc}", code="certificateInvalid") from None
            form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
            form["client_assertion"] = assertion
        started = self._clock()
        response = await self._send(what, "POST", self._token_url, data=form, headers={"Accept": "application/json"})
        if not response.is_success:
            code, text = _sign_in_failure(response)
            raise _failure(what, response, code, text, sign_in=True)
        body = _json(response)
        access_token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        try:
            lifetime = float(expires_in)  # a number, or a string of one in older answers
        except (TypeError, ValueError):
            lifetime = None
        if not isinstance(access_token, str) or not access_token or lifetime is None or lifetime <= 0:
            raise GraphUnavailable(f"{what}: {response.status_code} without an access token and its lifetime")
        # Renewed ahead of expiry by the leeway, but never past half its life (a short-lived token
        # would otherwise be fetched anew for every request).
        return _Token(access_token, started + lifetime - min(self._leeway, lifetime / 2))
