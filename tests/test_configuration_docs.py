"""Every setting the code reads is documented, and the docs name nothing that is not read."""

from __future__ import annotations

import re
from pathlib import Path

from playlog_api.settings import ApiSettings
from playlog_collector.settings import CollectorSettings
from playlog_frontend.settings import FrontendSettings

ROOT = Path(__file__).resolve().parents[1]

# Read outside the settings classes: by the CLI, compose, or the test suite.
OTHER_VARIABLES = {
    "PLAYLOG_DATA_DIR",
    "SPOTIFY_STAND_IN_PORT",
    "POSTGRES_PASSWORD",
    "POSTGRES_USER",
    "POSTGRES_DB",
    "PLAYLOG_VERSION",
    "TEST_DATABASE_URL",
    "SPOTIFY_OPENAPI_SPEC",
}


def settings_variables() -> set[str]:
    names: set[str] = set()
    for settings_cls in (ApiSettings, CollectorSettings, FrontendSettings):
        names |= {name.upper() for name in settings_cls.model_fields}
    return names


def env_example_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def readme_table_variables() -> set[str]:
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", text, flags=re.MULTILINE))


def test_every_setting_is_in_env_example() -> None:
    assert settings_variables() - env_example_variables() == set()


def test_every_setting_is_in_the_readme_table() -> None:
    assert settings_variables() - readme_table_variables() == set()


def test_docs_list_no_variable_nobody_reads() -> None:
    known = settings_variables() | OTHER_VARIABLES
    assert env_example_variables() - known == set()
    assert readme_table_variables() - known == set()


def test_env_example_and_readme_agree() -> None:
    assert env_example_variables() == readme_table_variables()


def test_every_variable_in_env_example_has_a_comment() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert index > 0
            assert lines[index - 1].startswith("#"), f"no comment above {line}"


def test_env_example_holds_no_secret_values() -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, _, value = line.partition("=")
        if name in {"ADMIN_TOKEN", "ADMIN_PASSWORD", "TOKEN_ENCRYPTION_KEY", "POSTGRES_PASSWORD"}:
            assert value == "", f"{name} must be empty in .env.example"
