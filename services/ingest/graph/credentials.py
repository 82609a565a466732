"""A Graph connection's credentials, and what the identity platform needs from them. Pure: no I/O.

An app registration signs in with a client secret or with a certificate. The certificate comes as one
PEM holding the private key and the certificate (the form azure-identity's CertificateCredential
takes); signing in with it means sending a client assertion: a short-lived JWT signed RS256 with the
private key, whose header names the certificate by its thumbprint (``x5t``), which is how Entra finds
the public key registered on the app.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

# The identity platform accepts an assertion valid for at most 10 minutes (MSAL signs them for 10).
ASSERTION_LIFETIME = timedelta(minutes=10)

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


@dataclass(frozen=True)
class GraphCredentials:
    """An app registration in a customer's or partner's directory, with exactly one of its secrets."""

    directory_id: str
    client_id: str
    # Kept out of repr: a credentials object in a log line or a traceback shows no secret.
    client_secret: str | None = field(default=None, repr=False)
    certificate_pem: str | None = field(default=None, repr=False)  # private key + certificate, PEM

    def __post_init__(self) -> None:
        if not self.directory_id or not self.client_id:
            raise ValueError("Graph credentials need a directory id and a client id")
        if bool(self.client_secret) == bool(self.certificate_pem):
            raise ValueError("Graph credentials hold exactly one of a client secret and a certificate")


class CertificateInvalid(ValueError):
    """The certificate PEM cannot sign in; the message says why."""


@dataclass(frozen=True)
class _SigningCertificate:
    key: rsa.RSAPrivateKey
    der: bytes  # the certificate, DER: what its thumbprints are taken of


def _read(certificate_pem: str, now: datetime) -> _SigningCertificate:
    blocks = [(m.group(1), m.group(0)) for m in _PEM_BLOCK.finditer(certificate_pem or "")]
    key_blocks = [text for label, text in blocks if label.endswith("PRIVATE KEY")]
    if not key_blocks:
        raise CertificateInvalid("the PEM holds no private key (give the private key and the certificate)")
    if len(key_blocks) > 1:
        raise CertificateInvalid("the PEM holds more than one private key")
    try:
        key = serialization.load_pem_private_key(key_blocks[0].encode(), password=None)
    except TypeError:
        raise CertificateInvalid("the private key is protected by a password: give it without one") from None
    except ValueError as exc:
        raise CertificateInvalid(f"the private key cannot be read: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateInvalid("the private key is not an RSA key (the identity platform takes RS256 assertions)")

    certificates = []
    for label, text in blocks:
        if label == "CERTIFICATE":
            try:
                certificates.append(x509.load_pem_x509_certificate(text.encode()))
            except ValueError as exc:
                raise CertificateInvalid(f"a certificate cannot be read: {exc}") from None
    if not certificates:
        raise CertificateInvalid("the PEM holds no certificate (give the private key and the certificate)")
    # A chain may follow; the certificate that signs in is the one of the private key.
    own_public_key = key.public_key().public_numbers()
    for certificate in certificates:
        public_key = certificate.public_key()
        if isinstance(public_key, rsa.RSAPublicKey) and public_key.public_numbers() == own_public_key:
            break
    else:
        raise CertificateInvalid("the certificate does not belong to the private key")

    if now < certificate.not_valid_before_utc:
        raise CertificateInvalid(
            f"the certificate is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if now > certificate.not_valid_after_utc:
        raise CertificateInvalid(f"the certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    return _SigningCertificate(key, certificate.public_bytes(serialization.Encoding.DER))


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    return now


def certificate_thumbprint(certificate_pem: str, *, now: datetime | None = None) -> str:
    """The certificate's SHA-1 thumbprint, upper-case hex, as Entra shows it on the app registration.

    Raises :class:`CertificateInvalid` unless the PEM holds an RSA private key and its certificate,
    valid at ``now`` (the current time if not given).
    """
    return hashlib.sha1(_read(certificate_pem, _aware(now)).der).hexdigest().upper()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def client_assertion(credentials: GraphCredentials, token_url: str, *, now: datetime) -> str:
    """The signed JWT that proves the app holds the certificate's private key, for ``token_url``.

    Raises :class:`CertificateInvalid` when the certificate cannot sign in (expired, for instance),
    ``ValueError`` for credentials with a client secret instead.
    """
    if not credentials.certificate_pem:
        raise ValueError("a client assertion needs credentials with a certificate")
    signing = _read(credentials.certificate_pem, _aware(now))
    header = {
        "alg": "RS256",
        "typ": "JWT",
        "x5t": _b64url(hashlib.sha1(signing.der).digest()),
        "x5t#S256": _b64url(hashlib.sha256(signing.der).digest()),
    }
    issued = int(now.timestamp())
    claims = {
        "aud": token_url,
        "iss": credentials.client_id,
        "sub": credentials.client_id,
        "jti": str(uuid.uuid4()),  # the identity platform refuses a replayed assertion
        "nbf": issued,
        "iat": issued,
        "exp": issued + int(ASSERTION_LIFETIME.total_seconds()),
    }
    return jwt.encode(header, claims, RSAKey.import_key(signing.key), algorithms=["RS256"])


def to_sealable(credentials: GraphCredentials) -> str:
    """The credentials as JSON, to seal at rest with ``shared.sealed`` (never stored in the clear)."""
    document = {"directoryId": credentials.directory_id, "clientId": credentials.client_id}
    if credentials.client_secret:
        document["clientSecret"] = credentials.client_secret
    if credentials.certificate_pem:
        document["certificate"] = credentials.certificate_pem
    return json.dumps(document)


def from_sealable(text: str) -> GraphCredentials:
    """The credentials back from :func:`to_sealable`'s JSON; ``ValueError`` if it is not that."""
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        parts = {
            "directory_id": document.get("directoryId"),
            "client_id": document.get("clientId"),
            "client_secret": document.get("clientSecret"),
            "certificate_pem": document.get("certificate"),
        }
        if any(value is not None and not isinstance(value, str) for value in parts.values()):
            raise ValueError("a part is not a string")
        return GraphCredentials(**parts)
    except ValueError as exc:  # json.JSONDecodeError is one
        raise ValueError(f"sealed Graph credentials unreadable: {exc}") from None
