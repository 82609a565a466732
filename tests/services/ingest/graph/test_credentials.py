"""The Graph connection's credentials: pure, no I/O. The certificate is read and checked, the client
assertion signed and verifiable with the certificate's public key, the sealable form round-trips."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import RSAKey

from services.ingest.graph.credentials import (
    CertificateInvalid,
    GraphCredentials,
    certificate_thumbprint,
    client_assertion,
    from_sealable,
    to_sealable,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOKEN_URL = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"


def _rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _certificate(key, *, not_before: datetime = NOW - timedelta(days=1), days: int = 365) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csp-triage test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )


def _key_pem(key, *, password: bytes | None = None) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def _cert_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return _rsa_key()


@pytest.fixture(scope="module")
def certificate(rsa_key) -> x509.Certificate:
    return _certificate(rsa_key)


@pytest.fixture(scope="module")
def bundle(rsa_key, certificate) -> str:
    """Private key then certificate, the PEM an admin gives (as azure-identity's CertificateCredential takes it)."""
    return _key_pem(rsa_key) + _cert_pem(certificate)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- certificate_thumbprint -----------------------------------------------------------------------


def test_thumbprint_is_the_upper_case_hex_sha1_of_the_certificate_as_entra_shows_it(bundle, certificate):
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert certificate_thumbprint(bundle, now=NOW) == hashlib.sha1(der).hexdigest().upper()


def test_thumbprint_whatever_the_order_of_key_and_certificate(rsa_key, certificate, bundle):
    reversed_bundle = _cert_pem(certificate) + "\n" + _key_pem(rsa_key)
    assert certificate_thumbprint(reversed_bundle, now=NOW) == certificate_thumbprint(bundle, now=NOW)


def test_thumbprint_picks_the_certificate_of_the_key_among_a_chain(rsa_key, certificate, bundle):
    issuer_key = _rsa_key()
    chain = _key_pem(rsa_key) + _cert_pem(_certificate(issuer_key)) + _cert_pem(certificate)
    assert certificate_thumbprint(chain, now=NOW) == certificate_thumbprint(bundle, now=NOW)


@pytest.mark.parametrize(
    ("pem", "says"),
    [
        ("", "no private key"),
        ("not a PEM at all", "no private key"),
        ("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n", "private key"),
    ],
)
def test_garbage_is_refused_with_what_is_wrong(pem, says):
    with pytest.raises(CertificateInvalid, match=says):
        certificate_thumbprint(pem, now=NOW)


def test_a_certificate_without_its_private_key_is_refused(certificate):
    with pytest.raises(CertificateInvalid, match="no private key"):
        certificate_thumbprint(_cert_pem(certificate), now=NOW)


def test_a_private_key_without_certificate_is_refused(rsa_key):
    with pytest.raises(CertificateInvalid, match="no certificate"):
        certificate_thumbprint(_key_pem(rsa_key), now=NOW)


def test_a_password_protected_key_is_refused(rsa_key, certificate):
    with pytest.raises(CertificateInvalid, match="password"):
        certificate_thumbprint(_key_pem(rsa_key, password=b"secret") + _cert_pem(certificate), now=NOW)


def test_a_certificate_of_another_key_is_refused(rsa_key):
    other = _certificate(_rsa_key())
    with pytest.raises(CertificateInvalid, match="does not belong to the private key"):
        certificate_thumbprint(_key_pem(rsa_key) + _cert_pem(other), now=NOW)


def test_a_non_rsa_key_is_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertificateInvalid, match="RSA"):
        certificate_thumbprint(_key_pem(key) + _cert_pem(_certificate(key)), now=NOW)


def test_an_expired_certificate_is_refused_naming_the_date(rsa_key):
    expired = _certificate(rsa_key, not_before=NOW - timedelta(days=400), days=365)
    with pytest.raises(CertificateInvalid, match=r"expired on 2026-01-25"):
        certificate_thumbprint(_key_pem(rsa_key) + _cert_pem(expired), now=NOW)


def test_a_certificate_not_yet_valid_is_refused(rsa_key):
    future = _certificate(rsa_key, not_before=NOW + timedelta(days=2))
    with pytest.raises(CertificateInvalid, match=r"not valid before 2026-03-03"):
        certificate_thumbprint(_key_pem(rsa_key) + _cert_pem(future), now=NOW)


def test_certificate_invalid_is_a_value_error():
    assert issubclass(CertificateInvalid, ValueError)


# --- client_assertion -----------------------------------------------------------------------------


def test_client_assertion_is_an_rs256_jwt_verifiable_with_the_certificate(bundle, certificate):
    credentials = GraphCredentials("contoso.onmicrosoft.com", CLIENT_ID, certificate_pem=bundle)
    assertion = client_assertion(credentials, TOKEN_URL, now=NOW)

    public_key = RSAKey.import_key(certificate.public_key())
    token = jwt.decode(assertion, public_key, algorithms=["RS256"])
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert token.header["alg"] == "RS256"
    assert token.header["x5t"] == _b64url(hashlib.sha1(der).digest())
    assert token.header["x5t#S256"] == _b64url(hashlib.sha256(der).digest())
    claims = token.claims
    assert claims["aud"] == TOKEN_URL
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["nbf"] == claims["iat"] == int(NOW.timestamp())
    assert 0 < claims["exp"] - claims["iat"] <= 600
    assert claims["jti"]


def test_each_assertion_has_its_own_jti(bundle):
    credentials = GraphCredentials("contoso.onmicrosoft.com", CLIENT_ID, certificate_pem=bundle)
    first, second = (
        jwt.decode(client_assertion(credentials, TOKEN_URL, now=NOW), RSAKey.import_key(_key_from(bundle)))
        for _ in range(2)
    )
    assert first.claims["jti"] != second.claims["jti"]


def _key_from(bundle: str):
    return serialization.load_pem_private_key(bundle.split("-----BEGIN CERTIFICATE")[0].encode(), None)


def test_no_assertion_for_an_expired_certificate(rsa_key):
    expired = _key_pem(rsa_key) + _cert_pem(_certificate(rsa_key, not_before=NOW - timedelta(days=400)))
    credentials = GraphCredentials("contoso.onmicrosoft.com", CLIENT_ID, certificate_pem=expired)
    with pytest.raises(CertificateInvalid, match="expired"):
        client_assertion(credentials, TOKEN_URL, now=NOW)


def test_no_assertion_for_a_client_secret():
    credentials = GraphCredentials("contoso.onmicrosoft.com", CLIENT_ID, client_secret="s3cret")
    with pytest.raises(ValueError, match="certificate"):
        client_assertion(credentials, TOKEN_URL, now=NOW)


def test_assertion_needs_an_aware_time(bundle):
    credentials = GraphCredentials("contoso.onmicrosoft.com", CLIENT_ID, certificate_pem=bundle)
    with pytest.raises(ValueError, match="time zone"):
        client_assertion(credentials, TOKEN_URL, now=datetime(2026, 3, 1, 12, 0))


# --- GraphCredentials and its sealable form -------------------------------------------------------


@pytest.mark.parametrize(
    "parts",
    [{}, {"client_secret": "s3cret", "certificate_pem": "PEM"}, {"client_secret": ""}, {"certificate_pem": ""}],
)
def test_credentials_hold_exactly_one_secret(parts):
    with pytest.raises(ValueError, match="exactly one"):
        GraphCredentials("contoso.onmicrosoft.com", CLIENT_ID, **parts)


def test_the_secret_parts_stay_out_of_repr(bundle):
    for credentials in (
        GraphCredentials("contoso.onmicrosoft.com", CLIENT_ID, client_secret="s3cret-value"),
        GraphCredentials("contoso.onmicrosoft.com", CLIENT_ID, certificate_pem=bundle),
    ):
        text = repr(credentials)
        assert CLIENT_ID in text
        assert "s3cret-value" not in text and "PRIVATE KEY" not in text


@pytest.mark.parametrize("kind", ["secret", "certificate"])
def test_sealable_form_round_trips(kind, bundle):
    secret = {"client_secret": "s3cret~value"} if kind == "secret" else {"certificate_pem": bundle}
    credentials = GraphCredentials("contoso.onmicrosoft.com", CLIENT_ID, **secret)
    text = to_sealable(credentials)
    assert isinstance(json.loads(text), dict)
    assert from_sealable(text) == credentials


@pytest.mark.parametrize("text", ["", "[]", "{}", '{"directoryId": "d", "clientId": "c"}', "not json"])
def test_a_broken_sealable_form_is_a_clear_value_error(text):
    with pytest.raises(ValueError, match="sealed Graph credentials"):
        from_sealable(text)
