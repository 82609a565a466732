"""What the one-click response routes (``routes_actions``, one alert; ``routes_bulk_actions``, a storm
digest's bulk acknowledge) share: the token path parameter, their refusals (each a page, or a
problem document for a client asking for JSON, always with the pages' security headers) and their
OpenAPI description."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import Response

from services.ingest.action_pages import SECURITY_HEADERS, page, wants_json
from shared.http import problem_response
from shared.problems import DEPENDENCY_RETRY_AFTER_SECONDS, PROBLEM_JSON

Token = Annotated[str, Path(max_length=4096, description="The signed link's token, as the e-mail gives it.")]

DASHBOARD_ADVICE = "Open the alert from the dashboard link in the e-mail to see where it stands and respond there."


def refusal_doc(description: str, headers: dict | None = None) -> dict:
    doc = {
        "description": description,
        "content": {
            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}},
            "text/html": {"schema": {"type": "string"}},
        },
    }
    return {**doc, "headers": headers} if headers else doc


# Each refusal is a page, or a problem document for a client asking for JSON.
REFUSALS = {
    400: refusal_doc("Not a link this deployment signed: altered, signed with another key, or malformed"),
    404: refusal_doc("The link's alert is not known (anymore)"),
    410: refusal_doc("The link expired (`ACTION_LINK_MAX_AGE_HOURS`)"),
    503: refusal_doc(
        "The database does not answer: nothing changed; retry after `Retry-After` seconds",
        {"Retry-After": {"description": "Seconds to wait before retrying.",
                         "schema": {"type": "integer", "minimum": 1}}},
    ),
}
# No key: the signed token is the credential (an empty requirement, stated).
NO_KEY = {"security": []}


class Refusal(Exception):
    def __init__(self, status: int, title: str, detail: str, advice: str = DASHBOARD_ADVICE,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.advice, self.headers = status, title, detail, advice, headers


def refused(request: Request, refusal: Refusal) -> Response:
    headers = {**SECURITY_HEADERS, **(refusal.headers or {})}
    if wants_json(request.headers.get("accept")):
        # (No `instance`: the path is the credential.)
        return problem_response(refusal.status, refusal.title, refusal.detail, headers=headers)
    response = page(refusal.status, heading=refusal.title, message=refusal.detail, advice=refusal.advice)
    response.headers.update(headers)
    return response


def unavailable() -> Refusal:
    return Refusal(503, "Try again in a minute", "The service cannot reach its database just now; nothing was changed.",
                   advice="Reload this page in a minute.",
                   headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)})


def max_age(settings) -> timedelta:
    return timedelta(hours=settings.action_link_max_age_hours)


def used_refusal() -> Refusal:
    return Refusal(409, "This link was already used",
                   "The response it stands for was recorded when it was first confirmed; a link works once. "
                   "Nothing was changed now.")
