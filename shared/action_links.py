"""One-click response links (#13): signed, expiring, bound to one tenant, alert, action and recipient.

The notifier signs a link per action for each recipient of an alert e-mail (or card); the write API
reads it back when the link is opened (``GET`` shows a confirmation page) and confirmed (``POST``
records the response, the recipient as the actor). The token is the credential: whoever holds it may
take that one action on that one alert, once (the write API remembers each used ``link_id``), until
it expires.

Signed with itsdangerous (HMAC-SHA256, over a key derived from the secret and a salt of these links
alone, so a token of some other signed kind never reads as a link). Keys rotate: the first of
``ACTION_LINK_KEYS`` signs, every one verifies; keep an old key until the links it signed expired.
Pure: no I/O, the time is given.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

__all__ = [
    "ACTION_CHANGES",
    "ACTION_LABELS",
    "Action",
    "ActionLink",
    "LinkExpired",
    "LinkInvalid",
    "action_url",
    "change_for",
    "read_action_link",
    "sign_action_link",
]


class Action(StrEnum):
    acknowledge = "acknowledge"  # status -> investigating
    resolve_legitimate = "resolve-legitimate"  # status -> resolved, resolvedReason legitimate
    resolve_fraud = "resolve-fraud"
    resolve_ignore = "resolve-ignore"


# What each action sets: (status, resolvedReason); a reason of None leaves the reason as it is.
ACTION_CHANGES: dict[Action, tuple[str, str | None]] = {
    Action.acknowledge: ("investigating", None),
    Action.resolve_legitimate: ("resolved", "legitimate"),
    Action.resolve_fraud: ("resolved", "fraud"),
    Action.resolve_ignore: ("resolved", "ignore"),
}
ACTION_LABELS: dict[Action, str] = {
    Action.acknowledge: "Acknowledge",
    Action.resolve_legitimate: "Resolve: legitimate",
    Action.resolve_fraud: "Resolve: fraud",
    Action.resolve_ignore: "Resolve: ignore",
}



def change_for(action: Action, status: str, resolved_reason: str | None) -> tuple[str, str | None] | None:
    """What ``action`` sets on an alert now ``status`` / ``resolved_reason``: (status, resolvedReason;
    None leaves the reason), or None when it would change nothing. Acknowledging is for an alert
    nobody took up yet: it never reopens a resolved alert, nor moves one already investigated."""
    new_status, new_reason = ACTION_CHANGES[action]
    if action is Action.acknowledge:
        return (new_status, new_reason) if status == "active" else None
    if status == new_status and resolved_reason == new_reason:
        return None
    return new_status, new_reason


# Separates these tokens from anything else signed with the same key.
_SALT = "csp-alert-triage/action-link/v1"
# A link "issued" up to this far ahead of the reader's clock is the signer's clock running ahead
# (the notifier and the write API may run on different hosts); further ahead, it is not ours.
_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class ActionLink:
    tenant_id: str
    alert_id: str
    action: Action
    recipient: str  # an e-mail address (or "teams:<channel>")
    link_id: str  # random, unique per link: a link is used once
    issued_at: datetime


class LinkExpired(Exception):
    """Authentic, but older than the links' maximum age."""

    def __init__(self, issued_at: datetime) -> None:
        super().__init__(f"the link was issued at {issued_at.isoformat()} and has expired")
        self.issued_at = issued_at


class LinkInvalid(Exception):
    """Not a link signed with a current key: tampered with, signed elsewhere, or malformed."""


class _ClockedSigner(TimestampSigner):
    """Stamps the time it is given rather than the system clock's (the caller's ``now``)."""

    def __init__(self, *args: Any, now: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now = now

    def get_timestamp(self) -> int:
        return int(self._now.timestamp())


def _serializer(keys: Sequence[str], now: datetime) -> URLSafeTimedSerializer:
    if not keys:
        raise ValueError("at least one action link key is needed")
    # itsdangerous signs with the LAST key and verifies with every one; ours are newest first.
    return URLSafeTimedSerializer(
        list(reversed(keys)), salt=_SALT, signer=_ClockedSigner,
        signer_kwargs={"now": now, "digest_method": hashlib.sha256},
    )


def sign_action_link(
    keys: Sequence[str], *, tenant_id: str, alert_id: str, action: Action, recipient: str, now: datetime
) -> str:
    """A url-safe token for one new link (a fresh ``link_id``), issued at ``now``, signed with ``keys[0]``."""
    payload = {
        "t": tenant_id,
        "a": alert_id,
        "x": Action(action).value,
        "r": recipient,
        "l": secrets.token_urlsafe(16),
    }
    return _serializer(keys, now).dumps(payload)


def action_url(write_api_public_url: str, token: str) -> str:
    return f"{write_api_public_url.rstrip('/')}/v1/actions/{token}"


def read_action_link(keys: Sequence[str], token: str, *, max_age_seconds: float, now: datetime) -> ActionLink:
    """The link ``token`` stands for, if one of ``keys`` signed it.

    Raises :class:`LinkInvalid` (not signed by any of ``keys``, altered, not a link at all) or
    :class:`LinkExpired` (authentic, issued more than ``max_age_seconds`` before ``now``).
    """
    try:
        payload, issued_at = _serializer(keys, now).loads(token, return_timestamp=True)
    except BadData:
        raise LinkInvalid("the link is not one this deployment signed, or it was altered") from None
    except (ValueError, TypeError, OverflowError):  # text that is no token at all (not even ASCII)
        raise LinkInvalid("the link is malformed") from None
    # The signature is compared once decoded, and base64 leaves the last character of a 32-byte one
    # two unused bits: only its one canonical spelling is the link, so no character may change.
    signature = token.rsplit(".", 1)[-1]
    if base64_encode(base64_decode(signature)).decode() != signature:
        raise LinkInvalid("the link is not one this deployment signed, or it was altered")
    link = _link_from(payload, issued_at)
    age = now - issued_at
    if age < -_CLOCK_SKEW:
        raise LinkInvalid("the link claims to be issued in the future")
    if age.total_seconds() > max_age_seconds:
        raise LinkExpired(issued_at)
    return link


def _link_from(payload: Any, issued_at: datetime) -> ActionLink:
    fields = ("t", "a", "x", "r", "l")
    if not isinstance(payload, dict) or not all(isinstance(payload.get(f), str) and payload[f] for f in fields):
        raise LinkInvalid("the link's content is not a one-click response")
    try:
        action = Action(payload["x"])
    except ValueError:
        raise LinkInvalid(f"the link names no known action ({payload['x']!r})") from None
    return ActionLink(
        tenant_id=payload["t"],
        alert_id=payload["a"],
        action=action,
        recipient=payload["r"],
        link_id=payload["l"],
        issued_at=issued_at.astimezone(UTC),
    )
