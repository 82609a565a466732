"""Sealing secrets with the deployment's keys (pure: no I/O)."""

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from shared.sealed import SealBroken, seal, unseal
from shared.settings import DEV_SEALING_KEY, CommonSettings


def test_a_sealed_secret_opens_with_its_key_and_does_not_show_it():
    key = Fernet.generate_key().decode()
    token = seal("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=", [key])
    assert "c2VjcmV0" not in token
    assert unseal(token, [key]) == "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="


def test_a_rotated_key_list_still_opens_what_the_old_key_sealed():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = seal("s", [old])
    assert unseal(token, [new, old]) == "s"
    assert unseal(seal("s", [new, old]), [new]) == "s"


def test_a_foreign_or_tampered_token_is_refused():
    key, other = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = seal("s", [key])
    with pytest.raises(SealBroken):
        unseal(token, [other])
    with pytest.raises(SealBroken):
        unseal(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), [key])


def test_the_development_sealing_key_is_refused_outside_development():
    with pytest.raises(ValidationError, match="SEALING_KEYS"):
        CommonSettings(environment="production", operator_api_key="x" * 40,
                       webhook_secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUE=")
    settings = CommonSettings(environment="development")
    assert settings.sealing_key_list == [DEV_SEALING_KEY]


def test_a_sealing_key_that_is_not_a_fernet_key_is_refused():
    with pytest.raises(ValidationError, match="Fernet"):
        CommonSettings(environment="development", sealing_keys="not-a-key")
