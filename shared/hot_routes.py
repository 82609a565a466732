"""The busiest routes of an API answered ahead of FastAPI's routing (#15).

On every request FastAPI tries the app's routes in turn, then resolves the matched route's parameters
and dependencies through its generic machinery. For the routes polled hardest (the read API's
``GET /security-score``, what dashboards and monitors ask every few seconds; the write API's
``POST /alerts``, a webhook per alert) that was a third of the Python calls of a score read.
:func:`serve_ahead` puts a plain Starlette route for the same method and path in front of the app's
routes: it validates the path's parameters with the endpoint's own annotations (an invalid one is the
same 422, raised as FastAPI raises it, answered by the same handler) and calls the same endpoint. The
FastAPI route stays where it was: it documents the operation in the OpenAPI document, and answers what
the one in front does not take (``HEAD``).

Only for an endpoint taking the request and path parameters, no query, header, body or dependency, on
a route whose own dependencies (its routers') take the request alone and give nothing back, as a
guard does (they run first, in their order, as FastAPI runs them): anything else is refused when the
app is built, as there would be nothing to resolve it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, get_type_hints

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from pydantic import TypeAdapter, ValidationError
from starlette.routing import Route, compile_path

Endpoint = Callable[..., Awaitable[Response]]


def serve_ahead(app: FastAPI, endpoint: Endpoint) -> Route:
    """Answer ``endpoint``'s route (it must have exactly one) before any other route of ``app`` is
    tried. Call it once every router is included."""
    contexts = [c for c in iter_route_contexts(app.routes) if c.endpoint is endpoint]
    if len(contexts) != 1:
        raise ValueError(f"{endpoint.__name__} serves {len(contexts)} routes; serve_ahead needs exactly one")
    context = contexts[0]
    path, methods = context.path, set(context.methods or ())
    guards = [_guard(endpoint, depends.dependency) for depends in getattr(context, "dependencies", None) or ()]
    path_names = set(compile_path(path)[2])
    hints = get_type_hints(endpoint, include_extras=True)
    request_name: str | None = None
    validators: dict[str, TypeAdapter[Any]] = {}
    for name in inspect.signature(endpoint).parameters:
        if hints.get(name) is Request:
            request_name = name
        elif name in path_names:
            validators[name] = TypeAdapter(hints[name])
        else:
            raise ValueError(f"{endpoint.__name__} takes {name!r}, not a path parameter: serve_ahead cannot give it")

    async def answer(request: Request) -> Response:
        # The route the metrics (shared.metrics.HttpMetrics) label the request with: its template.
        request.scope["route"] = route
        for guard in guards:
            await guard(request)
        values: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for name, validator in validators.items():
            try:
                values[name] = validator.validate_python(request.path_params[name])
            except ValidationError as exc:
                errors.extend({**error, "loc": ("path", name, *error["loc"])} for error in exc.errors())
        if errors:
            raise RequestValidationError(errors)
        if request_name is not None:
            values[request_name] = request
        return await endpoint(**values)

    route = Route(path, answer, methods=sorted(methods), name=context.name)
    # Exactly the FastAPI route's methods: Starlette would add HEAD to a GET, which that route does not serve.
    route.methods = methods
    app.router.routes.insert(0, route)
    return route


def _guard(endpoint: Endpoint, dependency: Callable[..., Any] | None) -> Callable[[Request], Awaitable[Any]]:
    """A route's dependency that ``serve_ahead`` can run: a coroutine function of the request alone."""
    name = getattr(dependency, "__name__", repr(dependency))
    if dependency is None or not inspect.iscoroutinefunction(dependency):
        raise ValueError(f"{endpoint.__name__}'s route depends on {name}, not a coroutine function of the request; "
                         "serve_ahead would not resolve it")
    hints = get_type_hints(dependency)
    parameters = list(inspect.signature(dependency).parameters)
    if len(parameters) != 1 or hints.get(parameters[0]) is not Request:
        raise ValueError(f"{endpoint.__name__}'s route depends on {name}, which takes more than the request; "
                         "serve_ahead would not resolve it")
    return dependency
