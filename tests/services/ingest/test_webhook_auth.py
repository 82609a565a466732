"""Signature checks of inbound webhooks: good, bad, expired, rotated (no I/O)."""

from datetime import timedelta

import pytest

from services.ingest.webhook_auth import authenticate_webhook, new_secret, wants_signature_check
from shared.http import Problem
from shared.webhooks import sign_headers
from shared.wire import utcnow

BODY = b'{"id": "a1", "severity": "high"}'


class Secrets:
    """Stands in for the database-backed store: the tenant's active secrets."""

    def __init__(self, *secrets: str) -> None:
        self.secrets = list(secrets)

    async def for_tenant(self, tenant_id: str) -> list[str]:
        return self.secrets


async def test_good_signature_is_a_webhook_caller():
    secret = new_secret()
    headers = sign_headers(secret, BODY, msg_id="msg_1")
    assert wants_signature_check(headers)
    caller = await authenticate_webhook(Secrets(secret), "t", headers, BODY)
    assert caller.is_webhook and caller.webhook_id == "msg_1"


async def test_bad_signature_wrong_secret_or_changed_body_is_401():
    secret = new_secret()
    headers = sign_headers(secret, BODY)
    for secrets, body in ((Secrets(new_secret()), BODY), (Secrets(secret), BODY + b" ")):
        with pytest.raises(Problem) as caught:
            await authenticate_webhook(secrets, "t", headers, body)
        assert caught.value.status == 401
    tampered = {**headers, "webhook-signature": "v1,AAAA"}
    with pytest.raises(Problem):
        await authenticate_webhook(Secrets(secret), "t", tampered, BODY)


async def test_expired_or_future_timestamp_is_401():
    secret = new_secret()
    for shift in (timedelta(minutes=-6), timedelta(minutes=6)):
        headers = sign_headers(secret, BODY, now=utcnow() + shift)
        with pytest.raises(Problem) as caught:
            await authenticate_webhook(Secrets(secret), "t", headers, BODY)
        assert caught.value.status == 401
    recent = sign_headers(secret, BODY, now=utcnow() - timedelta(minutes=4))
    assert (await authenticate_webhook(Secrets(secret), "t", recent, BODY)).is_webhook


async def test_both_secrets_of_a_rotation_are_accepted():
    old, new = new_secret(), new_secret()
    for signer in (old, new):
        assert (
            await authenticate_webhook(Secrets(new, old), "t", sign_headers(signer, BODY), BODY)
        ).is_webhook
    with pytest.raises(Problem):
        await authenticate_webhook(Secrets(new), "t", sign_headers(old, BODY), BODY)


def test_requests_without_all_three_headers_are_not_webhooks():
    headers = sign_headers(new_secret(), BODY)
    del headers["webhook-signature"]
    assert not wants_signature_check(headers)
    assert not wants_signature_check({"Authorization": "Bearer k"})
