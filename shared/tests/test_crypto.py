from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from playlog.crypto import DecryptionError, TokenCipher, parse_fernet_keys


def new_key() -> str:
    return Fernet.generate_key().decode()


def test_round_trip_keeps_the_value_and_hides_it() -> None:
    cipher = TokenCipher(new_key())
    secret = "AQDx-refresh-token-äö-🎵"
    stored = cipher.encrypt(secret)
    assert secret not in stored
    assert cipher.decrypt(stored) == secret
    # Fernet is randomised: the same value never encrypts to the same text twice.
    assert cipher.encrypt(secret) != stored


def test_rotation_reads_old_values_and_rewrites_them_with_the_new_key() -> None:
    old, new = new_key(), new_key()
    stored_with_old = TokenCipher(old).encrypt("refresh-token")

    rotating = TokenCipher(f"{new},{old}")
    assert rotating.decrypt(stored_with_old) == "refresh-token"
    rotated = rotating.rotate(stored_with_old)

    # After rotation the old key can be removed from the list.
    assert TokenCipher(new).decrypt(rotated) == "refresh-token"
    with pytest.raises(DecryptionError):
        TokenCipher(old).decrypt(rotated)


def test_new_values_use_the_first_key() -> None:
    first, second = new_key(), new_key()
    stored = TokenCipher(f"{first}, {second}").encrypt("value")
    assert TokenCipher(first).decrypt(stored) == "value"
    with pytest.raises(DecryptionError):
        TokenCipher(second).decrypt(stored)


@pytest.mark.parametrize("stored", ["", "garbage", "gAAAAA" + "x" * 80, "ünïcode"])
def test_undecryptable_values_raise_a_typed_error(stored: str) -> None:
    with pytest.raises(DecryptionError, match="cannot be decrypted"):
        TokenCipher(new_key()).decrypt(stored)


def test_tampered_ciphertext_is_rejected() -> None:
    cipher = TokenCipher(new_key())
    stored = cipher.encrypt("value")
    tampered = stored[:-5] + ("A" if stored[-5] != "A" else "B") + stored[-4:]
    with pytest.raises(DecryptionError):
        cipher.decrypt(tampered)


def test_rotate_refuses_values_of_unknown_keys() -> None:
    stored = TokenCipher(new_key()).encrypt("value")
    with pytest.raises(DecryptionError):
        TokenCipher(new_key()).rotate(stored)


@pytest.mark.parametrize("raw", ["", " , ", "short", "a" * 44])
def test_bad_key_lists_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="TOKEN_ENCRYPTION_KEY"):
        parse_fernet_keys(raw)
