"""What every service's app checks before a route runs (wired by ``shared.http.create_app``).

- A request body is bounded before anything reads or parses it: a declared ``Content-Length`` over
  the limit is 413 before a byte is read; a chunked body is counted while it is read and cut (413)
  at the limit. The limit is the service's ``MAX_BODY_BYTES`` (``app.state.settings.max_body_bytes``)
  or, for a service without that setting, :data:`DEFAULT_MAX_BODY_BYTES`.
- The bearer key of a request with a body is authenticated before the body is read, so a caller
  without a valid key never makes the service read (up to) a whole body. The principal is kept in the
  request's state and :func:`authenticated_caller` hands it to the route: a key is looked up, and
  its rate limit counted, once per request. A request signed as a Standard Webhook
  (``webhook-id``/``webhook-timestamp``/``webhook-signature``) to a route marked
  :func:`accepts_signature` is read within the limit and left to the route, which verifies the
  signature over that body; to any other route its webhook headers change nothing. A route marked
  :func:`takes_no_key` (a one-click response link: the signed token in its path is the credential)
  is asked for no key; its body is still bounded.
- Every request under ``/v1/`` that is not a signed webhook is authenticated here, with or without a
  body, and held to its key's scope before anything else: a tenant's key acts only under
  ``/v1/tenants/{its tenant}/``, and only an operator's key (one of every tenant) reaches the
  deployment-wide routes (``/v1/keys``, ``/v1/audit``). So a key of another tenant gets 403 before
  its body is parsed or its parameters judged; the role's permission is each route's to check.
- No path or query parameter holds NUL (PostgreSQL cannot store or compare it): 422 naming it.
  Other control characters are each parameter's to refuse (an alert id may hold a line break).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request
from fastapi.routing import iter_route_contexts
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.problems import DEPENDENCY_ERRORS, Problem, dependency_unavailable, response_for
from shared.webhooks import has_signature

if TYPE_CHECKING:
    from shared.auth import KeyStore, Principal

log = logging.getLogger(__name__)

# Largest body of a service with no MAX_BODY_BYTES setting (none of their routes takes a body).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Where the authenticated principal is kept in the request's state (``request.state.caller``).
CALLER_STATE = "caller"
_AUTHENTICATES = "_authenticates_caller"

DependencyT = TypeVar("DependencyT", bound=Callable[..., Any])


def authenticates(dependency: DependencyT) -> DependencyT:
    """Marks a dependency that authenticates the caller: the OpenAPI document of every route using it
    lists the answers of authentication (401, 403, 429)."""
    setattr(dependency, _AUTHENTICATES, True)
    return dependency


def is_authenticating(dependency: Callable[..., Any] | None) -> bool:
    return bool(getattr(dependency, _AUTHENTICATES, False))


async def authenticated_caller(request: Request, authorization: str | None, keys: KeyStore | None = None) -> Principal:
    """The caller the guard authenticated before reading the body; else (no body) authenticated now
    with ``keys`` (default: ``app.state.keys``), once: the principal is kept for the rest of the request."""
    state = request.scope.setdefault("state", {})
    caller = state.get(CALLER_STATE)
    if caller is None:
        keys = keys if keys is not None else request.app.state.keys
        caller = await keys.authenticate(authorization)
        check_scope(caller, request.url.path, request.method)
        state[CALLER_STATE] = caller
    return caller


_NUL_MESSAGE = "must not contain NUL (U+0000)"
_ROUTES_STATE = "routes"


def _routes(app: Any) -> list[tuple[frozenset[str], Any, Any]]:
    """Every route as included (with its router's prefix), in the order routing tries them: its methods,
    its path's pattern and its endpoint. Read once per app."""
    routes = getattr(app.state, _ROUTES_STATE, None)
    if routes is None:
        routes = [(frozenset(route.methods or ()), route.path_regex, getattr(route, "endpoint", None))
                  for route in iter_route_contexts(app.routes) if getattr(route, "path_regex", None) is not None]
        setattr(app.state, _ROUTES_STATE, routes)
    return routes


def nul_parameter(scope: Scope) -> str | None:
    """The first path or query parameter (``path.<name>`` or ``query.<name>``) of the route that takes the
    request holding NUL in its name or value; None if none does, or no route takes it (routing then
    answers 404 or 405). Cheap when there is no NUL anywhere: two substring checks."""
    path: str = scope["path"]
    query: bytes = scope.get("query_string") or b""
    if "\x00" not in path and b"%00" not in query:
        return None
    method = scope["method"]
    for methods, regex, _ in _routes(scope["app"]):
        if methods and method not in methods:
            continue
        if (match := regex.match(path)) is None:
            continue
        for name, value in match.groupdict().items():
            if "\x00" in name or "\x00" in value:
                return f"path.{name}"
        for name, value in QueryParams(query).multi_items():
            if "\x00" in name or "\x00" in value:
                return f"query.{name}"
        return None
    return None


def _nul_problem(field: str) -> Problem:
    """422 naming the parameter: PostgreSQL can neither store nor compare NUL."""
    return Problem(422, "Invalid request", f"{field}: {_NUL_MESSAGE}",
                   errors=[{"field": field, "message": _NUL_MESSAGE}])


def _too_large(limit: int) -> Problem:
    return Problem(413, "Request too large", f"the body may be at most {limit} bytes")


def _declared_length(headers: Headers) -> int | None:
    declared = headers.get("content-length", "").strip()
    return int(declared) if declared.isdigit() else None


async def _read_within(receive: Receive, limit: int) -> bytes | None:
    """The whole body, counted while read; 413 as soon as it passes ``limit``. None: the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then whatever the server sends (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


API_PREFIX = "/v1/"
_TENANTS_PREFIX = "/v1/tenants/"
# Routes about the calling key itself, open to any valid key (its tenant's or an operator's).
ANY_KEY_PATHS = frozenset({"/v1/me"})


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_scope(principal: Principal, path: str, method: str = "GET") -> None:
    """403 unless ``path`` lies within what the key may reach: its tenant's routes (every tenant's,
    for a key of every tenant), the deployment-wide ones only for an operator's key; and no change
    at all for a read-only role. Each route still checks the permission it needs."""
    if not path.startswith(API_PREFIX) or path in ANY_KEY_PATHS:
        return
    whose = "every tenant" if principal.tenant_id is None else f"tenant {principal.tenant_id}"
    if path.startswith(_TENANTS_PREFIX):
        tenant_id = path[len(_TENANTS_PREFIX):].split("/", 1)[0]
        if principal.tenant_id not in (None, tenant_id):
            raise Problem(403, "Forbidden", f"a key of {whose} may not act for tenant {tenant_id}")
    elif not principal.is_operator:
        raise Problem(403, "Forbidden", f"a {principal.role.value} key of {whose} may not use the "
                      "deployment-wide routes (an operator's key does)")
    if method not in _SAFE_METHODS and not principal.may_change_anything:
        raise Problem(403, "Forbidden", f"role {principal.role.value} may only read")


_ACCEPTS_SIGNATURE = "_accepts_standard_webhook_signature"
_TAKES_NO_KEY = "_takes_no_key"
_MARKED_ROUTES_STATE = "marked_routes"


def accepts_signature(endpoint: DependencyT) -> DependencyT:
    """Marks a route that verifies a Standard Webhooks signature itself (over the raw body): a
    request signed to it is not asked for a key by the guard."""
    setattr(endpoint, _ACCEPTS_SIGNATURE, True)
    return endpoint


def takes_no_key(endpoint: DependencyT) -> DependencyT:
    """Marks a route whose credential is in its URL (a signed one-click response link,
    ``shared.action_links``), checked by the route itself: the guard asks no key for it."""
    setattr(endpoint, _TAKES_NO_KEY, True)
    return endpoint


def _route_marked(app: Any, method: str, path: str, marker: str) -> bool:
    marked_routes: dict[str, list] = getattr(app.state, _MARKED_ROUTES_STATE, None) or {}
    routes = marked_routes.get(marker)
    if routes is None:
        # Once per app and marker.
        routes = marked_routes[marker] = [(methods, regex) for methods, regex, endpoint in _routes(app)
                                          if getattr(endpoint, marker, False)]
        setattr(app.state, _MARKED_ROUTES_STATE, marked_routes)
    return any(method in methods and regex.match(path) for methods, regex in routes)


class RequestGuard:
    """Pure ASGI middleware: bound the body, authenticate before reading it (see the module's text)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = _declared_length(headers)
        # (A chunked body is a body whatever Content-Length says beside it.)
        has_body = "transfer-encoding" in headers or (declared or 0) > 0
        path: str = scope["path"]
        state = scope["app"].state
        keys = getattr(state, "keys", None)
        # A signed post is verified by its route over the (bounded) body; only a route that accepts
        # signatures may skip the key: elsewhere a webhook header changes nothing.
        signed = has_signature(headers) and _route_marked(scope["app"], scope["method"], path, _ACCEPTS_SIGNATURE)
        # A body is never read for an unknown caller; under /v1 every caller is known before a route
        # runs (a one-click link's route knows it by the signed token in its path).
        authenticate = (keys is not None and (has_body or path.startswith(API_PREFIX)) and not signed
                        and not _route_marked(scope["app"], scope["method"], path, _TAKES_NO_KEY))
        # (Checked here rather than as every route's dependency: a dependency costs on every request.)
        nul_field = nul_parameter(scope)
        if not has_body and not authenticate and nul_field is None:
            await self.app(scope, receive, send)
            return
        limit = getattr(getattr(state, "settings", None), "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
        body: bytes | None = None
        try:
            if has_body and declared is not None and declared > limit:
                raise _too_large(limit)
            if authenticate:
                principal = await keys.authenticate(headers.get("authorization"))
                check_scope(principal, path, scope["method"])
                scope.setdefault("state", {})[CALLER_STATE] = principal
            if nul_field is not None:
                raise _nul_problem(nul_field)
            if has_body:
                body = await _read_within(receive, limit)
                if body is None:
                    return  # the client left
        except Problem as problem:
            await response_for(problem, scope["path"])(scope, receive, send)
            return
        except DEPENDENCY_ERRORS as exc:
            # The key store's database does not answer (the handlers inside would say the same).
            log.warning("%s %s: the key store is unavailable: %s: %s", scope["method"], scope["path"],
                        type(exc).__name__, exc)
            await dependency_unavailable(scope["path"])(scope, receive, send)
            return
        await self.app(scope, receive if body is None else _replaying(body, receive), send)
