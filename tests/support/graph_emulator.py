"""An emulator of the Microsoft identity platform token endpoint and of Microsoft Graph's beta partner
security alerts API (`/beta/security/partner/securityAlerts`), as a real HTTP server on 127.0.0.1.

It follows the documented contract (microsoft-graph-docs-contrib, api-reference/beta, partner-security-*;
identity platform "client credentials flow" and "certificate credentials"): a form-encoded token request
authenticated by a client secret or by a certificate-signed client assertion (RS256 or PS256, the
certificate named by `x5t` or `x5t#S256`); opaque bearer tokens; paged listing with `@odata.nextLink`
and a small OData `$filter`; PATCH of `status`/`resolvedReason` appending an activity log entry; Graph's
error bodies, 429 + Retry-After, 503. Everything is per directory (tenant) id, so one emulator can
serve a whole test session: a directory never sees another's alerts, apps, tokens or faults.

The AADSTS codes are the documented ones where known (7000215 wrong secret, 700016 unknown app,
90002 unknown tenant, 700027 assertion signature/key, 700024 assertion time range, 7000216 no
credential, 900144 missing parameter, 70003 grant type, 1002012 scope); the rest are close stand-ins.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

ALERTS_PATH = "/beta/security/partner/securityAlerts"
GRAPH_SCOPES = {"https://graph.microsoft.com/.default", "00000003-0000-0000-c000-000000000000/.default"}
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALERT_TYPE = "#microsoft.graph.partner.security.partnerSecurityAlert"
ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

STATUSES = ("active", "resolved", "investigating", "unknownFutureValue")
RESOLVED_REASONS = ("legitimate", "ignore", "fraud", "unknownFutureValue")
SEVERITIES = ("informational", "low", "medium", "high", "unknownFutureValue")
CONFIDENCE_LEVELS = ("low", "medium", "high", "unknownFutureValue")

# The partnerSecurityAlert's properties by OData type, for $filter and $select.
DATETIME_PROPERTIES = {"detectedDateTime", "firstObservedDateTime", "lastObservedDateTime", "resolvedOnDateTime"}
ENUM_PROPERTIES = {
    "status": STATUSES,
    "resolvedReason": RESOLVED_REASONS,
    "severity": SEVERITIES,
    "confidenceLevel": CONFIDENCE_LEVELS,
}
STRING_PROPERTIES = {"id", "displayName", "description", "alertType", "customerTenantId", "subscriptionId",
                     "valueAddedResellerTenantId", "catalogOfferId", "resolvedBy"}
BOOLEAN_PROPERTIES = {"isTest"}
COMPLEX_PROPERTIES = {"affectedResources", "activityLogs", "additionalDetails"}
ALL_PROPERTIES = (DATETIME_PROPERTIES | set(ENUM_PROPERTIES) | STRING_PROPERTIES | BOOLEAN_PROPERTIES
                  | COMPLEX_PROPERTIES)

DEFAULT_PAGE_SIZE = 50
ASSERTION_CLOCK_SKEW_SECONDS = 300  # the identity platform tolerates a client clock a little ahead


# --- time: Graph writes 7-digit fractions ("2023-08-10T08:47:10.8454142Z") -------------------------

_TICKS_PER_SECOND = 10_000_000
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})?$"
)


def graph_time(moment: datetime | None = None) -> str:
    """``moment`` (default: now, to 100 ns) as Graph writes it: UTC, 7 fraction digits, ``Z``."""
    if moment is None:
        return _ticks_text(time.time_ns() // 100)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0Z"


def _ticks_text(ticks: int) -> str:
    seconds, fraction = divmod(ticks, _TICKS_PER_SECOND)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{fraction:07d}Z"


def _ticks(text: Any) -> int | None:
    """An ISO 8601 timestamp as 100 ns ticks since the epoch (no offset: UTC); None if not one."""
    match = _ISO.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC)
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        moment -= sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    whole = int(moment.timestamp()) * _TICKS_PER_SECOND
    return whole + int((fraction or "0").ljust(7, "0"))


# --- $filter: a small OData subset ----------------------------------------------------------------


class _BadRequest(Exception):
    """A Graph 400 BadRequest with this message."""


_FILTER_TOKEN = re.compile(
    r"""\s*(?:
        (?P<open>\()|(?P<close>\))
        |(?P<string>'(?:[^']|'')*')
        |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2}))
        |(?P<number>-?\d+(?:\.\d+)?)
        |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_OPERATOR_NAMES = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
                   "lt": "LessThan", "le": "LessThanOrEqual"}
Predicate = Callable[[dict], bool]


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _FILTER_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _BadRequest("Invalid filter clause: syntax error at position "
                              f"{position} in '{text}'.")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _FilterParser:
    """``or`` of ``and`` of [``not``] (comparison | parenthesised expression)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0

    def parse(self) -> Predicate:
        if not self.tokens:
            raise _BadRequest("Invalid filter clause: the filter is empty.")
        predicate = self._or()
        if self.position != len(self.tokens):
            raise self._invalid(f"unexpected '{self.tokens[self.position][1]}'")
        return predicate

    def _invalid(self, why: str) -> _BadRequest:
        return _BadRequest(f"Invalid filter clause: {why} in '{self.text}'.")

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise self._invalid("unexpected end of the expression")
        self.position += 1
        return token

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._peek() == ("word", "or"):
            self.position += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda alert: any(p(alert) for p in parts))

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._peek() == ("word", "and"):
            self.position += 1
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda alert: all(p(alert) for p in parts))

    def _unary(self) -> Predicate:
        if self._peek() == ("word", "not"):
            self.position += 1
            inner = self._unary()
            return lambda alert: not inner(alert)
        if self._peek() == ("open", "("):
            self.position += 1
            inner = self._or()
            if self._take() != ("close", ")"):
                raise self._invalid("')' expected")
            return inner
        return self._comparison()

    def _comparison(self) -> Predicate:
        kind, name = self._take()
        if kind != "word":
            raise self._invalid(f"a property name expected, found '{name}'")
        if self._peek() == ("open", "("):
            raise self._invalid(f"the function '{name}' is not supported")
        if name not in ALL_PROPERTIES:
            raise _BadRequest(f"Could not find a property named '{name}' on type "
                              "'microsoft.graph.partner.security.partnerSecurityAlert'.")
        if name in COMPLEX_PROPERTIES:
            raise self._invalid(f"the property '{name}' cannot be compared")
        operator_kind, operator = self._take()
        if operator_kind != "word" or operator not in _COMPARISONS:
            raise self._invalid(f"a comparison operator (eq, ne, gt, ge, lt, le) expected after '{name}'")
        literal_kind, literal = self._take()
        return _comparison(name, operator, literal_kind, literal)


def _comparison(name: str, operator: str, literal_kind: str, literal: str) -> Predicate:
    """One ``property operator literal``, type-checked as OData does."""
    if literal_kind == "word" and literal == "null":
        if operator not in ("eq", "ne"):
            raise _BadRequest(f"Invalid filter clause: null can only be compared with eq or ne ('{name}').")
        wanted_null = operator == "eq"
        return lambda alert: (alert.get(name) is None) == wanted_null

    if name in DATETIME_PROPERTIES:
        if literal_kind != "datetime":
            found = "Edm.String" if literal_kind == "string" else "Edm.Int32" if literal_kind == "number" else literal
            raise _BadRequest("A binary operator with incompatible types was detected. Found operand types "
                              f"'Edm.DateTimeOffset' and '{found}' for operator kind '{_OPERATOR_NAMES[operator]}'.")
        expected = _ticks(literal)
        return _ordered(name, operator, expected, _ticks)

    if name in BOOLEAN_PROPERTIES:
        if literal_kind != "word" or literal not in ("true", "false") or operator not in ("eq", "ne"):
            raise _BadRequest(f"Invalid filter clause: '{name}' is compared with eq or ne to true or false.")
        expected_bool = literal == "true"
        return lambda alert: (_boolean(alert.get(name)) == expected_bool) == (operator == "eq")

    if literal_kind != "string":
        raise _BadRequest("A binary operator with incompatible types was detected. Found operand types "
                          f"'Edm.String' and '{literal}' for operator kind '{_OPERATOR_NAMES[operator]}'.")
    value = literal[1:-1].replace("''", "'")
    if name in ENUM_PROPERTIES:
        members = ENUM_PROPERTIES[name]
        if value not in members:
            raise _BadRequest(f"The string '{value}' is not a valid enumeration type constant.")
        return _ordered(name, operator, members.index(value),
                        lambda v: members.index(v) if v in members else None)
    return _ordered(name, operator, value, lambda v: v if isinstance(v, str) else None)


def _ordered(name: str, operator: str, expected: Any, convert: Callable[[Any], Any]) -> Predicate:
    def test(alert: dict) -> bool:
        actual = convert(alert.get(name))
        if actual is None:  # null compares unequal to every value, and neither greater nor less
            return operator == "ne"
        return {
            "eq": actual == expected, "ne": actual != expected, "gt": actual > expected,
            "ge": actual >= expected, "lt": actual < expected, "le": actual <= expected,
        }[operator]

    return test


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def parse_filter(text: str) -> Predicate:
    """The predicate of an OData ``$filter`` (raises ``_BadRequest`` for anything outside the subset)."""
    return _FilterParser(text).parse()


# --- state ----------------------------------------------------------------------------------------


@dataclass
class _App:
    client_id: str
    secret: str | None
    certificate: x509.Certificate | None
    token_lifetime_seconds: int

    def thumbprints(self) -> tuple[str, str] | None:
        """(x5t, x5t#S256) of the registered certificate: base64url SHA-1 / SHA-256 of its DER."""
        if self.certificate is None:
            return None
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return _b64url(hashlib.sha1(der).digest()), _b64url(hashlib.sha256(der).digest())


@dataclass
class _Token:
    directory_id: str
    client_id: str
    expires_at: float
    revoked: bool = False


@dataclass
class _Listing:
    """What a $skiptoken stands for: the listing's filter and the last alert it returned."""

    directory_id: str
    predicate: Predicate | None
    page_size: int | None  # $top
    select: list[str] | None
    count: bool
    after_sequence: int


@dataclass
class _Refusal:
    status: int
    code: str
    message: str


@dataclass
class _Directory:
    apps: dict[str, _App] = field(default_factory=dict)
    alerts: dict[str, tuple[int, dict]] = field(default_factory=dict)  # id -> (insertion sequence, alert)
    page_size: int = DEFAULT_PAGE_SIZE
    throttled_requests: int = 0
    throttle_retry_after: int = 1
    down: bool = False
    patch_refusal: _Refusal | None = None
    patches: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    tokens_issued: int = 0


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _key(identifier: str) -> str:
    """Directory and client ids compare case-insensitively (GUIDs, domain names)."""
    return identifier.strip().lower()


# --- the emulator ---------------------------------------------------------------------------------


class GraphEmulator:
    """The token endpoint and Graph's partner security alerts, scriptable per directory (tenant) id.

    ``base_url`` serves both: use it as GRAPH_BASE_URL and GRAPH_LOGIN_BASE_URL. Every method is
    thread-safe; the HTTP server runs in its own threads (``run_graph_emulator``).
    """

    def __init__(self) -> None:
        self.base_url = ""
        self._lock = threading.Lock()
        self._directories: dict[str, _Directory] = {}
        self._tokens: dict[str, _Token] = {}
        self._listings: dict[str, _Listing] = {}
        self._sequence = 0

    # --- scripting ------------------------------------------------------------------------------

    def register_app(self, directory_id: str, client_id: str, *, secret: str | None = None,
                     certificate_pem: str | None = None, token_lifetime_seconds: int = 3599) -> None:
        """An app registration in the directory with a client secret and/or a certificate (the PUBLIC
        certificate, PEM; a PEM that also holds the private key is fine: only the certificate is kept).
        Registering the same client id again replaces its credentials (a rotated secret)."""
        certificate = _load_certificate(certificate_pem) if certificate_pem is not None else None
        with self._lock:
            self._directory(directory_id).apps[_key(client_id)] = _App(
                client_id, secret, certificate, token_lifetime_seconds)

    def add_alert(self, directory_id: str, **fields: Any) -> dict:
        """Store an alert as Partner Center would raise it; ``fields`` (camelCase) override the
        documented-looking defaults, datetimes become Graph's 7-digit text. Returns a copy."""
        now = graph_time()
        alert: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "displayName": "Action Required: Virtual machine connecting to crypto currency mining pool Detected",
            "description": "Analysis of Azure resource network activity detected the resource was connecting "
                           "to a crypto currency mining pool.",
            "alertType": "networkConnectionsToCryptoMiningPools",
            "status": "active",
            "severity": "high",
            "confidenceLevel": "medium",
            "customerTenantId": str(uuid.uuid4()),
            "subscriptionId": str(uuid.uuid4()),
            "valueAddedResellerTenantId": str(uuid.uuid4()),
            "catalogOfferId": None,
            "detectedDateTime": now,
            "firstObservedDateTime": now,
            "lastObservedDateTime": now,
            "resolvedReason": None,
            "resolvedOnDateTime": None,
            "resolvedBy": None,
            "isTest": "false",
            "affectedResources": [{
                "resourceId": "/subscriptions/sub-id/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
                "resourceType": "AzureResource",
            }],
            "activityLogs": [],
            "additionalDetails": {
                "VM_IP": '[  "10.0.0.4"]',
                "MiningPool_IP": '[  "203.0.113.7"]',
                "ConnectionCount": "5",
                "CryptoCurrencyMiningPoolDomainName": "pool.example.com",
            },
        }
        for name, value in fields.items():
            alert[name] = graph_time(value) if isinstance(value, datetime) else copy.deepcopy(value)
        with self._lock:
            directory = self._directory(directory_id)
            if alert["id"] in directory.alerts:
                raise ValueError(f"alert {alert['id']} already exists in directory {directory_id}")
            self._sequence += 1
            directory.alerts[alert["id"]] = (self._sequence, alert)
            return copy.deepcopy(alert)

    def alert(self, directory_id: str, alert_id: str) -> dict:
        """A copy of the stored alert (KeyError if none)."""
        with self._lock:
            return copy.deepcopy(self._directory(directory_id).alerts[alert_id][1])

    def alerts(self, directory_id: str) -> list[dict]:
        """Copies of every alert of the directory, in insertion order."""
        with self._lock:
            return [copy.deepcopy(alert) for _, alert in self._directory(directory_id).alerts.values()]

    def change_in_partner_center(self, directory_id: str, alert_id: str, *, status: str,
                                 resolved_reason: str | None = None, by: str = "someone@partner.example",
                                 at: datetime | None = None) -> dict:
        """A person acting in the Partner Center portal: the same change a PATCH makes, by ``by`` at ``at``."""
        with self._lock:
            alert = self._directory(directory_id).alerts[alert_id][1]
            _apply_change(alert, status=status, resolved_reason=resolved_reason, set_reason=True,
                          by=by, at=graph_time(at))
            return copy.deepcopy(alert)

    def set_page_size(self, directory_id: str, n: int) -> None:
        """The server's page size for listings (default 50); ``$top`` may lower it further."""
        if n < 1:
            raise ValueError("page size must be at least 1")
        with self._lock:
            self._directory(directory_id).page_size = n

    def throttle(self, directory_id: str, *, times: int, retry_after: int = 1) -> None:
        """The next ``times`` Graph requests of the directory get 429 TooManyRequests + Retry-After."""
        with self._lock:
            directory = self._directory(directory_id)
            directory.throttled_requests = times
            directory.throttle_retry_after = retry_after

    def set_down(self, directory_id: str, down: bool) -> None:
        """While down, every Graph and token request of the directory gets 503 (Retry-After: 1)."""
        with self._lock:
            self._directory(directory_id).down = down

    def expire_tokens(self, directory_id: str) -> None:
        """Every token issued so far to the directory's apps is now expired (401 on Graph)."""
        key = _key(directory_id)
        with self._lock:
            for token in self._tokens.values():
                if token.directory_id == key:
                    token.revoked = True

    def refuse_patches(self, directory_id: str, *, status: int = 403, code: str = "Forbidden",
                       message: str = "Insufficient privileges to complete the operation.") -> None:
        """From now on every PATCH of the directory is refused with this Graph error (e.g. an app
        granted only PartnerSecurity.Read.All)."""
        with self._lock:
            self._directory(directory_id).patch_refusal = _Refusal(status, code, message)

    def accept_patches(self, directory_id: str) -> None:
        """Undo ``refuse_patches``."""
        with self._lock:
            self._directory(directory_id).patch_refusal = None

    def patches(self, directory_id: str) -> list[dict]:
        """Each PATCH received and applied, in order: ``{"alertId", "body", "at": datetime (UTC)}``."""
        with self._lock:
            return copy.deepcopy(self._directory(directory_id).patches)

    def requests(self, directory_id: str) -> list[dict]:
        """Each Graph request made with one of the directory's tokens (even expired ones), in order:
        ``{"method", "path" (as sent, percent-encoded), "query": {name: value} (decoded), "status"}``."""
        with self._lock:
            return copy.deepcopy(self._directory(directory_id).requests)

    def token_requests(self, directory_id: str) -> int:
        """How many tokens were issued to the directory's apps."""
        with self._lock:
            return self._directory(directory_id).tokens_issued

    def token_url(self, directory_id: str) -> str:
        """The directory's token endpoint (also the `aud` a client assertion must carry)."""
        return f"{self.base_url}/{directory_id}/oauth2/v2.0/token"

    @property
    def alerts_url(self) -> str:
        return f"{self.base_url}{ALERTS_PATH}"

    # --- HTTP -------------------------------------------------------------------------------------

    def _directory(self, directory_id: str) -> _Directory:
        """The directory's state (created on first use). Caller holds the lock."""
        return self._directories.setdefault(_key(directory_id), _Directory())

    def respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Response:
        """One HTTP exchange (``headers`` with lower-case names)."""
        url = urlsplit(target)
        token_path = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", url.path)
        with self._lock:
            if token_path:
                if method != "POST":
                    return _token_error(405, "invalid_request", 900561,
                                        "The endpoint only accepts POST requests.")
                return self._issue_token(unquote(token_path.group(1)), headers, body)
            if url.path == ALERTS_PATH or url.path.startswith(ALERTS_PATH + "/"):
                return self._graph(method, url.path, url.query, headers, body)
            return _graph_error(400, "BadRequest", f"Resource not found for the segment '{url.path}'.", headers)

    # --- the identity platform --------------------------------------------------------------------

    def _issue_token(self, directory_id: str, headers: dict[str, str], body: bytes) -> _Response:
        directory = self._directories.get(_key(directory_id))
        if directory is not None and directory.down:
            return _token_error(503, "temporarily_unavailable", 90033,
                                "A transient error has occurred. Please try again.", {"Retry-After": "1"})
        if directory is None or not directory.apps:
            return _token_error(400, "invalid_request", 90002,
                                f"Tenant '{directory_id}' not found. Check to make sure you have the correct "
                                "tenant ID and are signing into the correct cloud.")
        is_form = headers.get("content-type", "").split(";")[0].strip() == "application/x-www-form-urlencoded"
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)) if is_form else {}
        for name in ("grant_type", "client_id", "scope"):
            if not form.get(name):
                return _token_error(400, "invalid_request", 900144,
                                    f"The request body must contain the following parameter: '{name}'.")
        if form["grant_type"] != "client_credentials":
            return _token_error(400, "unsupported_grant_type", 70003,
                                f"The app requested an unsupported grant type '{form['grant_type']}'.")
        app = directory.apps.get(_key(form["client_id"]))
        if app is None:
            return _token_error(400, "unauthorized_client", 700016,
                                f"Application with identifier '{form['client_id']}' was not found in the "
                                f"directory '{directory_id}'. This can happen if the application has not been "
                                "installed by the administrator of the tenant or consented to by any user in "
                                "the tenant.")
        if form["scope"] not in GRAPH_SCOPES:
            return _token_error(400, "invalid_scope", 1002012,
                                f"The provided value for scope {form['scope']} is not valid. Client credential "
                                "flows must have a scope value with /.default suffixed to the resource "
                                "identifier (application ID URI).")
        secret, assertion = form.get("client_secret"), form.get("client_assertion")
        if secret and assertion:
            return _token_error(400, "invalid_request", 90014,
                                "Only one of 'client_secret' and 'client_assertion' may be sent.")
        if secret:
            if app.secret is None or not secrets.compare_digest(secret, app.secret):
                return _token_error(401, "invalid_client", 7000215,
                                    "Invalid client secret provided. Ensure the secret being sent in the request "
                                    "is the client secret value, not the client secret ID, for a secret added to "
                                    f"app '{app.client_id}'.")
        elif assertion:
            refused = self._check_assertion(app, directory_id, form)
            if refused is not None:
                return refused
        else:
            return _token_error(401, "invalid_client", 7000216,
                                "'client_assertion', 'client_secret' or 'request' is required for the "
                                "'client_credentials' grant type.")
        access_token = secrets.token_urlsafe(48)
        self._tokens[access_token] = _Token(_key(directory_id), _key(app.client_id),
                                            time.time() + app.token_lifetime_seconds)
        directory.tokens_issued += 1
        return _json_response(200, {
            "token_type": "Bearer",
            "expires_in": app.token_lifetime_seconds,
            "ext_expires_in": app.token_lifetime_seconds,
            "access_token": access_token,
        }, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _check_assertion(self, app: _App, directory_id: str, form: dict[str, str]) -> _Response | None:
        """The client assertion of the certificate credential, as the docs describe it; None if valid."""
        if form.get("client_assertion_type") != JWT_BEARER:
            return _token_error(400, "invalid_request", 50027,
                                f"Invalid client_assertion_type: expected '{JWT_BEARER}'.")
        thumbprints = app.thumbprints()
        if thumbprints is None or app.certificate is None:
            return _token_error(401, "invalid_client", 700027,
                                "Client assertion contains an invalid signature. [Reason - The key was not "
                                "found., no certificate is registered on the application]")
        x5t, x5t_s256 = thumbprints
        certificate = app.certificate

        class KeyNotFound(Exception):
            pass

        def verification_key(guest: Any) -> RSAKey:
            header = guest.headers()
            if header.get("x5t") != x5t and header.get("x5t#S256") != x5t_s256:
                raise KeyNotFound(header.get("x5t#S256") or header.get("x5t") or "none")
            return RSAKey.import_key(certificate.public_key())  # type: ignore[arg-type]

        try:
            token = jwt.decode(form["client_assertion"], verification_key, algorithms=["RS256", "PS256"])
        except KeyNotFound as error:
            return _token_error(401, "invalid_client", 700027,
                                "Client assertion contains an invalid signature. [Reason - The key was not found., "
                                f"Thumbprint of key used by client: '{error}']")
        except JoseError as error:
            bad_signature = "signature" in type(error).__name__.lower()
            reason = ("The provided signature value did not match the expected signature value."
                      if bad_signature else f"the assertion is not a valid RS256/PS256 JWT ({error.error})")
            if bad_signature:
                return _token_error(401, "invalid_client", 700027,
                                    f"Client assertion contains an invalid signature. [Reason - {reason}]")
            return _token_error(400, "invalid_request", 50027, f"JWT token is invalid or malformed: {reason}.")
        except ValueError as error:
            return _token_error(400, "invalid_request", 50027, f"JWT token is invalid or malformed: {error}.")

        now = time.time()
        if certificate.not_valid_after_utc.timestamp() < now:
            return _token_error(401, "invalid_client", 700027,
                                "Client assertion contains an invalid signature. [Reason - The key used is expired., "
                                f"Thumbprint of key used by client: '{x5t}']")
        claims = token.claims
        expected_audience = self.token_url(directory_id)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(a, str) and a.lower() == expected_audience.lower() for a in audiences):
            return _token_error(401, "invalid_client", 700212,
                                f"No matching federated identity record found for presented assertion audience "
                                f"'{audience}'. The audience must be the token endpoint '{expected_audience}'.")
        if _key(str(claims.get("iss"))) != _key(app.client_id) or _key(str(claims.get("sub"))) != _key(app.client_id):
            return _token_error(401, "invalid_client", 700021,
                                "Client assertion application identifier doesn't match 'client_id' parameter "
                                "(iss and sub must be the client id).")
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            return _token_error(400, "invalid_request", 50027, "JWT token is invalid or malformed: no 'jti' claim.")
        expires, not_before = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
        if not isinstance(expires, int | float) or not isinstance(not_before, int | float):
            return _token_error(400, "invalid_request", 50027,
                                "JWT token is invalid or malformed: 'exp' (and 'nbf') must be numeric dates.")
        if expires <= now or not_before > now + ASSERTION_CLOCK_SKEW_SECONDS:
            return _token_error(401, "invalid_client", 700024,
                                f"Client assertion is not within its valid time range. Current time: "
                                f"{_ticks_text(int(now * _TICKS_PER_SECOND))}, assertion valid from "
                                f"{_ticks_text(int(not_before * _TICKS_PER_SECOND))}, expiry time of assertion "
                                f"{_ticks_text(int(expires * _TICKS_PER_SECOND))}.")
        return None

    # --- Graph ----------------------------------------------------------------------------------

    def _graph(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> _Response:
        authorization = headers.get("authorization", "")
        scheme, _, access_token = authorization.partition(" ")
        token = self._tokens.get(access_token.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            message = "Access token is empty." if not authorization else "Invalid access token."
            return _graph_error(401, "InvalidAuthenticationToken", message, headers, _www_authenticate())
        directory = self._directories[token.directory_id]
        response = self._graph_for(directory, token, method, path, query, headers, body)
        directory.requests.append({
            "method": method,
            "path": path,
            "query": dict(parse_qsl(query, keep_blank_values=True)),
            "status": response.status,
        })
        return response

    def _graph_for(self, directory: _Directory, token: _Token, method: str, path: str, query: str,
                   headers: dict[str, str], body: bytes) -> _Response:
        if directory.down:
            return _graph_error(503, "ServiceUnavailable", "The service is temporarily unavailable.",
                                headers, {"Retry-After": "1"})
        if token.revoked or token.expires_at <= time.time():
            return _graph_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.",
                                headers, _www_authenticate())
        if directory.throttled_requests > 0:
            directory.throttled_requests -= 1
            return _graph_error(429, "TooManyRequests", "Too many requests.", headers,
                                {"Retry-After": str(directory.throttle_retry_after)})
        try:
            options = _query_options(query)
            if path == ALERTS_PATH:
                if method != "GET":
                    return _method_not_allowed(headers)
                return self._list(directory, token, options, headers)
            segment = path[len(ALERTS_PATH) + 1:]  # still percent-encoded: an id may hold a quoted "/"
            if "/" in segment or not segment:
                return _graph_error(400, "BadRequest", f"Resource not found for the segment '{path}'.", headers)
            alert_id = unquote(segment)
            if method == "GET":
                return self._get(directory, alert_id, options, headers)
            if method == "PATCH":
                return self._patch(directory, token, alert_id, headers, body)
            return _method_not_allowed(headers)
        except _BadRequest as error:
            return _graph_error(400, "BadRequest", str(error), headers)

    def _list(self, directory: _Directory, token: _Token, options: dict[str, str],
              headers: dict[str, str]) -> _Response:
        if "skiptoken" in options:
            listing = self._listings.get(options["skiptoken"])
            if listing is None or listing.directory_id != token.directory_id:
                raise _BadRequest("The $skiptoken is not valid.")
        else:
            listing = _Listing(
                directory_id=token.directory_id,
                predicate=parse_filter(options["filter"]) if "filter" in options else None,
                page_size=_top(options.get("top")),
                select=_select(options.get("select")),
                count=_count(options.get("count")),
                after_sequence=0,
            )
        matching = [(sequence, alert) for sequence, alert in directory.alerts.values()
                    if listing.predicate is None or listing.predicate(alert)]
        remaining = [(sequence, alert) for sequence, alert in matching if sequence > listing.after_sequence]
        size = min(directory.page_size, listing.page_size or directory.page_size)
        page = remaining[:size]
        context = "security/partner/securityAlerts"
        if listing.select:
            context += f"({','.join(listing.select)})"
        document: dict[str, Any] = {"@odata.context": f"{self.base_url}/beta/$metadata#{context}"}
        if listing.count:
            document["@odata.count"] = len(matching)
        document["value"] = [_project(alert, listing.select) for _, alert in page]
        if len(remaining) > size:
            skiptoken = secrets.token_urlsafe(24)
            self._listings[skiptoken] = _Listing(listing.directory_id, listing.predicate, listing.page_size,
                                                 listing.select, listing.count, page[-1][0])
            document["@odata.nextLink"] = f"{self.alerts_url}?$skiptoken={quote(skiptoken, safe='')}"
        return _odata_response(200, document, headers)

    def _get(self, directory: _Directory, alert_id: str, options: dict[str, str],
             headers: dict[str, str]) -> _Response:
        select = _select(options.get("select"))
        stored = directory.alerts.get(alert_id)
        if stored is None:
            return _not_found(alert_id, headers)
        document = {"@odata.context": f"{self.base_url}/beta/$metadata#security/partner/securityAlerts/$entity",
                    **_project(stored[1], select)}
        return _odata_response(200, document, headers)

    def _patch(self, directory: _Directory, token: _Token, alert_id: str, headers: dict[str, str],
               body: bytes) -> _Response:
        if directory.patch_refusal is not None:
            refusal = directory.patch_refusal
            return _graph_error(refusal.status, refusal.code, refusal.message, headers)
        change = _patch_body(headers, body)
        stored = directory.alerts.get(alert_id)
        if stored is None:
            return _not_found(alert_id, headers)
        alert = stored[1]
        at = graph_time()
        _apply_change(alert, status=change["status"], resolved_reason=change.get("resolvedReason"),
                      set_reason="resolvedReason" in change, by=token.client_id, at=at)
        directory.patches.append({"alertId": alert_id, "body": change, "at": datetime.now(UTC)})
        document = {"@odata.context": f"{self.base_url}/beta/$metadata#security/partner/securityAlerts/$entity",
                    **copy.deepcopy(alert)}
        return _odata_response(200, document, headers)


def _apply_change(alert: dict, *, status: str, resolved_reason: str | None, set_reason: bool, by: str,
                  at: str) -> None:
    """A status change: an activity log entry; resolving records when and by whom, leaving the resolved
    state clears that record again."""
    alert.setdefault("activityLogs", []).append(
        {"statusFrom": alert.get("status"), "statusTo": status, "updatedBy": by, "updatedDateTime": at})
    alert["status"] = status
    if set_reason:
        alert["resolvedReason"] = resolved_reason
    if status == "resolved":
        alert["resolvedOnDateTime"] = at
        alert["resolvedBy"] = by
    else:
        alert["resolvedOnDateTime"] = None
        alert["resolvedBy"] = None


def _patch_body(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The PATCH's JSON, checked as Graph's OData layer does (raises ``_BadRequest``)."""
    unreadable = _BadRequest("Unable to read JSON request payload. Please ensure Content-Type header is set and "
                             "payload is of valid JSON format.")
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise unreadable
    try:
        change = json.loads(body)
    except ValueError:
        raise unreadable from None
    if not isinstance(change, dict):
        raise unreadable
    for name in change:
        if name == "@odata.type":
            if change[name] != ALERT_TYPE:
                raise _BadRequest(f"A type named '{change[name]}' could not be resolved by the model; "
                                  f"expected '{ALERT_TYPE}'.")
        elif name in ALL_PROPERTIES and name not in ("status", "resolvedReason"):
            raise _BadRequest(f"The property '{name}' is read-only and cannot be updated.")
        elif name not in ("status", "resolvedReason"):
            raise _BadRequest(f"The property '{name}' does not exist on type "
                              "'microsoft.graph.partner.security.partnerSecurityAlert'. Make sure to only use "
                              "property names that are defined by the type.")
    if change.get("status") is None:
        raise _BadRequest("The 'status' property is required.")
    for name, members in (("status", STATUSES), ("resolvedReason", RESOLVED_REASONS)):
        value = change.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _BadRequest(f"Cannot convert the literal '{json.dumps(value)}' to the expected type "
                              f"'microsoft.graph.partner.security.{name}' for the property '{name}'.")
        if value not in members:
            raise _BadRequest(f"Requested value '{value}' was not found for the property '{name}' "
                              f"(one of {', '.join(members)}).")
    return {name: value for name, value in change.items() if name != "@odata.type"}


def _query_options(query: str) -> dict[str, str]:
    """System query options by name without ``$`` (beta makes the ``$`` optional), case-insensitive."""
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        option = name.lower().removeprefix("$")
        if option not in ("filter", "top", "select", "count", "skiptoken", "orderby", "skip", "expand", "search"):
            continue  # Graph ignores parameters it does not know
        if option in ("orderby", "skip", "expand", "search"):
            raise _BadRequest(f"Query option '${option}' is not supported on this resource.")
        if option in options:
            raise _BadRequest(f"Query option '${option}' was specified more than once, but it must be "
                              "specified at most once.")
        options[option] = value
    return options


def _top(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise _BadRequest(f"Invalid value '{value}' for $top query option found.")
    return int(value)


def _count(value: str | None) -> bool:
    if value is None or value.lower() == "false":
        return False
    if value.lower() == "true":
        return True
    raise _BadRequest(f"'{value}' is not a valid count option.")


def _select(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        if name not in ALL_PROPERTIES:
            raise _BadRequest(f"Could not find a property named '{name}' on type "
                              "'microsoft.graph.partner.security.partnerSecurityAlert'.")
    return names


def _project(alert: dict, select: list[str] | None) -> dict:
    if select is None:
        return copy.deepcopy(alert)
    return {name: copy.deepcopy(alert.get(name)) for name in select}


def _json_response(status: int, document: Any, headers: dict[str, str] | None = None,
                   content_type: str = "application/json; charset=utf-8") -> _Response:
    return _Response(status, json.dumps(document).encode(), {"Content-Type": content_type, **(headers or {})})


def _request_ids(request_headers: dict[str, str]) -> dict[str, str]:
    return {"request-id": str(uuid.uuid4()),
            "client-request-id": request_headers.get("client-request-id") or str(uuid.uuid4())}


def _odata_response(status: int, document: Any, request_headers: dict[str, str]) -> _Response:
    return _json_response(status, document, {**_request_ids(request_headers), "OData-Version": "4.0"}, ODATA_JSON)


def _graph_error(status: int, code: str, message: str, request_headers: dict[str, str],
                 headers: dict[str, str] | None = None) -> _Response:
    ids = _request_ids(request_headers)
    document = {"error": {"code": code, "message": message, "innerError": {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), **ids}}}
    return _json_response(status, document, {**ids, **(headers or {})})


def _not_found(alert_id: str, headers: dict[str, str]) -> _Response:
    return _graph_error(404, "ResourceNotFound",
                        f"Resource '{alert_id}' does not exist or one of its queried reference-property objects "
                        "are not present.", headers)


def _method_not_allowed(headers: dict[str, str]) -> _Response:
    return _graph_error(405, "BadRequest", "Specified HTTP method is not allowed for the request target.", headers)


def _www_authenticate() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                                'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'}


def _token_error(status: int, error: str, code: int, description: str,
                 headers: dict[str, str] | None = None) -> _Response:
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return _json_response(status, {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
                             f"Timestamp: {timestamp}",
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache", **(headers or {})})


def _load_certificate(pem: str) -> x509.Certificate:
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.DOTALL)
    if not blocks:
        raise ValueError("certificate_pem holds no PEM certificate")
    certificate = x509.load_pem_x509_certificate(blocks[0].encode())
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise ValueError("the identity platform signs client assertions with RSA certificates only")
    return certificate


# --- the server -----------------------------------------------------------------------------------


def run_graph_emulator() -> Iterator[GraphEmulator]:
    """Start the emulator on a free port of 127.0.0.1, yield it, stop it (use as a fixture body)."""
    emulator = GraphEmulator()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real client's connection pool expects

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            response = emulator.respond(self.command, self.path, headers, body)
            try:
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)
            except OSError:
                pass  # the client went away meanwhile

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    emulator.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="graph-emulator", daemon=True)
    thread.start()
    try:
        yield emulator
    finally:
        server.shutdown()
        server.server_close()


# --- certificates for the tests -------------------------------------------------------------------


def make_certificate(*, common_name: str = "csp-alert-triage test", key_type: str = "rsa",
                     not_valid_before: datetime | None = None,
                     not_valid_after: datetime | None = None) -> tuple[str, str]:
    """A self-signed certificate: ``(private key + certificate PEM, certificate PEM)``, the first as an
    app keeps it (azure-identity's CertificateCredential format), the second as uploaded to the app
    registration. ``key_type`` "rsa" (2048 bits) or "ec" (P-256, which the identity platform refuses)."""
    if key_type == "rsa":
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=2048)
    elif key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unknown key_type {key_type!r}")
    now = datetime.now(UTC)
    start = not_valid_before or now - timedelta(minutes=5)
    end = not_valid_after or now + timedelta(days=365)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem + certificate_pem, certificate_pem
