"""The notifier's own metrics (the shared ones: ``shared/metrics.py``).

``csp_deliveries_total{channel, outcome}``: each attempt of a delivery, by the kind of its channel
(``email``, ``webhook``, ``teams``: never the channel's name, which partners choose) and what came of it:

- ``delivered``: the receiver took it;
- ``retrying``: it failed and is tried again later;
- ``dead_lettered``: it failed for good (retries exhausted, or a permanent refusal): a dead letter;
- ``suppressed``: not sent, and not to be (no contact, the channel gone, a digest whose alerts were all
  answered);
- ``failed``: sent or not, its outcome could not be recorded (the database away): the row is taken
  again after its lease.
"""

from __future__ import annotations

import contextvars

from prometheus_client import Counter

DELIVERIES = Counter(
    "csp_deliveries_total", "Notification deliveries attempted by the notifier, by channel kind and outcome.",
    ["channel", "outcome"])

# The state a delivery's outcome is recorded as (store.record_outcome, domain.Decision) -> the label.
OUTCOMES = {"delivered": "delivered", "pending": "retrying", "dead": "dead_lettered", "skipped": "suppressed"}

# The kind of channel the delivery being sent went to, when the send learns it (a channel's kind, webhook
# or Teams, is looked up when it is sent). Each send runs in a task of its own, so in a context of its own.
sent_as: contextvars.ContextVar[str | None] = contextvars.ContextVar("csp_delivery_channel", default=None)


def channel_kind(channel: str) -> str:
    """``email:contact`` -> ``email``, ``webhook:tickets`` -> ``webhook`` (or ``teams``, if the send said so)."""
    return sent_as.get() or channel.partition(":")[0] or "unknown"


def count_delivery(channel: str, state: str | None) -> None:
    DELIVERIES.labels(channel_kind(channel), OUTCOMES.get(state or "", "failed")).inc()
