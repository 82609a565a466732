"""The notifier's delivery metric (#16): by the kind of channel, never its name, and by outcome."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from services.notifier import metrics


def deliveries(channel: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("csp_deliveries_total", {"channel": channel, "outcome": outcome}) or 0.0


def test_each_recorded_state_is_an_outcome_and_the_channel_is_its_kind():
    cases = [("email:contact", "delivered", "email", "delivered"),
             ("email:to:someone@partner.example", "pending", "email", "retrying"),
             ("webhook:partner-chosen-name", "dead", "webhook", "dead_lettered"),
             ("email:escalation", "skipped", "email", "suppressed"),
             ("webhook:tickets", None, "webhook", "failed")]
    for channel, state, kind, outcome in cases:
        before = deliveries(kind, outcome)
        metrics.count_delivery(channel, state)
        assert deliveries(kind, outcome) == before + 1, (channel, state)
    assert not REGISTRY.get_sample_value("csp_deliveries_total",
                                         {"channel": "webhook:partner-chosen-name", "outcome": "dead_lettered"})


async def test_a_channel_sent_as_a_teams_card_counts_as_teams_in_its_own_send_only():
    async def send(teams: bool) -> str:
        if teams:
            metrics.sent_as.set("teams")  # what Transports.send_webhook says of a Teams channel
        return metrics.channel_kind("webhook:soc")

    # Each delivery is sent in a task of its own (DeliveryWorker.run_once): its own context.
    assert await asyncio.create_task(send(True)) == "teams"
    assert await asyncio.create_task(send(False)) == "webhook"
