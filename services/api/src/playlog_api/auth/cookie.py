"""The signed, short-lived cookie that binds an OAuth ``state`` to the browser."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

COOKIE_NAME = "playlog_oauth"
MAX_AGE_SECONDS = 600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def sign_state(secret: str, state: str, now: float | None = None) -> str:
    payload = _b64(json.dumps({"s": state, "t": int(now or time.time())}).encode())
    return f"{payload}.{_mac(secret, payload)}"


def read_state(secret: str, cookie: str | None, now: float | None = None) -> str | None:
    """The state in a valid, unexpired cookie; None for anything else."""
    if not cookie or cookie.count(".") != 1:
        return None
    payload, mac = cookie.split(".")
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    try:
        data = json.loads(_unb64(payload))
        state, issued = data["s"], data["t"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(state, str) or not isinstance(issued, int):
        return None
    age = (now or time.time()) - issued
    return state if 0 <= age <= MAX_AGE_SECONDS else None
