"""The stand-in's Web API (/v1): me, recently-played, top, search, tracks, artists."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from playlog.spotify.stand_in.catalog import (
    API_BASE,
    OPEN_BASE,
    album_json,
    artist_json,
    track_json,
)
from playlog.spotify.stand_in.listener import Play
from playlog.spotify.stand_in.state import StandInState

router = APIRouter(prefix="/v1")
T = TypeVar("T")
WINDOW = 50
_TIME_RANGES = {"short_term": timedelta(weeks=4), "medium_term": timedelta(days=182)}
_SEARCH_TYPES = {"album", "artist", "playlist", "track", "show", "episode", "audiobook"}
_BASE62_ID = re.compile(r"[0-9A-Za-z]{22}")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def render_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error(exc.status, exc.message)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status, headers)


def _state(request: Request) -> StandInState:
    state: StandInState = request.app.state.stand_in
    return state


def _account(request: Request, scope: str | None = None) -> str:
    state = _state(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "No token provided")
    grant = state.access_tokens.get(token)
    if grant is None:
        raise ApiError(401, "Invalid access token")
    if grant.expires_at <= state.clock.now():
        raise ApiError(401, "The access token expired")
    if scope is not None and scope not in grant.scope.split():
        raise ApiError(403, "Insufficient client scope")
    return grant.account


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"-?\d+", raw) or not low <= int(raw) <= high:
        raise ApiError(400, f"Invalid {name}")
    return int(raw)


def _ms(play: Play) -> int:
    return int(play.played_at.timestamp() * 1000)


def _url(request: Request, **params: object) -> str:
    return f"{str(request.base_url).rstrip('/')}{request.url.path}?{urlencode(params)}"


@router.get("/me")
async def me(request: Request) -> dict[str, Any]:
    account = _state(request).accounts[_account(request)]
    # Development-mode apps no longer receive email, country or product.
    return {
        "display_name": account.display_name,
        "external_urls": {"spotify": f"{OPEN_BASE}/user/{account.user_id}"},
        "href": f"{API_BASE}/users/{account.user_id}",
        "id": account.user_id,
        "images": [],
        "type": "user",
        "uri": f"spotify:user:{account.user_id}",
    }


@router.get("/me/player/recently-played")
async def recently_played(request: Request) -> dict[str, Any]:
    state = _state(request)
    account = _account(request, "user-read-recently-played")
    limit = _int(request, "limit", 20, 1, 50)
    after = request.query_params.get("after")
    before = request.query_params.get("before")
    if after is not None and before is not None:
        raise ApiError(400, "Only one of after or before may be specified")
    listener = state.listeners[account]
    listener.advance_to(state.clock.now())
    # Only the newest ~50 plays are reachable at all; older ones are gone from the API.
    window = listener.listed_plays()[-WINDOW:]
    if after is not None:
        cursor = _int(request, "after", 0, 0, 2**53)
        newer = [play for play in window if _ms(play) > cursor]
        page = newer[:limit]
        next_url = _url(request, after=_ms(page[-1]), limit=limit) if len(newer) > limit else None
    else:
        cursor = _int(request, "before", 2**53, 0, 2**53)
        older = [play for play in window if _ms(play) < cursor]
        page = older[-limit:]
        next_url = _url(request, before=_ms(page[0]), limit=limit) if len(older) > limit else None
    served = state.served.setdefault(account, {})
    for play in page:
        served[(play.track.id, play.played_at)] = None
    return {
        "items": [
            {
                "track": track_json(play.track),
                "played_at": play.played_at.isoformat(timespec="milliseconds").replace(
                    "+00:00", "Z"
                ),
                "context": _context_json(play.context_uri),
            }
            for play in reversed(page)
        ],
        "next": next_url,
        "cursors": {"after": str(_ms(page[-1])), "before": str(_ms(page[0]))} if page else None,
        "limit": limit,
        "href": str(request.url),
    }


def _context_json(uri: str) -> dict[str, Any]:
    _, kind, item_id = uri.split(":")
    return {
        "type": kind,
        "href": f"{API_BASE}/{kind}s/{item_id}",
        "external_urls": {"spotify": f"{OPEN_BASE}/{kind}/{item_id}"},
        "uri": uri,
    }


@router.get("/me/top/{kind}")
async def top(request: Request, kind: str) -> dict[str, Any]:
    state = _state(request)
    account = _account(request, "user-top-read")
    if kind not in {"artists", "tracks"}:
        raise ApiError(404, "Service not found")
    time_range = request.query_params.get("time_range", "medium_term")
    if time_range not in {*_TIME_RANGES, "long_term"}:
        raise ApiError(400, "Invalid time range")
    limit = _int(request, "limit", 20, 1, 50)
    offset = _int(request, "offset", 0, 0, 10_000)
    listener = state.listeners[account]
    now = state.clock.now()
    listener.advance_to(now)
    since = now - _TIME_RANGES[time_range] if time_range in _TIME_RANGES else None
    plays = [p for p in listener.listed_plays() if since is None or p.played_at >= since]
    catalog = state.catalog
    if kind == "tracks":
        tracks = Counter(play.track.id for play in plays)
        ranked = [catalog.tracks_by_id[i] for i, _ in tracks.most_common()]
        return _page(request, ranked, track_json, limit, offset)
    artists = Counter(artist.id for play in plays for artist in play.track.artists)
    return _page(
        request, [catalog.artists_by_id[i] for i, _ in artists.most_common()], artist_json,
        limit, offset,
    )  # fmt: skip


def _page(
    request: Request,
    items: Sequence[T],
    render: Callable[[T], dict[str, Any]],
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """A paging object; only the items on the page are rendered."""
    params = dict(request.query_params)

    def link(new_offset: int) -> str:
        return _url(request, **{**params, "offset": new_offset, "limit": limit})

    return {
        "href": str(request.url),
        "items": [render(item) for item in items[offset : offset + limit]],
        "limit": limit,
        "next": link(offset + limit) if offset + limit < len(items) else None,
        "offset": offset,
        "previous": link(max(0, offset - limit)) if offset > 0 else None,
        "total": len(items),
    }


@router.get("/search")
async def search(request: Request) -> dict[str, Any]:
    state = _state(request)
    _account(request)
    query = request.query_params.get("q", "").strip().lower()
    if not query:
        raise ApiError(400, "No search query")
    types = [t for t in request.query_params.get("type", "").split(",") if t]
    if not types:
        raise ApiError(400, "Missing parameter type")
    if any(t not in _SEARCH_TYPES for t in types):
        raise ApiError(400, "Bad search type field")
    # Development-mode apps may ask for at most 10 results per type.
    limit = _int(request, "limit", 5, 1, 10)
    offset = _int(request, "offset", 0, 0, 1000)
    catalog = state.catalog
    results: dict[str, Any] = {}
    for kind in types:
        if kind == "track":
            tracks = [
                t
                for t in catalog.tracks
                if query in t.name.lower() or any(query in a.name.lower() for a in t.artists)
            ]
            results["tracks"] = _page(request, tracks, track_json, limit, offset)
        elif kind == "artist":
            artists = [a for a in catalog.artists if query in a.name.lower()]
            results["artists"] = _page(request, artists, artist_json, limit, offset)
        elif kind == "album":
            albums = [a for a in catalog.albums if query in a.name.lower()]
            results["albums"] = _page(request, albums, album_json, limit, offset)
        else:
            # Playlists, shows, episodes and audiobooks: the catalogue has none.
            results[f"{kind}s"] = _page(request, [], track_json, limit, offset)
    return results


@router.get("/tracks/{item_id}")
async def track(request: Request, item_id: str) -> dict[str, Any]:
    _account(request)
    return track_json(_lookup(_state(request).catalog.tracks_by_id, item_id))


@router.get("/artists/{item_id}")
async def artist(request: Request, item_id: str) -> dict[str, Any]:
    _account(request)
    return artist_json(_lookup(_state(request).catalog.artists_by_id, item_id))


def _lookup(index: Mapping[str, T], item_id: str) -> T:
    if not _BASE62_ID.fullmatch(item_id):
        raise ApiError(400, "Invalid base62 id")
    item = index.get(item_id)
    if item is None:
        raise ApiError(404, "Resource not found")
    return item
