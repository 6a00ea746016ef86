"""Encryption of stored secrets (Spotify tokens) with key rotation.

``TOKEN_ENCRYPTION_KEY`` holds one or more Fernet keys separated by commas, newest
first. New values are encrypted with the first key; any listed key decrypts, so a key
can be rotated by prepending a new one and re-encrypting with :meth:`TokenCipher.rotate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class DecryptionError(Exception):
    """A stored value cannot be decrypted with any configured key."""


def parse_fernet_keys(raw: str) -> list[Fernet]:
    """Parse a comma-separated key list; a ValueError names the bad position, not the key."""
    parts = [part.strip() for part in raw.split(",")]
    if not any(parts):
        raise ValueError("TOKEN_ENCRYPTION_KEY is required")
    keys = []
    for position, part in enumerate(parts, start=1):
        if not part:
            raise ValueError(f"TOKEN_ENCRYPTION_KEY has an empty key at position {position}")
        try:
            keys.append(Fernet(part.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise ValueError(
                f"TOKEN_ENCRYPTION_KEY key {position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; generate one with "
                "`playlog secrets generate-key`)"
            ) from None
    return keys


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class TokenCipher:
    """Encrypts and decrypts short secrets as url-safe text."""

    def __init__(self, keys: str) -> None:
        self._fernet = MultiFernet(parse_fernet_keys(keys))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        with _as_decryption_error():
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt a stored value with the newest key (keeps its original timestamp)."""
        with _as_decryption_error():
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")


@contextmanager
def _as_decryption_error() -> Iterator[None]:
    try:
        yield
    except (InvalidToken, UnicodeError):
        raise DecryptionError("stored secret cannot be decrypted with any configured key") from None
