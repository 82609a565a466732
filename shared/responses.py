"""What counts as a partner's response to an alert (SPEC §3), shared by response time and notifier.

The clock stops at the first change of ``status`` or ``resolvedReason`` made by a partner user;
changes by the system (empty ``updatedBy`` or ``system``) and changes of other fields do not.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.events import ActorType, StatusChange

# The requirement's target (securityAlertsPromptlyResolved, SPEC §3): partner responses within 24 hours
# on average. Response time judges compliance by it; the notifier shows the time left to it.
RESPONSE_TARGET_HOURS = 24
# An open alert this old is near that target (``openAlertNearLimit``): the notifier warns the tenant
# while there are still hours to answer it. The per-alert escalation fires at the same age by default.
NEAR_LIMIT_HOURS = 20


def first_partner_response(changes: Iterable[StatusChange]) -> StatusChange | None:
    by_user = [c for c in changes if c.actor.type is ActorType.user and c.from_ != c.to]
    return min(by_user, key=lambda c: c.changed_date_time) if by_user else None
