"""Standard Webhooks signatures with no I/O: good, tampered, expired, rotated."""

from datetime import timedelta

import pytest
from standardwebhooks import Webhook

from shared.webhooks import WebhookSignatureError, has_signature, sign_headers, verify
from shared.wire import utcnow

OLD = "whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0"
NEW = "whsec_bmV3LXNlY3JldC1uZXctc2VjcmV0"
BODY = b'{"id":"alert-1"}'


def test_a_signature_verifies_with_its_secret_and_any_standard_webhooks_library():
    headers = sign_headers(NEW, BODY, msg_id="msg_1")
    assert has_signature(headers)
    verify([NEW], headers, BODY)
    # The reference library accepts what we sign: receivers can use any Standard Webhooks library.
    Webhook(NEW).verify(BODY.decode(), headers)


def test_any_signature_header_makes_a_signed_request_that_fails_when_incomplete():
    assert has_signature({"webhook-signature": ""}) and has_signature({"Webhook-Id": "msg_1"})
    assert not has_signature({"authorization": "Bearer k"})
    with pytest.raises(WebhookSignatureError):
        verify([NEW], {"webhook-signature": ""}, BODY)


def test_a_tampered_body_or_wrong_secret_fails():
    headers = sign_headers(NEW, BODY)
    with pytest.raises(WebhookSignatureError):
        verify([NEW], headers, b'{"id":"alert-2"}')
    with pytest.raises(WebhookSignatureError):
        verify([OLD], headers, BODY)


def test_outside_five_minutes_fails():
    headers = sign_headers(NEW, BODY, now=utcnow() - timedelta(minutes=6))
    with pytest.raises(WebhookSignatureError, match="too old"):
        verify([NEW], headers, BODY)
    verify([NEW], sign_headers(NEW, BODY, now=utcnow() - timedelta(minutes=4)), BODY)


def test_during_rotation_either_active_secret_verifies():
    verify([NEW, OLD], sign_headers(OLD, BODY), BODY)
    verify([NEW, OLD], sign_headers(NEW, BODY), BODY)


def test_several_signatures_in_one_header_are_accepted():
    now = utcnow()
    old, new = sign_headers(OLD, BODY, msg_id="m", now=now), sign_headers(NEW, BODY, msg_id="m", now=now)
    both = {**new, "webhook-signature": f"{old['webhook-signature']} {new['webhook-signature']}"}
    verify([NEW], both, BODY)
    verify([OLD], both, BODY)


def test_signing_with_two_secrets_verifies_with_either_and_only_those():
    both = sign_headers([NEW, OLD], BODY, msg_id="m")
    assert len(both["webhook-signature"].split(" ")) == 2
    verify([NEW], both, BODY)
    verify([OLD], both, BODY)
    with pytest.raises(WebhookSignatureError):
        verify(["whsec_" + "b3RoZXItc2VjcmV0LW9mLXNvbWVvbmU="], both, BODY)


def test_malformed_headers_fail_cleanly():
    with pytest.raises(WebhookSignatureError):
        verify([NEW], {"webhook-id": "x", "webhook-timestamp": "soon", "webhook-signature": "garbage"}, BODY)
    with pytest.raises(WebhookSignatureError):
        verify([NEW], {"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1"}, BODY)
