"""A steady mix of writes through the write API, as partners' feeds, ticketing systems and people
send them, recording what was accepted (``expected.ExpectedTenant``) so the checks can recompute
what the system must show.

Each tenant has one sender doing one thing at a time, so the order of its operations is the order
they took effect. A sender retries as a real one would: on 503 and 429 after ``Retry-After``, on a
refused connection (the service being restarted) after a second, with the same body, until the
request is accepted or the run's hard deadline passes. Alerts come in lists of 1 to 10, with
updates, responses (PATCH by the tenant's user key, and feed posts carrying the user's activity
log), later changes, exact duplicates (counted as duplicates, no event) and older states
re-posted; contact and channel changes; signals, some of them older than the last one.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.faults.expected import ExpectedAlert, ExpectedTenant, Response

log = logging.getLogger(__name__)

OPERATOR = {"Authorization": "Bearer dev-admin-key"}
SEVERITIES = ("informational", "low", "medium", "high")
ALERT_TYPES = ("unusualActivity", "azureFraud", "anomalousLogin", "cryptoMining")
PHONE = "+44 20 7946 0000"
# A sender's pause between two operations (seconds): the pace of the steady mix.
PAUSE = (0.35, 0.9)
# Longest a sender retries one operation: outages here last 10 s, recovery a few more.
GIVE_UP_AFTER_SECONDS = 30.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def new_secret(rng: random.Random) -> str:
    return "whsec_" + base64.b64encode(rng.randbytes(24)).decode()


class GaveUp(Exception):
    """An operation was not accepted before the run's hard deadline."""


class Refused(Exception):
    """A request the system should have accepted got a 4xx."""


@dataclass
class LoadStats:
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    connection_errors: int = 0
    # Answers no retrying sender should ever see: 5xx other than 503, 4xx to valid requests, 503
    # or 429 without Retry-After, a duplicate post not counted as one.
    server_errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    missing_retry_after: list[str] = field(default_factory=list)
    duplicates_not_counted: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)
    accepted_ops: Counter = field(default_factory=Counter)
    # (time, status) of every answer, to tell what each outage looked like from outside.
    answers: list[tuple[float, int]] = field(default_factory=list)


class WriteApi:
    """The write API as a retrying sender sees it."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, stats: LoadStats) -> None:
        self.http, self.base_url, self.stats = http, base_url, stats
        self.hard_deadline = float("inf")  # monotonic; past it an operation gives up

    async def send(self, method: str, path: str, body: Any, *, headers: dict[str, str], what: str) -> httpx.Response:
        # A sender gives up on one operation after a while (and the check on gave_up fails), so one
        # write the system never takes again does not stall the whole tenant's mix.
        deadline = min(self.hard_deadline, time.monotonic() + GIVE_UP_AFTER_SECONDS)
        first_status = None
        while True:
            if time.monotonic() > deadline:
                self.stats.gave_up.append(f"{what}: {method} {path}: still {first_status} after "
                                          f"{GIVE_UP_AFTER_SECONDS:.0f} s")
                raise GaveUp(what)
            self.stats.requests += 1
            try:
                response = await self.http.request(method, f"{self.base_url}{path}", json=body, headers=headers)
            except httpx.TransportError:
                # The service is being restarted (or answered nothing): a sender tries again shortly.
                self.stats.connection_errors += 1
                self.stats.answers.append((time.monotonic(), 0))
                await asyncio.sleep(1.0)
                continue
            status = response.status_code
            first_status = first_status or f"{status} {response.text[:200]}"
            self.stats.statuses[status] += 1
            self.stats.answers.append((time.monotonic(), status))
            if status in (503, 429):
                retry_after = response.headers.get("retry-after")
                if retry_after is None or not retry_after.isdigit():
                    self.stats.missing_retry_after.append(f"{what}: {status} retry-after={retry_after!r}")
                    retry_after = "1"
                await asyncio.sleep(min(float(retry_after), 10.0))
                continue
            if status >= 500:
                self.stats.server_errors.append(f"{what}: {method} {path} -> {status} {response.text[:300]}")
                await asyncio.sleep(1.0)
                continue
            if status >= 400:
                self.stats.refused.append(f"{what}: {method} {path} -> {status} {response.text[:300]}")
                raise Refused(what)
            return response


@dataclass
class Profile:
    """``prompt`` tenants answer fresh alerts within minutes; ``late`` ones answer alerts detected a
    day and more ago, 25 to 30 hours after detection (their average exceeds 24 h)."""

    name: str
    routed_severities: frozenset[str] | None


class TenantSender:
    """One tenant's sender: setup, then operations one at a time until told to stop."""

    def __init__(self, api: WriteApi, tenant: ExpectedTenant, profile: Profile, rng: random.Random,
                 receiver_url: str) -> None:
        self.api, self.tenant, self.profile, self.rng = api, tenant, profile, rng
        self.base = f"/v1/tenants/{tenant.tenant_id}"
        self.receiver_url = receiver_url
        self.numbers = 0
        self.contacts = 0
        self.last_created: list[dict] = []

    # --- what the tenant sets up before the load --------------------------------------------------

    async def setup(self) -> None:
        await self.change_contact()
        await self.change_channel()
        await self.signal_admin_mfa()
        await self.signal_customer_mfa()
        await self.signal_spending()

    async def post_one_alert(self, what: str) -> str:
        """One fresh alert; its id. (The warm-up before the faults, the probe after them.)"""
        body = self.fresh_alert()
        await self.post_alerts([body], what=what)
        return body["id"]

    # --- the steady mix ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        operations = self.operations()
        names, weights = zip(*operations.items(), strict=True)
        while not stop.is_set():
            operation = self.rng.choices(names, weights)[0]
            try:
                await getattr(self, operation)()
                self.api.stats.accepted_ops[operation] += 1
            except (GaveUp, Refused):
                pass  # recorded in the stats; the checks report them
            await asyncio.sleep(self.rng.uniform(*PAUSE))

    def operations(self) -> dict[str, float]:
        common = {
            "create_list": 0.20, "create_one": 0.10, "update": 0.10, "duplicate": 0.05, "older_state": 0.05,
            "later_change": 0.05, "change_contact": 0.04, "change_channel": 0.03, "signal_admin_mfa": 0.03,
            "signal_customer_mfa": 0.02, "signal_spending": 0.02, "stale_signal": 0.02,
        }
        if self.profile.name == "prompt":
            return {**common, "respond_by_patch": 0.16, "respond_by_feed": 0.08}
        return {**common, "create_old_list": 0.10, "respond_late_by_feed": 0.12}

    def fresh_alert(self, *, old: bool = False, answered_late: bool = False) -> dict:
        self.numbers += 1
        now = utcnow()
        detected = now - (timedelta(hours=self.rng.uniform(30, 40)) if old
                          else timedelta(seconds=self.rng.uniform(60, 1200)))
        body = {
            "id": f"a-{self.numbers:05d}",
            "displayName": f"Suspicious activity {self.numbers}",
            "description": "raised by the fault suite's load generator",
            "alertType": self.rng.choice(ALERT_TYPES),
            "severity": self.rng.choice(SEVERITIES),
            "status": "active",
            "customerTenantId": f"customer-{self.rng.randint(1, 5)}",
            "detectedDateTime": iso(detected),
            "isTest": self.profile.name == "prompt" and not old and self.rng.random() < 0.1,
        }
        if answered_late:
            # Arrives answered: the feed's activity log says the user resolved it 25-30 h after detection.
            answered = detected + timedelta(hours=self.rng.uniform(25, 29))
            body.update(status="resolved", resolvedReason="legitimate", activityLogs=[{
                "statusFrom": "active", "statusTo": "resolved", "updatedBy": self.tenant.user,
                "updatedDateTime": iso(answered)}])
        return body

    async def post_alerts(self, bodies: list[dict], *, what: str) -> dict:
        document = bodies[0] if len(bodies) == 1 else {"value": bodies}
        response = await self.api.send("POST", f"{self.base}/alerts", document, headers=OPERATOR, what=what)
        for body in bodies:
            if body["id"] in self.tenant.alerts:
                continue
            alert = ExpectedAlert(
                alert_id=body["id"],
                detected=datetime.fromisoformat(body["detectedDateTime"].replace("Z", "+00:00")),
                is_test=body["isTest"], severity=body["severity"], created_body=body, status=body["status"])
            if "activityLogs" in body:
                entry = body["activityLogs"][0]
                at = datetime.fromisoformat(entry["updatedDateTime"].replace("Z", "+00:00"))
                alert.response = Response(at, at, entry["updatedBy"])
            self.tenant.alerts[body["id"]] = alert
        self.last_created = bodies
        return response.json()

    async def create_list(self) -> None:
        await self.post_alerts([self.fresh_alert() for _ in range(self.rng.randint(2, 10))], what="create-list")

    async def create_one(self) -> None:
        await self.post_alerts([self.fresh_alert()], what="create-one")

    async def create_old_list(self) -> None:
        bodies = [self.fresh_alert(old=True, answered_late=self.rng.random() < 0.5)
                  for _ in range(self.rng.randint(1, 5))]
        await self.post_alerts(bodies, what="create-old-list")

    async def duplicate(self) -> None:
        """The list just posted, again: every alert a duplicate (202, no event)."""
        if not self.last_created:
            return
        bodies = self.last_created
        document = bodies[0] if len(bodies) == 1 else {"value": bodies}
        response = await self.api.send("POST", f"{self.base}/alerts", document, headers=OPERATOR, what="duplicate")
        answer = response.json()
        if answer.get("duplicates") != len(bodies) or answer.get("accepted") != 0:
            self.api.stats.duplicates_not_counted.append(
                f"{self.tenant.tenant_id} {[b['id'] for b in bodies]}: {answer}")

    def pick(self, predicate) -> ExpectedAlert | None:
        candidates = [a for a in self.tenant.alerts.values() if predicate(a)]
        return self.rng.choice(candidates) if candidates else None

    async def update(self) -> None:
        """A feed's update of fields other than the status: no response, the clock runs on."""
        alert = self.pick(lambda a: True)
        if alert is None:
            return
        body = {"id": alert.alert_id, "description": f"updated {self.rng.random():.6f}",
                "severity": self.rng.choice(SEVERITIES)}
        await self.api.send("POST", f"{self.base}/alerts", body, headers=OPERATOR, what="update")
        self.last_created = []  # the list posted before is an older state now, not a duplicate

    async def older_state(self) -> None:
        """The body that created an alert, posted again after it changed: the feed reverts the fields
        it carries (status included, as the system's change); the clock stays where it stopped."""
        alert = self.pick(lambda a: True)
        if alert is None:
            return
        await self.api.send("POST", f"{self.base}/alerts", alert.created_body, headers=OPERATOR, what="older-state")
        alert.status = alert.created_body["status"]
        self.last_created = []

    async def respond_by_patch(self) -> None:
        """The tenant's user changes the status through the API: the first response, stamped by the server."""
        alert = self.pick(lambda a: a.response is None and a.status == "active")
        if alert is None:
            return
        change = self.rng.choice([{"status": "investigating"}, {"status": "resolved", "resolvedReason": "legitimate"}])
        before = utcnow()
        await self.api.send("PATCH", f"{self.base}/alerts/{alert.alert_id}", change,
                            headers={"Authorization": f"Bearer {self.tenant.user_key}"}, what="respond-by-patch")
        alert.response = Response(before, utcnow(), self.tenant.user)
        alert.status = change["status"]
        self.last_created = []

    async def respond_by_feed(self) -> None:
        """A feed reports the user's change in the activity log, with the user's time."""
        alert = self.pick(lambda a: a.response is None and a.status == "active")
        if alert is None:
            return
        answered = max(alert.detected, utcnow() - timedelta(seconds=self.rng.uniform(1, 30)))
        await self.feed_change(alert, "resolved", answered, what="respond-by-feed")
        alert.response = Response(answered, answered, self.tenant.user)

    async def respond_late_by_feed(self) -> None:
        """A late tenant's answer to an alert detected a day and more ago: 25-29 h after detection."""
        alert = self.pick(lambda a: a.response is None and a.status == "active"
                          and a.detected < utcnow() - timedelta(hours=29))
        if alert is None:
            return await self.create_old_list()
        answered = alert.detected + timedelta(hours=self.rng.uniform(25, 29))
        await self.feed_change(alert, "resolved", answered, what="respond-late-by-feed")
        alert.response = Response(answered, answered, self.tenant.user)

    async def later_change(self) -> None:
        """A change after the first response: the clock never moves again."""
        alert = self.pick(lambda a: a.response is not None and a.status in ("active", "investigating"))
        if alert is None:
            return
        if self.rng.random() < 0.5:
            await self.api.send("PATCH", f"{self.base}/alerts/{alert.alert_id}",
                                {"status": "resolved", "resolvedReason": "fraud"},
                                headers={"Authorization": f"Bearer {self.tenant.user_key}"}, what="later-change")
        else:
            await self.feed_change(alert, "resolved", utcnow(), what="later-change")
        alert.status = "resolved"
        self.last_created = []

    async def feed_change(self, alert: ExpectedAlert, to: str, at: datetime, *, what: str) -> None:
        body = {"id": alert.alert_id, "status": to, "resolvedReason": "legitimate", "activityLogs": [{
            "statusFrom": alert.status, "statusTo": to, "updatedBy": self.tenant.user, "updatedDateTime": iso(at)}]}
        await self.api.send("POST", f"{self.base}/alerts", body, headers=OPERATOR, what=what)
        alert.status = to
        self.last_created = []

    async def change_contact(self, email: str | None = None) -> None:
        self.contacts += 1
        email = email or f"soc-{self.contacts}@{self.tenant.tenant_id}.example"
        body = {"name": f"SOC team {self.contacts}", "email": email, "phone": PHONE}
        await self.api.send("PUT", f"{self.base}/security-contact", body, headers=OPERATOR, what="contact")
        self.tenant.contact_email = email

    async def change_channel(self) -> None:
        """A new channel, or its secret rotated: the URL and the routes stay, so the routing is known."""
        routes = ([] if self.tenant.routed_severities is None
                  else [{"severities": sorted(self.tenant.routed_severities)}])
        body = {"url": f"{self.receiver_url}{self.tenant.hook_path}", "secret": new_secret(self.rng), "routes": routes}
        await self.api.send("PUT", f"{self.base}/channels/ticketing", body, headers=OPERATOR, what="channel")

    async def signal_admin_mfa(self) -> None:
        compliant = self.rng.random() < 0.6
        body = {"totalAdmins": 4, "adminsWithMfa": 4 if compliant else 3}
        await self.api.send("POST", f"{self.base}/signals/admin-mfa", body, headers=OPERATOR, what="admin-mfa")
        self.tenant.admin_mfa_compliant = compliant

    async def stale_signal(self) -> None:
        """An admin-MFA report observed two hours ago, the opposite of the last: older, so it changes nothing."""
        if self.tenant.admin_mfa_compliant is None:
            return
        compliant = not self.tenant.admin_mfa_compliant
        body = {"totalAdmins": 4, "adminsWithMfa": 4 if compliant else 3,
                "observedDateTime": iso(utcnow() - timedelta(hours=2))}
        await self.api.send("POST", f"{self.base}/signals/admin-mfa", body, headers=OPERATOR, what="stale-signal")

    async def signal_customer_mfa(self) -> None:
        compliant = self.rng.random() < 0.6
        body = {"customers": [
            {"customerTenantId": "customer-1", "customerName": "Contoso", "admins": 2, "adminsWithMfa": 2,
             "nonAdminsWithMfa": 3, "totalUsers": 10},
            {"customerTenantId": "customer-2", "customerName": "Fabrikam", "admins": 3,
             "adminsWithMfa": 3 if compliant else 1, "nonAdminsWithMfa": 0, "totalUsers": 5},
        ]}
        await self.api.send("POST", f"{self.base}/signals/customer-mfa", body, headers=OPERATOR, what="customer-mfa")
        self.tenant.customer_mfa_compliant = compliant

    async def signal_spending(self) -> None:
        """customer-budget stands at 85 % of its budget (one notification per tenant, customer and
        month); customer-other has a budget or not (compliant or not)."""
        compliant = self.rng.random() < 0.6
        body = {"customers": [
            {"customerTenantId": "customer-budget", "customerName": "Northwind", "monthlyBudget": 1000,
             "currentMonthSpend": 850},
            {"customerTenantId": "customer-other", "customerName": "Adventure Works",
             "monthlyBudget": 500 if compliant else None, "currentMonthSpend": 100},
        ]}
        await self.api.send("POST", f"{self.base}/signals/spending", body, headers=OPERATOR, what="spending")
        self.tenant.spending_compliant = compliant
        self.tenant.spending_notifications.add("customer-budget")
