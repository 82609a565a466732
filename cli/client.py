"""The two APIs over HTTP (httpx): one request, one answer or one exception saying what went wrong.

A refused request (any 4xx/5xx) is :class:`ApiProblem`, carrying the problem document the API
answered with; an API that cannot be reached at all is :class:`Unreachable`, naming its URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from cli.output import problem_line


class ApiProblem(Exception):
    """The API refused: its status and its problem document (``application/problem+json``)."""

    def __init__(self, status: int, body: Any, text: str = "", retry_after: str | None = None) -> None:
        self.status, self.body = status, body
        self.line = problem_line(status, body, text, retry_after)
        super().__init__(self.line)

    @classmethod
    def of(cls, response: httpx.Response) -> ApiProblem:
        return cls(response.status_code, _json_or_none(response), response.text,
                   response.headers.get("Retry-After"))


class Unreachable(Exception):
    """No answer at all from ``url`` (connection refused, DNS, timeout...)."""

    def __init__(self, url: str, reason: Exception) -> None:
        self.url = url
        super().__init__(f"cannot reach {url}: {reason or type(reason).__name__}")


def segment(value: str) -> str:
    """``value`` as one path segment: an alert id may hold ``/``, ``?`` or ``#``."""
    return quote(value, safe="")


def _json_or_none(response: httpx.Response) -> Any:
    if not response.content or "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


class Api:
    """One of the two APIs, at ``url``, called with ``key`` (``Authorization: Bearer``)."""

    def __init__(self, url: str, key: str | None, timeout: float) -> None:
        self.url = url
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None) -> Any:
        """The answer's JSON (None if it has no body); raises :class:`ApiProblem` or :class:`Unreachable`."""
        # None, not {}: httpx replaces a URL's query with the params given, even empty ones, and a
        # followed next link carries its position in its query.
        present = {name: value for name, value in (params or {}).items() if value is not None} or None
        try:
            response = self._http.request(method, path, params=present, json=json)
        except httpx.TransportError as exc:
            raise Unreachable(self.url, exc) from None
        if response.is_error:
            raise ApiProblem.of(response)
        return _json_or_none(response)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def get_if_any(self, path: str, **params: Any) -> Any:
        """The answer, or None where the API says there is none (404: no contact set...)."""
        try:
            return self.get(path, **params)
        except ApiProblem as problem:
            if problem.status == 404:
                return None
            raise

    def every(self, path: str, params: dict[str, Any], page_size: int) -> Iterator[Any]:
        """Every item of a paged list, as the pages come (following ``@odata.nextLink`` to the last)."""
        document = self.get(path, **params, top=page_size)
        while True:
            yield from document.get("value", [])
            link = document.get("@odata.nextLink")
            if not link:
                return
            document = self.get(link)

    def pages(self, path: str, params: dict[str, Any], limit: int, page_size: int) -> dict[str, Any]:
        """Up to ``limit`` items of a paged list, following ``@odata.nextLink`` as the API gives it
        (absolute, or relative to this API's URL), in one document of the API's shape: ``value``, and
        ``@odata.nextLink`` when there is more. The last page asked for holds no more than is still
        wanted (its ``top`` is lowered), so the link given back starts right after the last item."""
        items: list[Any] = []
        document = self.get(path, **params, top=min(page_size, limit))
        while True:
            items.extend(document.get("value", []))
            link = document.get("@odata.nextLink")
            wanted = limit - len(items)
            if not link or wanted <= 0:
                break
            page = httpx.URL(link)
            if int(page.params.get("top", wanted + 1)) > wanted:
                page = page.copy_set_param("top", wanted)
            document = self.get(str(page))
        result: dict[str, Any] = {"value": items}
        if link:
            result["@odata.nextLink"] = link
        return result
