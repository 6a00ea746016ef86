"""Text from elsewhere (a stored error, what Spotify wrote) made fit to show a caller:
credentials, e-mail addresses and server file paths replaced, and the length capped."""

from __future__ import annotations

import re

from playlog.logging import redact

_EMAILS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Absolute file paths (POSIX with at least two parts, or Windows): an OSError's message
# names the upload's place on the server. URLs do not match: their slashes follow a
# letter, a colon or another slash.
_PATHS = re.compile(r"(?<![\w:/.~-])/(?:[^\s'\"/]+/)+[^\s'\",;)]*|\b[A-Za-z]:\\[^\s'\",;)]+")


def clean_text(message: str, limit: int) -> str:
    """``message`` without secrets, e-mail addresses or paths, at most ``limit``
    characters (a cut one ends with "…")."""
    cleaned = _PATHS.sub("[path]", _EMAILS.sub("[email]", redact(message)))
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned
