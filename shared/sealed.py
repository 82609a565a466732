"""Sealing secrets that leave a service's memory: on a Kafka topic or at rest.

A channel's signing secret crosses from the write API to the notifier on a compacted topic that
keeps it for as long as the channel lives; anyone who can read the topic must not read the secret.
It is sealed with Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under the deployment's
``SEALING_KEYS``: the first key seals, every key unseals (``MultiFernet``), so keys rotate without
downtime.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SealBroken(Exception):
    """A sealed value that none of the keys opens: tampered with, or sealed under a key dropped since."""


def _box(keys: Sequence[str]) -> MultiFernet:
    if not keys:
        raise ValueError("no sealing key")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def seal(secret: str, keys: Sequence[str]) -> str:
    """``secret`` sealed under the first of ``keys``: an opaque url-safe token."""
    return _box(keys).encrypt(secret.encode()).decode()


def unseal(token: str, keys: Sequence[str]) -> str:
    """The secret inside ``token``; :class:`SealBroken` if no key of ``keys`` opens it."""
    try:
        return _box(keys).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise SealBroken("the sealed value opens with none of SEALING_KEYS") from exc
