"""The one-click response links (shared/action_links.py): pure, no I/O, the time given."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer

from shared import action_links
from shared.action_links import (
    ACTION_CHANGES,
    ACTION_LABELS,
    BULK_LINK_MAX_ALERTS,
    Action,
    BulkLink,
    LinkExpired,
    LinkInvalid,
    action_url,
    bulk_action_url,
    change_for,
    read_action_link,
    read_bulk_link,
    sign_action_link,
    sign_bulk_link,
)

KEY = "k" * 32
OLD_KEY = "o" * 32
OTHER_KEY = "x" * 32
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
WEEK = 7 * 24 * 3600.0


def sign(keys=(KEY,), *, now=NOW, action=Action.acknowledge, recipient="soc@partner.example",
         alert_id="alert-1") -> str:
    return sign_action_link(list(keys), tenant_id="tenant-a", alert_id=alert_id, action=action,
                            recipient=recipient, now=now)


def read(token: str, keys=(KEY,), *, now=NOW, max_age=WEEK):
    return read_action_link(list(keys), token, max_age_seconds=max_age, now=now)


def test_a_link_reads_back_as_signed():
    token = sign(action=Action.resolve_fraud, recipient="Zoë <zoe@partner.example>", alert_id="a/1 ünïcode")
    link = read(token, now=NOW + timedelta(hours=1))
    assert (link.tenant_id, link.alert_id, link.action, link.recipient) == (
        "tenant-a", "a/1 ünïcode", Action.resolve_fraud, "Zoë <zoe@partner.example>")
    assert link.issued_at == NOW
    assert link.link_id


def test_the_token_is_url_safe_and_each_link_has_its_own_id():
    tokens = [sign() for _ in range(3)]
    assert all(set(t) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") for t in tokens)
    assert len({read(t).link_id for t in tokens}) == 3
    assert action_url("https://triage.example/api/", tokens[0]) == f"https://triage.example/api/v1/actions/{tokens[0]}"
    assert action_url("http://127.0.0.1:8081", "t") == "http://127.0.0.1:8081/v1/actions/t"


def test_a_link_works_until_its_maximum_age_then_is_expired():
    token = sign()
    assert read(token, now=NOW + timedelta(seconds=WEEK)).action is Action.acknowledge
    with pytest.raises(LinkExpired) as expired:
        read(token, now=NOW + timedelta(seconds=WEEK + 1))
    assert expired.value.issued_at == NOW


def test_a_link_from_a_clock_a_little_ahead_is_accepted_from_far_ahead_refused():
    assert read(sign(now=NOW + timedelta(minutes=1))).issued_at == NOW + timedelta(minutes=1)
    with pytest.raises(LinkInvalid):
        read(sign(now=NOW + timedelta(hours=1)))


def test_a_changed_character_anywhere_makes_the_link_invalid():
    token = sign()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position in range(len(token)):
        changed = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1:]
        with pytest.raises(LinkInvalid):
            read(changed)
    # Every other spelling of the last character too (base64 leaves it two unused bits).
    for character in alphabet.replace(token[-1], ""):
        with pytest.raises(LinkInvalid):
            read(token[:-1] + character)


def test_a_link_signed_with_another_key_or_for_another_purpose_is_invalid():
    with pytest.raises(LinkInvalid):
        read(sign((OTHER_KEY,)))
    # The same key, but another salt: a token of some other kind never reads as a link.
    other_kind = URLSafeTimedSerializer(KEY, salt="something-else").dumps(
        {"t": "tenant-a", "a": "alert-1", "x": "acknowledge", "r": "soc@partner.example", "l": "id"})
    with pytest.raises(LinkInvalid):
        read(other_kind)


def test_keys_rotate_the_first_signs_every_one_verifies():
    signed_before = sign((OLD_KEY,))
    assert read(signed_before, (KEY, OLD_KEY)).action is Action.acknowledge
    signed_after = sign((KEY, OLD_KEY))
    assert read(signed_after, (KEY,)).action is Action.acknowledge
    with pytest.raises(LinkInvalid):
        read(signed_after, (OLD_KEY,))  # signed with the first key, not the old one
    with pytest.raises(LinkInvalid):
        read(signed_before, (KEY,))  # the old key removed: its links stop working


def test_authentic_content_that_is_not_a_link_is_invalid():
    serializer = action_links._serializer([KEY], NOW)
    for payload in (["tenant-a"], {"t": "tenant-a"}, {"t": "a", "a": "b", "x": "delete", "r": "c", "l": "d"},
                    {"t": "a", "a": "b", "x": "acknowledge", "r": 3, "l": "d"}):
        with pytest.raises(LinkInvalid):
            read(serializer.dumps(payload))


@given(st.text(max_size=300))
def test_any_text_is_a_link_or_invalid_never_another_error(text):
    with pytest.raises(LinkInvalid):
        read(text)


def test_no_keys_is_a_programming_error():
    with pytest.raises(ValueError):
        sign(())


def test_every_action_has_a_change_and_a_label():
    assert set(ACTION_CHANGES) == set(ACTION_LABELS) == set(Action)
    assert ACTION_CHANGES[Action.acknowledge] == ("investigating", None)
    assert ACTION_CHANGES[Action.resolve_ignore] == ("resolved", "ignore")
    assert ACTION_LABELS[Action.resolve_legitimate] == "Resolve: legitimate"
    assert [a.value for a in Action] == ["acknowledge", "resolve-legitimate", "resolve-fraud", "resolve-ignore"]


@pytest.mark.parametrize(("action", "status", "reason", "expected"), [
    (Action.acknowledge, "active", None, ("investigating", None)),
    (Action.acknowledge, "investigating", None, None),
    (Action.acknowledge, "resolved", "fraud", None),  # never reopens
    (Action.resolve_fraud, "active", None, ("resolved", "fraud")),
    (Action.resolve_fraud, "investigating", None, ("resolved", "fraud")),
    (Action.resolve_fraud, "resolved", "fraud", None),
    (Action.resolve_ignore, "resolved", "legitimate", ("resolved", "ignore")),  # the reason corrected
])
def test_what_an_action_changes(action, status, reason, expected):
    assert change_for(action, status, reason) == expected


# --- Bulk links (a storm digest's one "acknowledge them all" link) ---------------------------------

DIGEST_IDS = ("alert-1", "alert-2", "alert-3")


def sign_bulk(keys=(KEY,), *, now=NOW, alert_ids=DIGEST_IDS, recipient="soc@partner.example", **kwargs) -> str:
    return sign_bulk_link(list(keys), tenant_id="tenant-a", alert_ids=alert_ids, recipient=recipient, now=now,
                          **kwargs)


def read_bulk(token: str, keys=(KEY,), *, now=NOW, max_age=WEEK):
    return read_bulk_link(list(keys), token, max_age_seconds=max_age, now=now)


def test_a_bulk_link_reads_back_as_signed():
    token = sign_bulk(alert_ids=["b/2 ünïcode", "a-1", "c"], recipient="Zoë <zoe@partner.example>")
    link = read_bulk(token, now=NOW + timedelta(hours=1))
    assert link == BulkLink(tenant_id="tenant-a", alert_ids=("b/2 ünïcode", "a-1", "c"), action=Action.acknowledge,
                            recipient="Zoë <zoe@partner.example>", link_id=link.link_id, issued_at=NOW)
    assert link.link_id
    assert len({read_bulk(sign_bulk()).link_id for _ in range(3)}) == 3


def test_a_bulk_link_lists_each_alert_once_in_the_order_given():
    assert read_bulk(sign_bulk(alert_ids=["b", "a", "b", "c", "a"])).alert_ids == ("b", "a", "c")


def test_a_bulk_link_of_the_most_alerts_stays_a_short_url_safe_token():
    draw = random.Random(13)
    ids = [str(uuid.UUID(int=draw.getrandbits(128))) for _ in range(BULK_LINK_MAX_ALERTS)]
    token = sign_bulk(alert_ids=ids)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert len(bulk_action_url("https://triage.example/api", token)) < 3000
    assert read_bulk(token).alert_ids == tuple(ids)
    assert bulk_action_url("https://triage.example/api/", "t") == "https://triage.example/api/v1/actions/bulk/t"


@pytest.mark.parametrize("alert_ids", [
    [], ["a", ""], [f"alert-{n}" for n in range(BULK_LINK_MAX_ALERTS + 1)],
])
def test_a_bulk_link_of_no_alert_too_many_or_an_empty_id_is_a_programming_error(alert_ids):
    with pytest.raises(ValueError):
        sign_bulk(alert_ids=alert_ids)


def test_a_bulk_link_only_acknowledges_for_now():
    assert read_bulk(sign_bulk(action=Action.acknowledge)).action is Action.acknowledge
    with pytest.raises(ValueError):
        sign_bulk(action=Action.resolve_ignore)


def test_a_bulk_link_works_until_its_maximum_age_then_is_expired():
    token = sign_bulk()
    assert read_bulk(token, now=NOW + timedelta(seconds=WEEK)).alert_ids == DIGEST_IDS
    with pytest.raises(LinkExpired) as expired:
        read_bulk(token, now=NOW + timedelta(seconds=WEEK + 1))
    assert expired.value.issued_at == NOW
    assert read_bulk(sign_bulk(now=NOW + timedelta(minutes=1))).issued_at == NOW + timedelta(minutes=1)
    with pytest.raises(LinkInvalid):
        read_bulk(sign_bulk(now=NOW + timedelta(hours=1)))


def test_a_changed_character_anywhere_makes_a_bulk_link_invalid():
    token = sign_bulk()
    for position in range(len(token)):
        changed = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1:]
        with pytest.raises(LinkInvalid):
            read_bulk(changed)
    for character in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".replace(token[-1], ""):
        with pytest.raises(LinkInvalid):
            read_bulk(token[:-1] + character)


def test_a_one_alert_link_never_reads_as_a_bulk_link_nor_a_bulk_link_as_a_one_alert_link():
    with pytest.raises(LinkInvalid):
        read_bulk(sign())
    with pytest.raises(LinkInvalid):
        read(sign_bulk())
    with pytest.raises(LinkInvalid):
        read(sign_bulk(alert_ids=["alert-1"]))


def test_bulk_link_keys_rotate_as_one_alert_links_do():
    signed_before = sign_bulk((OLD_KEY,))
    assert read_bulk(signed_before, (KEY, OLD_KEY)).alert_ids == DIGEST_IDS
    signed_after = sign_bulk((KEY, OLD_KEY))
    assert read_bulk(signed_after, (KEY,)).alert_ids == DIGEST_IDS
    with pytest.raises(LinkInvalid):
        read_bulk(signed_after, (OLD_KEY,))
    with pytest.raises(LinkInvalid):
        read_bulk(signed_before, (KEY,))
    with pytest.raises(LinkInvalid):
        read_bulk(sign_bulk((OTHER_KEY,)))
    with pytest.raises(ValueError):
        sign_bulk(())


def test_authentic_content_that_is_not_a_bulk_link_is_invalid():
    serializer = action_links._bulk_serializer([KEY], NOW)
    valid = {"t": "tenant-a", "a": ["alert-1"], "x": "acknowledge", "r": "soc@partner.example", "l": "id"}
    for payload in (["tenant-a"], {"t": "tenant-a"}, {**valid, "a": "alert-1"}, {**valid, "a": []},
                    {**valid, "a": ["alert-1", 2]}, {**valid, "a": ["alert-1", ""]},
                    {**valid, "a": [f"a{n}" for n in range(BULK_LINK_MAX_ALERTS + 1)]},
                    {**valid, "x": "resolve-fraud"}, {**valid, "x": "delete"}, {**valid, "r": 3}, {**valid, "l": ""}):
        with pytest.raises(LinkInvalid):
            read_bulk(serializer.dumps(payload))
    assert read_bulk(serializer.dumps(valid)).alert_ids == ("alert-1",)


@given(st.text(max_size=300))
def test_any_text_is_a_bulk_link_or_invalid_never_another_error(text):
    with pytest.raises(LinkInvalid):
        read_bulk(text)
