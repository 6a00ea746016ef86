"""The stand-in answers with Spotify's real shapes: every response validates against
Spotify's public OpenAPI description (SPOTIFY_OPENAPI_SPEC points to it; .ci/run sets it).
"""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml
from jsonschema import Draft4Validator

from playlog.spotify.stand_in import StandInConfig
from playlog.testing.spotify import signed_in_stand_in

SPEC_PATH = os.environ.get("SPOTIFY_OPENAPI_SPEC", "")

pytestmark = pytest.mark.skipif(
    not Path(SPEC_PATH).is_file(),
    reason="set SPOTIFY_OPENAPI_SPEC to Spotify's OpenAPI description (spotify-web-api."
    "openapi.yml) to check the stand-in against it; .ci/run does when the file is present",
)

# Fields Spotify's reference describes as "null if none" without marking them nullable.
# The real service sends null there, so the stand-in does too.
DOCUMENTED_NULLS = {"CursorPagingObject": ("next", "cursors")}
CONFIG = StandInConfig(enable_control=True, history_hours=24)


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` becomes a JSON Schema union with null."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_to_json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    spec = yaml.safe_load(Path(SPEC_PATH).read_text())
    components: dict[str, Any] = copy.deepcopy(spec["components"])
    for schema, fields in DOCUMENTED_NULLS.items():
        for name in fields:
            components["schemas"][schema]["properties"][name]["nullable"] = True
    converted: dict[str, Any] = _nullable_to_json_schema(components)
    return converted


def validate(components: dict[str, Any], response_name: str, body: Any) -> None:
    response = components["responses"][response_name]
    schema = {**response["content"]["application/json"]["schema"], "components": components}
    errors = sorted(Draft4Validator(schema).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


@pytest_asyncio.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    """A client of the stand-in that is already signed in as the demo listener."""
    async with signed_in_stand_in(CONFIG) as client:
        yield client


async def test_me(api: httpx.AsyncClient, components: dict[str, Any]) -> None:
    validate(components, "OnePrivateUser", (await api.get("/v1/me")).json())


async def test_recently_played_full_and_empty_pages(
    api: httpx.AsyncClient, components: dict[str, Any]
) -> None:
    full = (await api.get("/v1/me/player/recently-played", params={"limit": 50})).json()
    assert len(full["items"]) == 50
    validate(components, "CursorPagedPlayHistory", full)
    empty = (await api.get("/v1/me/player/recently-played", params={"before": 1})).json()
    assert empty["items"] == []
    validate(components, "CursorPagedPlayHistory", empty)


@pytest.mark.parametrize(
    ("kind", "response"), [("tracks", "PagingTrackObject"), ("artists", "PagingArtistObject")]
)
async def test_top(
    api: httpx.AsyncClient, components: dict[str, Any], kind: str, response: str
) -> None:
    body = (await api.get(f"/v1/me/top/{kind}", params={"limit": 10, "offset": 2})).json()
    assert body["items"]
    validate(components, response, body)


async def test_search(api: httpx.AsyncClient, components: dict[str, Any]) -> None:
    body = (
        await api.get("/v1/search", params={"q": "e", "type": "track,artist,album", "limit": 10})
    ).json()
    assert all(body[key]["items"] for key in ("tracks", "artists", "albums"))
    validate(components, "SearchItems", body)


async def test_single_items(api: httpx.AsyncClient, components: dict[str, Any]) -> None:
    played = (await api.get("/v1/me/player/recently-played", params={"limit": 1})).json()
    track = played["items"][0]["track"]
    validate(components, "OneTrack", (await api.get(f"/v1/tracks/{track['id']}")).json())
    artist_id = track["artists"][0]["id"]
    validate(components, "OneArtist", (await api.get(f"/v1/artists/{artist_id}")).json())


async def test_error_bodies(api: httpx.AsyncClient, components: dict[str, Any]) -> None:
    bad_request = await api.get("/v1/me/player/recently-played", params={"limit": 99})
    validate(components, "BadRequest", bad_request.json())
    await api.post("/_control/throttle", json={"seconds": 5, "retry_after": 3})
    validate(components, "TooManyRequests", (await api.get("/v1/me")).json())
    api.headers["Authorization"] = "Bearer forged"
    validate(components, "Unauthorized", (await api.get("/v1/me")).json())
