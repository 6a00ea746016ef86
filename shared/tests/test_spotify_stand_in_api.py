"""The stand-in's Web API behaves like Spotify's, and our models parse every answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
import pytest_asyncio

from playlog.spotify.models import (
    Artist,
    CurrentUser,
    PagedArtists,
    PagedTracks,
    RecentlyPlayed,
    SearchResults,
    Track,
)
from playlog.spotify.stand_in import StandInConfig
from playlog.spotify.stand_in.app import create_stand_in_app
from playlog.testing.spotify import sign_in, signed_in_stand_in

CONFIG = StandInConfig(enable_control=True, history_hours=24)


@pytest_asyncio.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    """A client of the stand-in that is already signed in as the demo listener."""
    async with signed_in_stand_in(CONFIG) as client:
        yield client


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def test_me_has_no_development_mode_fields(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/me")).json()
    user = CurrentUser.model_validate(body)
    assert user.id == "demo-listener"
    assert not {"email", "country", "product"} & body.keys()


async def test_recently_played_is_newest_first_with_string_cursors(
    api: httpx.AsyncClient,
) -> None:
    body = (await api.get("/v1/me/player/recently-played", params={"limit": 50})).json()
    page = RecentlyPlayed.model_validate(body)
    assert len(page.items) == 50
    times = [item.played_at for item in page.items]
    assert times == sorted(times, reverse=True)
    assert all(t.tzinfo is not None for t in times)
    assert isinstance(body["cursors"]["after"], str)
    assert page.cursors is not None
    assert page.cursors.after == str(ms(times[0]))
    assert page.cursors.before == str(ms(times[-1]))


async def test_only_the_last_fifty_plays_are_reachable(api: httpx.AsyncClient) -> None:
    newest = RecentlyPlayed.model_validate(
        (await api.get("/v1/me/player/recently-played", params={"limit": 50})).json()
    )
    assert newest.next is None
    oldest = newest.items[-1].played_at
    older = (
        await api.get("/v1/me/player/recently-played", params={"before": ms(oldest), "limit": 50})
    ).json()
    assert older == {
        "items": [],
        "next": None,
        "cursors": None,
        "limit": 50,
        "href": older["href"],
    }


async def test_after_is_exclusive_and_pages_forward(api: httpx.AsyncClient) -> None:
    window = RecentlyPlayed.model_validate(
        (await api.get("/v1/me/player/recently-played", params={"limit": 50})).json()
    )
    cursor = window.items[30].played_at
    expected = [item.played_at for item in window.items[:30]]

    collected: list[datetime] = []
    url: str | None = f"/v1/me/player/recently-played?after={ms(cursor)}&limit=7"
    pages = 0
    while url:
        page = RecentlyPlayed.model_validate((await api.get(url)).json())
        collected.extend(item.played_at for item in page.items)
        url = page.next
        pages += 1
    assert sorted(collected, reverse=True) == expected
    assert pages == 5  # 30 plays in pages of 7


async def test_before_pages_backwards_until_the_window_ends(api: httpx.AsyncClient) -> None:
    collected: list[datetime] = []
    url: str | None = "/v1/me/player/recently-played?limit=20"
    while url:
        page = RecentlyPlayed.model_validate((await api.get(url)).json())
        collected.extend(item.played_at for item in page.items)
        url = page.next
    assert len(collected) == 50
    assert collected == sorted(collected, reverse=True)


async def test_new_plays_appear_as_simulated_time_passes(api: httpx.AsyncClient) -> None:
    first = RecentlyPlayed.model_validate((await api.get("/v1/me/player/recently-played")).json())
    # Twelve hours: longer than any pause of the listener, and than the access token's
    # lifetime, so the client signs in again as a real one would.
    await api.post("/_control/clock", json={"seconds": 12 * 3600})
    api.headers.pop("Authorization")
    tokens = await sign_in(api, CONFIG)
    api.headers["Authorization"] = f"Bearer {tokens.access_token}"
    after = ms(first.items[0].played_at)
    newer = RecentlyPlayed.model_validate(
        (await api.get("/v1/me/player/recently-played", params={"after": after})).json()
    )
    assert newer.items
    assert all(item.played_at > first.items[0].played_at for item in newer.items)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"after": 1, "before": 2}, "Only one of after or before may be specified"),
        ({"limit": 51}, "Invalid limit"),
        ({"limit": 0}, "Invalid limit"),
        ({"limit": "ten"}, "Invalid limit"),
        ({"after": "yesterday"}, "Invalid after"),
        ({"before": -5}, "Invalid before"),
    ],
)
async def test_recently_played_rejects_bad_parameters(
    api: httpx.AsyncClient, params: dict[str, int | str], message: str
) -> None:
    response = await api.get("/v1/me/player/recently-played", params=params)
    assert response.status_code == 400
    assert response.json() == {"error": {"status": 400, "message": message}}


async def test_expired_access_token_is_401(api: httpx.AsyncClient) -> None:
    await api.post("/_control/expire-access-tokens")
    response = await api.get("/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "The access token expired"


@pytest.mark.parametrize(
    ("header", "message"),
    [(None, "No token provided"), ("Bearer forged", "Invalid access token")],
)
async def test_missing_or_forged_token_is_401(
    api: httpx.AsyncClient, header: str | None, message: str
) -> None:
    headers = {"Authorization": header} if header else {}
    api.headers.pop("Authorization")
    response = await api.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == message


async def test_missing_scope_is_403() -> None:
    app = create_stand_in_app(StandInConfig())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://stand-in"
    ) as client:
        tokens = await sign_in(client, CONFIG, scope="user-top-read")
        response = await client.get(
            "/v1/me/player/recently-played",
            headers={"Authorization": f"Bearer {tokens.access_token}"},
        )
    assert response.status_code == 403


async def test_rate_limit_storm_sends_retry_after(api: httpx.AsyncClient) -> None:
    await api.post("/_control/throttle", json={"seconds": 60, "retry_after": 17})
    response = await api.get("/v1/me")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "17"
    assert response.json() == {"error": {"status": 429, "message": "API rate limit exceeded"}}


async def test_rolling_rate_limit() -> None:
    app = create_stand_in_app(StandInConfig(rate_limit_per_30s=3))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://stand-in"
    ) as client:
        tokens = await sign_in(client, CONFIG)
        headers = {"Authorization": f"Bearer {tokens.access_token}"}
        statuses = [(await client.get("/v1/me", headers=headers)).status_code for _ in range(5)]
        limited = await client.get("/v1/me", headers=headers)
    assert statuses == [200, 200, 200, 429, 429]
    assert 1 <= int(limited.headers["retry-after"]) <= 31


async def test_injected_server_errors_then_recovery(api: httpx.AsyncClient) -> None:
    await api.post("/_control/errors", json={"count": 2, "status": 503})
    statuses = [(await api.get("/v1/me")).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


async def test_top_tracks_and_artists(api: httpx.AsyncClient) -> None:
    tracks = PagedTracks.model_validate(
        (await api.get("/v1/me/top/tracks", params={"time_range": "short_term"})).json()
    )
    artists = PagedArtists.model_validate(
        (await api.get("/v1/me/top/artists", params={"limit": 5, "offset": 5})).json()
    )
    assert 0 < len(tracks.items) <= 20
    assert tracks.total >= len(tracks.items)
    assert artists.offset == 5
    assert len(artists.items) <= 5
    bad = await api.get("/v1/me/top/tracks", params={"time_range": "forever"})
    assert bad.status_code == 400


async def test_search_finds_non_ascii_names_and_caps_the_limit(api: httpx.AsyncClient) -> None:
    found = SearchResults.model_validate(
        (await api.get("/v1/search", params={"q": "sigur", "type": "artist,track"})).json()
    )
    assert found.artists is not None
    assert found.artists.items[0].name == "Sigur Rós"
    assert found.tracks is not None
    over = await api.get("/v1/search", params={"q": "a", "type": "track", "limit": 11})
    assert over.status_code == 400
    assert over.json()["error"]["message"] == "Invalid limit"
    bad_type = await api.get("/v1/search", params={"q": "a", "type": "song"})
    assert bad_type.status_code == 400
    empty = await api.get("/v1/search", params={"q": " ", "type": "track"})
    assert empty.status_code == 400


async def test_single_track_and_artist(api: httpx.AsyncClient) -> None:
    listed = RecentlyPlayed.model_validate(
        (await api.get("/v1/me/player/recently-played", params={"limit": 1})).json()
    )
    track_id = listed.items[0].track.id
    track = Track.model_validate((await api.get(f"/v1/tracks/{track_id}")).json())
    assert track.id == track_id
    artist_id = track.artists[0].id
    artist = Artist.model_validate((await api.get(f"/v1/artists/{artist_id}")).json())
    assert artist.id == artist_id
    assert (await api.get("/v1/tracks/not-an-id")).status_code == 400
    assert (await api.get("/v1/artists/" + "A" * 22)).status_code == 404


async def test_served_plays_are_recorded_for_comparison(api: httpx.AsyncClient) -> None:
    page = RecentlyPlayed.model_validate(
        (await api.get("/v1/me/player/recently-played", params={"limit": 5})).json()
    )
    record = (await api.get("/_control/served/demo-listener")).json()
    served = {(item["track_id"], item["played_at"]) for item in record["served"]}
    assert served == {(i.track.id, i.played_at.isoformat()) for i in page.items}
    assert len(record["listed"]) >= 50
