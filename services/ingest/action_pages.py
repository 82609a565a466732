"""The small HTML pages of the one-click responses (``routes_actions``, one alert) and of the bulk
acknowledge links of storm digests (``routes_bulk_actions``, a list of alerts): Jinja2, autoescaped.

Every page (and every problem document these routes answer with) is sent with headers that keep the
link to itself: no ``Referer`` carries the token to another site, no cache keeps it, no frame shows
the confirmation button inside someone else's page (clickjacking), no script or resource loads at all.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from shared.alerts import Alert

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:38rem;padding:0 1rem;color:#1b1b1b}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.3rem 1rem}dt{font-weight:600}dd{margin:0}"
    "button{font-size:1.1rem;padding:.6rem 1.2rem;cursor:pointer}.who,.note,.advice{color:#4a4a4a}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;"
    "border-bottom:1px solid #ddd}h2{font-size:1.1rem;margin-top:1.5rem}"
)
# The one inline style is allowed by its hash; nothing else may load or run.
_STYLE_SOURCE = "'sha256-" + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode() + "'"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        f"default-src 'none'; style-src {_STYLE_SOURCE}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

_TEMPLATES = Environment(
    loader=PackageLoader("services.ingest", "templates"), autoescape=True, undefined=StrictUndefined
)
_PAGE = _TEMPLATES.get_template("action_page.html.j2")
_BULK_PAGE = _TEMPLATES.get_template("bulk_action_page.html.j2")

_JSON_TYPES = frozenset({"application/json", "application/problem+json"})
_HTML_TYPES = frozenset({"text/html", "text/*", "*/*"})


@dataclass(frozen=True)
class AlertSummary:
    """What a page shows of an alert (as the write API last recorded it)."""

    id: str
    title: str
    severity: str
    customer: str
    status: str

    @classmethod
    def of(cls, alert: Alert) -> AlertSummary:
        customer = alert.customer_tenant_id or "not given"
        name = alert.additional_details.get("customerName")
        if isinstance(name, str) and name.strip():
            customer = f"{name.strip()} ({customer})"
        status = alert.status.value if alert.status else "active"
        if alert.resolved_reason:
            status += f" ({alert.resolved_reason.value})"
        return cls(
            id=alert.id,
            title=alert.display_name or alert.alert_type or alert.id,
            severity=alert.severity.value if alert.severity else "not given",
            customer=customer,
            status=status,
        )

    @classmethod
    def unknown(cls, alert_id: str) -> AlertSummary:
        """An id a bulk link lists that names no alert of its tenant here."""
        return cls(id=alert_id, title="not known", severity="-", customer="-", status="not known")


@dataclass(frozen=True)
class AlertList:
    """A captioned list of alerts on a bulk link's page (those to acknowledge, those left as they are)."""

    caption: str
    alerts: Sequence[AlertSummary]
    note: str | None = None


def wants_json(accept: str | None) -> bool:
    """Whether the client prefers a JSON problem to an HTML page: it names a JSON type with a higher
    preference than HTML (``*/*``, a browser's or a missing Accept: the page)."""
    json_q = html_q = 0.0
    for entry in (accept or "").split(","):
        media, *parameters = (part.strip() for part in entry.split(";"))
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media in _JSON_TYPES:
            json_q = max(json_q, q)
        elif media in _HTML_TYPES:
            html_q = max(html_q, q)
    return json_q > html_q


def page(
    status_code: int,
    *,
    heading: str,
    message: str,
    alert: AlertSummary | None = None,
    recipient: str | None = None,
    confirm_label: str | None = None,
    expires: datetime | None = None,
    advice: str | None = None,
) -> HTMLResponse:
    """A page; with ``confirm_label``, the form that confirms the action (it posts to the same URL)."""
    html = _PAGE.render(
        style=Markup(_STYLE),
        heading=heading,
        message=message,
        alert=alert,
        recipient=recipient,
        confirm_label=confirm_label,
        expires=f"{expires:%Y-%m-%d %H:%M} UTC" if expires else "it expires",
        advice=advice,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def bulk_page(
    status_code: int,
    *,
    heading: str,
    message: str,
    lists: Sequence[AlertList],
    recipient: str,
    confirm_label: str | None = None,
    expires: datetime | None = None,
    advice: str | None = None,
) -> HTMLResponse:
    """A bulk link's page: its alerts in captioned lists; with ``confirm_label``, the form that
    confirms (it posts to the same URL), that label on its button."""
    html = _BULK_PAGE.render(
        style=Markup(_STYLE),
        heading=heading,
        message=message,
        sections=[section for section in lists if section.alerts],
        recipient=recipient,
        confirm_label=confirm_label,
        expires=f"{expires:%Y-%m-%d %H:%M} UTC" if expires else "it expires",
        advice=advice,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
