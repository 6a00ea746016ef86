"""Instants given by clients: ISO 8601 date-times with a UTC offset, and only those.

Pydantic also reads a number (or a string of digits) as Unix time, seconds or
milliseconds by its size: ``20261122`` would be a moment in August 1970, silently. A
number is refused instead, with the form that is wanted.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator, TypeAdapter, ValidationError

from playlog.errors import reason

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")
_PARSE = TypeAdapter(AwareDatetime)
WANTED = "an ISO 8601 date-time with a UTC offset, such as 2026-11-22T08:00:00Z"
_NOT_A_NUMBER = f"must be {WANTED}, not a number"


def _instant(value: object) -> object:
    """Text is parsed here (a number refused first), so a strict model, which takes no
    text for a date-time once a validator has handled it, gets the date-time itself."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(_NOT_A_NUMBER)
    if not isinstance(value, str):
        return value  # a date-time already, or a type the date-time check refuses
    if _NUMBER.fullmatch(value):
        raise ValueError(_NOT_A_NUMBER)
    try:
        return _PARSE.validate_python(value)
    except ValidationError as exc:
        raise ValueError(reason(exc.errors()[0])) from None


Instant = Annotated[AwareDatetime, BeforeValidator(_instant)]
