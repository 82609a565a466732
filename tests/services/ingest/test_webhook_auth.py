"""Signature checks of inbound webhooks: good, bad, expired, rotated (no I/O)."""

from datetime import timedelta

import pytest

from services.ingest.webhook_auth import (
    WebhookSecrets,
    authenticate_webhook,
    derived_secret,
    new_secret,
    wants_signature_check,
)
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


def test_a_request_with_any_signature_header_is_checked_as_a_webhook():
    # A partial signature is refused as one (401), never passed over for a key sent beside it.
    headers = sign_headers(new_secret(), BODY)
    del headers["webhook-signature"]
    assert wants_signature_check(headers)
    assert wants_signature_check({"Authorization": "Bearer k", "webhook-signature": ""})
    assert not wants_signature_check({"Authorization": "Bearer k"})


class NoOwnSecretsPool:
    """A pool on which no tenant has secrets of its own (``webhook_secrets_store.active_secrets`` finds none)."""

    async def fetch(self, *args):
        return []


async def test_a_tenant_without_secrets_uses_its_own_derived_default():
    deployment = new_secret()
    secrets = WebhookSecrets(NoOwnSecretsPool(), deployment)
    assert await secrets.for_tenant("tenant-a") == [derived_secret(deployment, "tenant-a")]
    assert derived_secret(deployment, "tenant-a") != derived_secret(deployment, "tenant-b")
    assert derived_secret(deployment, "tenant-a") == derived_secret(deployment, "tenant-a")

    signed_for_a = sign_headers(derived_secret(deployment, "tenant-a"), BODY)
    assert (await authenticate_webhook(secrets, "tenant-a", signed_for_a, BODY)).is_webhook
    with pytest.raises(Problem) as caught:
        await authenticate_webhook(secrets, "tenant-b", signed_for_a, BODY)
    assert caught.value.status == 401
    # The deployment-wide secret itself signs for no tenant.
    with pytest.raises(Problem):
        await authenticate_webhook(secrets, "tenant-a", sign_headers(deployment, BODY), BODY)


def test_show_default_prints_the_derived_secret(monkeypatch, capsys):
    import sys

    from services.ingest import webhook_auth

    deployment = new_secret()
    monkeypatch.setenv("WEBHOOK_SECRET", deployment)
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setattr(sys, "argv", ["webhook_auth", "show-default", "--tenant", "tenant-a"])
    webhook_auth.main()
    assert capsys.readouterr().out.strip() == derived_secret(deployment, "tenant-a")
