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
    "BULK_LINK_MAX_ALERTS",
    "Action",
    "ActionLink",
    "BulkLink",
    "LinkExpired",
    "LinkInvalid",
    "action_url",
    "bulk_action_url",
    "change_for",
    "read_action_link",
    "read_bulk_link",
    "sign_action_link",
    "sign_bulk_link",
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
    payload, issued_at = _verified(_serializer(keys, now), token, max_age_seconds=max_age_seconds, now=now)
    return _link_from(payload, issued_at)


def _verified(serializer: URLSafeTimedSerializer, token: str, *, max_age_seconds: float,
              now: datetime) -> tuple[Any, datetime]:
    """The payload ``serializer`` signed into ``token`` and when, checked as every link is: the
    signature (in its one spelling), the issue time (not ahead of ``now`` beyond the clock skew), the age."""
    try:
        payload, issued_at = serializer.loads(token, return_timestamp=True)
    except BadData:
        raise LinkInvalid("the link is not one this deployment signed, or it was altered") from None
    except (ValueError, TypeError, OverflowError):  # text that is no token at all (not even ASCII)
        raise LinkInvalid("the link is malformed") from None
    # The signature is compared once decoded, and base64 leaves the last character of a 32-byte one
    # two unused bits: only its one canonical spelling is the link, so no character may change.
    signature = token.rsplit(".", 1)[-1]
    if base64_encode(base64_decode(signature)).decode() != signature:
        raise LinkInvalid("the link is not one this deployment signed, or it was altered")
    age = now - issued_at
    if age < -_CLOCK_SKEW:
        raise LinkInvalid("the link claims to be issued in the future")
    if age.total_seconds() > max_age_seconds:
        raise LinkExpired(issued_at)
    return payload, issued_at


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


# --- Bulk links: a storm digest's one link that acknowledges every alert it lists ------------------
#
# Signed and read as the one-alert links are (same keys, rotation, clock skew and maximum age), but
# with a salt of their own: a bulk token never reads as a one-alert link, nor a one-alert token as a
# bulk link. The list of alert ids is zlib-compressed when that makes the token shorter (itsdangerous'
# URL-safe serializer does; it only decompresses after the signature checked out).

# A digest lists at most this many alerts per link: keeps the URL under ~3 KB (mail programs and
# proxies cut longer ones). The notifier splits a longer digest's alerts over several links.
BULK_LINK_MAX_ALERTS = 50
# The actions a bulk link may stand for: acknowledging is the one a storm calls for (resolving many
# alerts at once, unseen, is not a one-click decision).
BULK_ACTIONS = frozenset({Action.acknowledge})

_BULK_SALT = "csp-alert-triage/bulk-action-link/v1"


@dataclass(frozen=True)
class BulkLink:
    tenant_id: str
    alert_ids: tuple[str, ...]  # each once, in the digest's order; 1 to BULK_LINK_MAX_ALERTS of them
    action: Action
    recipient: str
    link_id: str  # random, unique per link: a link is used once
    issued_at: datetime


def _bulk_serializer(keys: Sequence[str], now: datetime) -> URLSafeTimedSerializer:
    if not keys:
        raise ValueError("at least one action link key is needed")
    return URLSafeTimedSerializer(
        list(reversed(keys)), salt=_BULK_SALT, signer=_ClockedSigner,
        signer_kwargs={"now": now, "digest_method": hashlib.sha256},
    )


def sign_bulk_link(
    keys: Sequence[str],
    *,
    tenant_id: str,
    alert_ids: Sequence[str],
    recipient: str,
    now: datetime,
    action: Action = Action.acknowledge,
) -> str:
    """A url-safe token for one new bulk link (a fresh ``link_id``) over ``alert_ids`` (each kept once,
    in order), issued at ``now``, signed with ``keys[0]``. ValueError: no alert id, an empty one, more
    than :data:`BULK_LINK_MAX_ALERTS`, or an action a bulk link does not take."""
    ids = list(dict.fromkeys(alert_ids))
    if not ids or not all(isinstance(alert_id, str) and alert_id for alert_id in ids):
        raise ValueError("a bulk link needs at least one alert id, and no empty one")
    if len(ids) > BULK_LINK_MAX_ALERTS:
        raise ValueError(f"a bulk link lists at most {BULK_LINK_MAX_ALERTS} alerts, not {len(ids)}")
    if Action(action) not in BULK_ACTIONS:
        raise ValueError(f"a bulk link does not take the action {Action(action).value!r}")
    payload = {"t": tenant_id, "a": ids, "x": Action(action).value, "r": recipient, "l": secrets.token_urlsafe(16)}
    return _bulk_serializer(keys, now).dumps(payload)


def bulk_action_url(write_api_public_url: str, token: str) -> str:
    return f"{write_api_public_url.rstrip('/')}/v1/actions/bulk/{token}"


def read_bulk_link(keys: Sequence[str], token: str, *, max_age_seconds: float, now: datetime) -> BulkLink:
    """The bulk link ``token`` stands for, if one of ``keys`` signed it.

    Raises :class:`LinkInvalid` (not a bulk link signed by any of ``keys``: altered, a one-alert link,
    not a link at all) or :class:`LinkExpired` (authentic, issued more than ``max_age_seconds`` before ``now``).
    """
    payload, issued_at = _verified(_bulk_serializer(keys, now), token, max_age_seconds=max_age_seconds, now=now)
    return _bulk_link_from(payload, issued_at)


def _bulk_link_from(payload: Any, issued_at: datetime) -> BulkLink:
    fields = ("t", "x", "r", "l")
    if not isinstance(payload, dict) or not all(isinstance(payload.get(f), str) and payload[f] for f in fields):
        raise LinkInvalid("the link's content is not a bulk response")
    alert_ids = payload.get("a")
    if (not isinstance(alert_ids, list) or not 1 <= len(alert_ids) <= BULK_LINK_MAX_ALERTS
            or not all(isinstance(alert_id, str) and alert_id for alert_id in alert_ids)):
        raise LinkInvalid("the link's content is not a bulk response")
    try:
        action = Action(payload["x"])
    except ValueError:
        raise LinkInvalid(f"the link names no known action ({payload['x']!r})") from None
    if action not in BULK_ACTIONS:
        raise LinkInvalid(f"a bulk link does not take the action {action.value!r}")
    return BulkLink(
        tenant_id=payload["t"],
        alert_ids=tuple(dict.fromkeys(alert_ids)),
        action=action,
        recipient=payload["r"],
        link_id=payload["l"],
        issued_at=issued_at.astimezone(UTC),
    )
