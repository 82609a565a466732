"""Standard Webhooks signatures, inbound and outbound (SPEC §6), on the ``standardwebhooks`` library.

Headers ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">``; secrets ``whsec_<base64>``; five minutes' tolerance; several signatures (or
several secrets on our side) during a secret's rotation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from standardwebhooks import Webhook

from shared.wire import utcnow

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class WebhookSignatureError(Exception):
    """The request is not signed by any of the tenant's active secrets (or is outside the window)."""


def sign_headers(
    secrets: str | Sequence[str], body: bytes, *, msg_id: str | None = None, now: datetime | None = None
) -> dict[str, str]:
    """Headers that sign ``body`` with each of ``secrets`` (several during a rotation: the receiver
    accepts the request if any signature verifies); ``msg_id`` should be stable across retries."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = now or utcnow()
    signatures = [
        Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body.decode())
        for secret in ([secrets] if isinstance(secrets, str) else secrets)
    ]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def has_signature(headers: Mapping[str, str]) -> bool:
    """Whether the request is signed, or means to be: any one of the three headers makes it a signed
    request, checked as one (a partial signature is refused, never passed over for a bearer key)."""
    lowered = {k.lower() for k in headers}
    return any(h in lowered for h in SIGNATURE_HEADERS)


def verify(secrets: Iterable[str], headers: Mapping[str, str], body: bytes) -> None:
    """Raise :class:`WebhookSignatureError` unless one of ``secrets`` signed ``body`` within five minutes."""
    plain = {k.lower(): v for k, v in headers.items()}
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise WebhookSignatureError("the body is not UTF-8") from None
    last = "no secret configured for this tenant"
    for secret in secrets:
        try:
            Webhook(secret).verify(text, plain, json_parse=False)
            return
        except Exception as exc:  # the library raises several types, including ValueError on bad headers
            last = str(exc) or type(exc).__name__
    raise WebhookSignatureError(last)
