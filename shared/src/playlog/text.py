"""Rules for text from outside: what PostgreSQL can store, and what a name may hold."""

from __future__ import annotations

import unicodedata

# PostgreSQL's text cannot hold a NUL, which JSON can spell; it is stored as this instead.
NUL = "\x00"
REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    """``text`` as PostgreSQL's text takes it: a NUL becomes U+FFFD, a lone surrogate
    (which UTF-8 cannot encode; JSON may spell one) "?". ``copydata.encode`` is the same
    rule giving the bytes."""
    if NUL in text:
        text = text.replace(NUL, REPLACEMENT)
    return text if text.isascii() else text.encode(errors="replace").decode()


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a control character (tabs, line breaks, a NUL, DEL and the
    C1 range): names are listed one per line and searched joined by one."""
    return any(unicodedata.category(character) == "Cc" for character in text)
