"""Static checks of the container files: Dockerfiles, .dockerignore and the compose files.

No Docker engine is needed; the files are parsed and cross-checked against the repository.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.prod.yml")
SERVICES = ("api", "collector", "frontend")
DOCKERFILES = tuple(f"services/{name}/Dockerfile" for name in SERVICES)
EXPECTED_SERVICES = {"postgres", "migrate", "api", "collector", "frontend"}
ONE_SHOT_SERVICES = {"migrate"}

# Variables compose may use without .env.example documenting them (compose/postgres only).
ALLOWED_UNDOCUMENTED = {"POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_DB", "PLAYLOG_VERSION"}
REQUIRED_SECRETS = {"ADMIN_TOKEN", "TOKEN_ENCRYPTION_KEY", "POSTGRES_PASSWORD"}
# Secrets that may be absent (basic-auth only) but never get a non-empty default.
SECRETS = REQUIRED_SECRETS | {"ADMIN_PASSWORD"}
DEV_TOOLS = ("pytest", "mypy", "ruff", "pgserver", "requirements/dev.txt")

ENV_EXAMPLE_NAME = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, $NAME.
# "$$" is compose's escape for a literal dollar sign and is not a reference.
BRACED_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
BARE_REFERENCE = re.compile(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Reference:
    name: str
    operator: str  # "", ":-", "-", ":?" or "?"
    argument: str


def references(text: str) -> list[Reference]:
    found = [Reference(m[1], m[2] or "", m[3] or "") for m in BRACED_REFERENCE.finditer(text)]
    found += [Reference(m[1], "", "") for m in BARE_REFERENCE.finditer(text)]
    return found


def mapping(value: object, what: str) -> dict[str, Any]:
    assert isinstance(value, dict), f"{what} must be a mapping, got {type(value).__name__}"
    assert all(isinstance(key, str) for key in value), f"{what} has non-string keys"
    return value


@cache
def compose_text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def compose(name: str) -> dict[str, Any]:
    return mapping(yaml.safe_load(compose_text(name)), name)


def services(name: str) -> dict[str, dict[str, Any]]:
    raw = mapping(compose(name).get("services"), f"{name}: services")
    return {key: mapping(value, f"{name}: service {key}") for key, value in raw.items()}


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment in either compose form (mapping or list of KEY=VALUE)."""
    raw = service.get("environment", {})
    if isinstance(raw, list):
        pairs = (str(item).partition("=") for item in raw)
        return {key: value for key, _, value in pairs}
    return {key: str(value) for key, value in mapping(raw, "environment").items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """{dependency: condition}; the short list form means service_started."""
    raw = service.get("depends_on", {})
    if isinstance(raw, list):
        return {str(name): "service_started" for name in raw}
    result = {}
    for name, spec in mapping(raw, "depends_on").items():
        result[name] = str(mapping(spec, f"depends_on {name}").get("condition"))
    return result


def documented_variables() -> set[str]:
    path = ROOT / ".env.example"
    if not path.is_file():
        pytest.fail(f"{path} is missing: it must document every variable the compose files use")
    return set(ENV_EXAMPLE_NAME.findall(path.read_text(encoding="utf-8")))


# --- Dockerfiles --------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [argument for name, argument in self.instructions if name == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, with comments dropped and continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # comment lines inside a continued instruction are skipped
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return result


def stages(path: str) -> list[Stage]:
    found: list[Stage] = []
    for keyword, arguments in instructions((ROOT / path).read_text(encoding="utf-8")):
        if keyword == "FROM":
            found.append(Stage(arguments))
        elif found:
            found[-1].instructions.append((keyword, arguments))
    return found


def copy_sources(arguments: str) -> list[str] | None:
    """The source paths of a COPY, or None for a copy from another stage or image."""
    if arguments.startswith("["):
        words = [str(word) for word in json.loads(arguments)]
    else:
        words = shlex.split(arguments)
    flags = [word for word in words if word.startswith("--")]
    if any(flag.startswith("--from=") for flag in flags):
        return None
    paths = [word for word in words if not word.startswith("--")]
    assert len(paths) >= 2, f"COPY needs a source and a destination: {arguments}"
    return paths[:-1]


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore glob: ** spans directories, * and ? stay within one."""
    pattern = pattern.strip("/")
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            parts.append(pattern[index : end + 1])
            index = end + 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts))


def ignored(path: str) -> bool:
    """Whether the build context leaves out `path` (a file, or anything under a directory)."""
    segments = path.strip("/").split("/")
    prefixes = ["/".join(segments[: count + 1]) for count in range(len(segments))]
    result = False
    for pattern in dockerignore_patterns():
        exclude = not pattern.startswith("!")
        regex = glob_regex(pattern.lstrip("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = exclude
    return result


# --- compose: structure -------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_declares_the_expected_services(name: str) -> None:
    assert set(services(name)) == EXPECTED_SERVICES
    declared_volumes = set(mapping(compose(name).get("volumes"), f"{name}: volumes"))
    assert {"pgdata", "uploads"} <= declared_volumes


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_build_contexts_and_dockerfiles_exist(name: str) -> None:
    built = 0
    for service_name, service in services(name).items():
        if "build" not in service:
            continue
        build = mapping(service["build"], f"{service_name}: build")
        context = ROOT / str(build.get("context", "."))
        dockerfile = context / str(build.get("dockerfile", "Dockerfile"))
        assert context.is_dir(), f"{name}: {service_name}: missing build context {context}"
        assert dockerfile.is_file(), f"{name}: {service_name}: missing {dockerfile}"
        # The tag names the image the Dockerfile builds: services/<x>/Dockerfile → playlog-<x>.
        service_dir = dockerfile.relative_to(ROOT).parts[1]
        image = str(service.get("image", ""))
        assert image == f"playlog-{service_dir}:${{PLAYLOG_VERSION:-dev}}", (name, service_name)
        built += 1
    assert built >= len(SERVICES)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_variable_is_documented_or_allowed(name: str) -> None:
    used = {reference.name for reference in references(compose_text(name))}
    assert used, f"{name} references no variables at all"
    undocumented = used - documented_variables() - ALLOWED_UNDOCUMENTED
    assert not undocumented, f"{name} uses variables missing from .env.example: {undocumented}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_startup_order(name: str) -> None:
    found = services(name)
    assert depends_on(found["migrate"]) == {"postgres": "service_healthy"}
    for service_name in ("api", "collector"):
        conditions = depends_on(found[service_name])
        assert conditions.get("migrate") == "service_completed_successfully", service_name
    assert depends_on(found["frontend"]).get("api") == "service_healthy"
    assert str(found["migrate"].get("restart")) == "no"
    assert found["migrate"].get("command") == ["playlog", "db", "upgrade"]
    assert found["migrate"].get("image") == found["api"].get("image")


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_services_get_only_the_settings_they_need(name: str) -> None:
    found = {key: environment(service) for key, service in services(name).items()}
    for service_name in ("api", "collector"):
        env = found[service_name]
        assert env.get("UPLOAD_DIR") == "/data/uploads", service_name
        assert "uploads:/data/uploads" in services(name)[service_name].get("volumes", [])
        assert {"DATABASE_URL", "TOKEN_ENCRYPTION_KEY"} <= set(env), service_name
    assert found["api"].get("API_HOST") == "0.0.0.0"  # noqa: S104 (inside the container)
    assert found["frontend"].get("FRONTEND_HOST") == "0.0.0.0"  # noqa: S104
    assert found["frontend"].get("API_BASE_URL") == "http://api:8000"
    assert not {"DATABASE_URL", "TOKEN_ENCRYPTION_KEY"} & set(found["frontend"])
    assert not any(key.startswith("ADMIN_") for key in found["collector"])
    assert {"ADMIN_AUTH_MODE", "ADMIN_TOKEN"} <= set(found["api"]) & set(found["frontend"])


# Settings a container deliberately leaves at their defaults: Spotify itself, and each
# collector replica's own id.
NOT_PASSED = {"SPOTIFY_API_BASE_URL", "SPOTIFY_ACCOUNTS_BASE_URL", "COLLECTOR_ID"}


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_setting_a_service_reads_is_passed_to_it(name: str) -> None:
    """A variable set in .env reaches the service that reads it; none is silently dropped."""
    from playlog_api.settings import ApiSettings
    from playlog_collector.settings import CollectorSettings
    from playlog_frontend.settings import FrontendSettings

    found = services(name)
    for service_name, settings in (
        ("api", ApiSettings),
        ("collector", CollectorSettings),
        ("frontend", FrontendSettings),
    ):
        read = {field.upper() for field in settings.model_fields}
        missing = read - set(environment(found[service_name])) - NOT_PASSED
        assert not missing, f"{name}: {service_name} reads but is not given {sorted(missing)}"


# --- compose: secrets ---------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_required_secrets_have_no_defaults(name: str) -> None:
    found = [ref for ref in references(compose_text(name)) if ref.name in REQUIRED_SECRETS]
    assert {ref.name for ref in found} == REQUIRED_SECRETS
    for ref in found:
        assert ref.operator == ":?", f"{name}: {ref.name} must use ${{{ref.name}:?message}}"
        assert ref.argument.strip(), f"{name}: {ref.name} needs an error message"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_secret_values_come_only_from_the_environment(name: str) -> None:
    for ref in references(compose_text(name)):
        if ref.name in SECRETS and ref.operator in {":-", "-"}:
            assert not ref.argument, f"{name}: {ref.name} has a default value"
    for service_name, service in services(name).items():
        env = environment(service)
        for key in SECRETS & set(env):
            only_reference = rf"\$\{{{key}(?::\?[^}}]+|:-)\}}"
            assert re.fullmatch(only_reference, env[key]), f"{service_name}: {key}={env[key]}"
        if "DATABASE_URL" in env:
            # user:password between "://" and "@" must be references only, the password required.
            userinfo = env["DATABASE_URL"].partition("://")[2].rpartition("@")[0]
            assert BRACED_REFERENCE.sub("", userinfo) == ":", f"{service_name}: {userinfo}"
            assert ":${POSTGRES_PASSWORD:?" in userinfo, service_name


@pytest.mark.parametrize("path", [*COMPOSE_FILES, *DOCKERFILES])
def test_no_literal_secret_defaults(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    secret = "|".join(sorted(SECRETS))
    defaults = re.findall(rf"\b(?:{secret}):?-(?!\}})", text)
    assert not defaults, f"{path} gives a secret a default: {defaults}"
    assignments = re.findall(rf"^\s*(?:ENV|ARG)\b.*\b(?:{secret})\b", text, re.MULTILINE)
    assert not assignments, f"{path} bakes a secret into the image: {assignments}"


# --- compose: production ------------------------------------------------------------------


def test_production_services_are_supervised_and_limited() -> None:
    found = services("docker-compose.prod.yml")
    for service_name, service in found.items():
        limits = mapping(
            mapping(mapping(service.get("deploy"), "deploy").get("resources"), "resources").get(
                "limits"
            ),
            f"{service_name}: deploy.resources.limits",
        )
        assert {"cpus", "memory"} <= set(limits), service_name
        assert "no-new-privileges:true" in service.get("security_opt", []), service_name
        if service_name in ONE_SHOT_SERVICES:
            assert str(service.get("restart")) == "no"
            continue
        assert service.get("restart") == "unless-stopped", service_name
        healthcheck = mapping(service.get("healthcheck"), f"{service_name}: healthcheck")
        assert healthcheck.get("test"), service_name
        assert not healthcheck.get("disable"), service_name
    assert "readyz" in str(found["api"]["healthcheck"]["test"])
    assert "healthz" in str(found["frontend"]["healthcheck"]["test"])
    assert "healthcheck" in found["collector"]["healthcheck"]["test"]
    assert "pg_isready" in found["postgres"]["healthcheck"]["test"]
    assert found["collector"]["deploy"].get("replicas") == 2
    assert "COLLECTOR_ID" not in environment(found["collector"])  # replicas need distinct ids
    for service_name in ("api", "collector", "frontend", "migrate"):
        assert found[service_name].get("read_only") is True, service_name
        assert "/tmp" in found[service_name].get("tmpfs", []), service_name  # noqa: S108


def test_production_publishes_only_loopback_ports() -> None:
    found = services("docker-compose.prod.yml")
    assert "ports" not in found["postgres"]
    for service_name, service in found.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{service_name} publishes {port}"
    assert found["api"].get("ports")
    assert found["frontend"].get("ports")


def test_production_log_level_defaults_to_info() -> None:
    text = compose_text("docker-compose.prod.yml")
    levels = [ref for ref in references(text) if ref.name == "LOG_LEVEL"]
    assert levels
    assert all((ref.operator, ref.argument) == (":-", "INFO") for ref in levels)


# --- Dockerfiles --------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES)
def test_dockerfile_is_multi_stage_and_runs_unprivileged(path: str) -> None:
    found = stages(path)
    assert len(found) >= 2, f"{path} must build in a separate stage"
    final = found[-1]
    users = final.arguments("USER")
    assert users, f"{path}: the final stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"{path} runs as {users[-1]}"
    assert final.arguments("HEALTHCHECK"), f"{path} has no HEALTHCHECK"
    assert final.arguments("CMD"), f"{path} has no CMD"


@pytest.mark.parametrize("path", DOCKERFILES)
def test_final_stage_only_copies_the_built_venv(path: str) -> None:
    final = stages(path)[-1]
    copies = final.arguments("COPY") + final.arguments("ADD")
    assert copies
    assert all(copy_sources(arguments) is None for arguments in copies), copies
    assert not any("pip install" in run for run in final.arguments("RUN")), path


@pytest.mark.parametrize("path", DOCKERFILES)
def test_copy_sources_exist_and_reach_the_build_context(path: str) -> None:
    checked = 0
    for stage in stages(path):
        for arguments in stage.arguments("COPY"):
            for source in copy_sources(arguments) or []:
                assert any(ROOT.glob(source.rstrip("/"))), f"{path}: COPY source {source} missing"
                assert not ignored(source), f"{path}: .dockerignore excludes {source}"
                checked += 1
    assert checked, f"{path} copies nothing from the repository"


@pytest.mark.parametrize("path", DOCKERFILES)
def test_installs_hashed_runtime_requirements(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    requirement_files = re.findall(r"-r\s+(\S+\.txt)", text)
    service = Path(path).parent.name
    assert requirement_files == [f"requirements/{service}.txt"]
    assert (ROOT / requirement_files[0]).is_file()
    assert "--require-hashes" in text
    pins = (ROOT / requirement_files[0]).read_text(encoding="utf-8")
    pinned = re.findall(r"^([A-Za-z0-9_.-]+)==", pins, re.MULTILINE)
    assert pinned, f"{requirement_files[0]} pins nothing"
    dev_tools = {name.lower() for name in pinned} & {"pytest", "mypy", "ruff", "pgserver"}
    assert not dev_tools, f"{requirement_files[0]} pins development tools: {dev_tools}"


@pytest.mark.parametrize("path", DOCKERFILES)
def test_dockerfile_ships_no_development_tools(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8").lower()
    mentioned = [tool for tool in DEV_TOOLS if tool in text]
    assert not mentioned, f"{path} mentions {mentioned}"
    assert "[embedded]" not in text


# --- .dockerignore ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".git/config",
        ".venv/bin/python",
        ".data/postgres/PG_VERSION",
        "shared/tests/test_settings.py",
        "services/api/tests/conftest.py",
        "tests/test_containers.py",
        "shared/src/playlog/__pycache__/settings.cpython-311.pyc",
        "docs/index.md",
        "node_modules/x/package.json",
        ".mypy_cache/3.11/x.json",
    ],
)
def test_dockerignore_excludes(path: str) -> None:
    assert ignored(path)


@pytest.mark.parametrize(
    "path",
    [
        "requirements/api.txt",
        "shared/pyproject.toml",
        "shared/src/playlog/settings.py",
        "shared/src/playlog/testing/plugin.py",
        "shared/src/playlog/db/migrations/env.py",
        "services/collector/src/playlog_collector/__main__.py",
    ],
)
def test_dockerignore_keeps_what_the_images_need(path: str) -> None:
    assert not ignored(path)
