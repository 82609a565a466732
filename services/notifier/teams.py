"""Microsoft Teams as a channel kind (#13): the Adaptive Card a Teams channel receives, and how Teams'
answers read. Pure: no I/O, the time is given.

A Teams channel's URL is an incoming webhook or a Workflows ("post card to a channel") trigger; both
take a ``message`` whose one attachment is the card, and answer 200 (an incoming webhook, body ``1``)
or 202 (Workflows). Teams verifies no signature (the URL is the credential), so nothing is signed.

Alert fields come from outside. Teams reads a TextBlock's text, and a FactSet's, as Markdown: a title
``[Verify your account](https://evil.example)`` would show as a link in the partner's own Teams. So
every text from an alert goes in a TextRun of a RichTextBlock, which Teams never reads as Markdown;
only this module's own sentences are TextBlocks. Teams refuses a message over 28 KB: each text from
outside is cut to a bound that keeps the worst case (every character escaped in JSON) well under it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from services.notifier.domain import Attempt, Kind, Links, classify_status, detection_time, header_text, time_left_text
from shared.events import AlertCreated

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"  # what Teams renders in channels (incoming webhooks and Workflows)

# Bounds of the texts from outside, in characters (a character may take 6 bytes of JSON: \u0001).
_TITLE_CHARS = 300
_FACT_CHARS = 200
_DESCRIPTION_CHARS = 1500

# An incoming webhook (an Office 365 connector) may answer 200 and say in the body that Teams refused the
# message, throttling (429) included: "Connectors do not throw 429s" (Microsoft's "Rate limiting for
# connectors"). The status named there is the answer.
_CONNECTOR_ERROR = re.compile(r"Microsoft Teams endpoint returned HTTP error (\d{3})")


def link_recipient(channel_name: str) -> str:
    """Who a one-click response from a Teams channel's card is recorded as: the channel, since anyone
    in it may click (``shared.action_links``: the recipient is the actor)."""
    return f"teams:{channel_name}"


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line(label: str, value: str) -> dict[str, Any]:
    """One "label: value" line; the value, from outside, shown as it is (a TextRun: no Markdown)."""
    return {
        "type": "RichTextBlock",
        "inlines": [
            {"type": "TextRun", "text": f"{label}: ", "weight": "Bolder"},
            {"type": "TextRun", "text": _bounded(header_text(value), _FACT_CHARS)},
        ],
    }


def _span(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _utc_minute(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _heading(kind: Kind, limit_hours: str) -> tuple[str, str]:
    """The card's first line, ours, and its colour."""
    if kind is Kind.reminder:
        return "Reminder: this alert has had no response yet", "Warning"
    if kind is Kind.escalation:
        return "Escalation: this alert is still unanswered", "Attention"
    return f"New security alert: a response is due within {limit_hours} hours", "Accent"


def card_message(kind: Kind, event: AlertCreated, links: Links, now: datetime, limit_seconds: float) -> dict[str, Any]:
    """The message a Teams channel receives about ``event`` for a delivery of
    ``kind`` (alert, reminder, escalation): the alert, its age and time left at ``now``, a button per
    one-click response in ``links.actions`` and one to the dashboard."""
    alert = event.alert
    detected = detection_time(event)
    deadline = detected + timedelta(seconds=limit_seconds)
    limit_hours = f"{limit_seconds / 3600:g}"
    heading, colour = _heading(kind, limit_hours)
    if alert.is_test:
        heading += " (test alert)"
    title = alert.display_name or alert.alert_type or alert.id
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": heading, "weight": "Bolder", "color": colour, "wrap": True},
        {"type": "RichTextBlock", "inlines": [
            {"type": "TextRun", "text": _bounded(header_text(title), _TITLE_CHARS) or alert.id, "size": "Large",
             "weight": "Bolder"}]},
        _line("Severity", alert.severity.value if alert.severity else "unknown severity"),
        _line("Customer", alert.customer_tenant_id or "unknown"),
        _line("Alert type", alert.alert_type or "unknown"),
        _line("Detected", f"{_utc_minute(detected)}, {_span((now - detected).total_seconds())} ago"),
        _line(f"Time left to the {limit_hours}-hour limit",
              f"{time_left_text(deadline, now)} (due {_utc_minute(deadline)})"),
        _line("Alert id", alert.id),
    ]
    if alert.description:
        body.append({"type": "RichTextBlock", "inlines": [
            {"type": "TextRun", "text": _bounded(alert.description, _DESCRIPTION_CHARS), "isSubtle": True}]})
    if links.actions:
        body.append({"type": "TextBlock", "size": "Small", "isSubtle": True, "wrap": True,
                     "text": "Each response opens a confirmation page; nothing changes until it is confirmed there."})
    actions = [{"type": "Action.OpenUrl", "title": choice.label, "url": choice.url} for choice in links.actions]
    actions.append({"type": "Action.OpenUrl", "title": "Open in the dashboard", "url": links.dashboard})
    card = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
        "actions": actions,
    }
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def card_body(kind: Kind, event: AlertCreated, links: Links, now: datetime, limit_seconds: float) -> bytes:
    """:func:`card_message` as the bytes POSTed (UTF-8 JSON)."""
    message = card_message(kind, event, links, now, limit_seconds)
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def answer_attempt(status: int, headers: Mapping[str, str], text: str, now: datetime) -> Attempt:
    """What Teams' answer means: as any webhook's (``domain.classify_status``), except a 2xx whose body
    says Teams refused the message, which is the status it names (kept as the error; the status code
    recorded is the one received)."""
    refused = _CONNECTOR_ERROR.search(text) if 200 <= status < 300 else None
    if refused is None:
        return classify_status(status, headers, now)
    meant = classify_status(int(refused.group(1)), headers, now)
    return replace(meant, status_code=status, error=f"HTTP {refused.group(1)} (in a {status} answer from Teams)")


# A digest card lists this many alerts at most (the bulk acknowledge covers them whether listed or
# not), each text cut shorter than an alert card's, and no more than fit in this many bytes of JSON:
# with the bulk link, the whole message stays under Teams' 28 KB.
_DIGEST_LISTED = 20
_DIGEST_TITLE_CHARS = 80
_DIGEST_CUSTOMER_CHARS = 40
_DIGEST_LINES_BYTES = 16 * 1024


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _digest_line(alert: Mapping[str, Any]) -> dict[str, Any]:
    """One alert of a digest: severity, title (opening it in the dashboard), customer, time left."""
    title = {"type": "TextRun", "text": _bounded(header_text(alert["title"]), _DIGEST_TITLE_CHARS) or "(untitled)"}
    if len(alert["dashboard"]) <= 1024:  # (an alert id of hundreds of escaped characters makes a link too long)
        title["selectAction"] = {"type": "Action.OpenUrl", "url": alert["dashboard"]}
    return {"type": "RichTextBlock", "inlines": [
        {"type": "TextRun", "text": f"[{alert['severity']}] ", "weight": "Bolder"},
        title,
        {"type": "TextRun", "isSubtle": True,
         "text": f" · {_bounded(header_text(alert['customer']), _DIGEST_CUSTOMER_CHARS)} · {alert['time_left']}"},
    ]}


def digest_card_message(context: Mapping[str, Any]) -> dict[str, Any]:
    """The message a Teams channel receives for a storm's digest: ``domain.digest_context`` (texts ready
    to show), a line per alert (its title opens it in the dashboard), the bulk acknowledge button."""
    alerts = context["alerts"]
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "weight": "Bolder", "color": "Attention", "wrap": True,
         "text": f"{len(alerts)} more new security alerts within {context['window_minutes']} minutes"},
        {"type": "TextBlock", "wrap": True, "isSubtle": True,
         "text": f"Listed together so they do not arrive as {len(alerts)} separate cards. Each still needs a "
                 f"response within {context['limit_hours']} hours and keeps its own reminder and escalation."},
    ]
    listed, size = 0, 0
    for alert in alerts[:_DIGEST_LISTED]:
        line = _digest_line(alert)
        size += _json_size(line) + 1
        if size > _DIGEST_LINES_BYTES:
            break
        body.append(line)
        listed += 1
    if listed < len(alerts):
        body.append({"type": "TextBlock", "wrap": True, "isSubtle": True,
                     "text": f"…and {len(alerts) - listed} more: see the dashboard."})
    actions = []
    if context["bulk_acknowledge"]:
        body.append({"type": "TextBlock", "size": "Small", "isSubtle": True, "wrap": True,
                     "text": "Acknowledging opens a confirmation page; alerts already taken up are left as they are."})
        actions.append({"type": "Action.OpenUrl", "title": context["bulk_acknowledge"]["label"],
                        "url": context["bulk_acknowledge"]["url"]})
    actions.append({"type": "Action.OpenUrl", "title": "What the requirement asks", "url": context["links"]["help"]})
    card = {"$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": CARD_VERSION, "msteams": {"width": "Full"},
            "body": body, "actions": actions}
    return {"type": "message", "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}]}


def digest_card_body(context: Mapping[str, Any]) -> bytes:
    return json.dumps(digest_card_message(context), separators=(",", ":"), ensure_ascii=False).encode()
