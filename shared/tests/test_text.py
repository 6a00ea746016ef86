"""One rule for storable text and one for the characters a name may not hold."""

from __future__ import annotations

import pytest

from playlog.exports import copydata
from playlog.text import has_control_characters, storable


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("plain", "plain"),
        ("Caf\u00e9 \U0001f3b5", "Caf\u00e9 \U0001f3b5"),
        ("a\x00b", "a\ufffdb"),
        ("lone \ud800 half", "lone ? half"),
    ],
)
def test_storable_text_and_its_copy_encoding_agree(text: str, stored: str) -> None:
    assert storable(text) == stored
    assert copydata.encode(text) == stored.encode()


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("Ada Lovelace", False),
        ("\U0001f468\u200d\U0001f469\u200d\U0001f467 family", False),  # joiners are no controls
        ("non\u00a0breaking", False),
        ("two\nlines", True),
        ("tab\there", True),
        ("nul\x00", True),
        ("del\x7f", True),
        ("next line \x85", True),  # C1
    ],
)
def test_control_characters(name: str, refused: bool) -> None:
    assert has_control_characters(name) is refused
