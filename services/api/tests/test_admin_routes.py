"""Every admin route needs the admin; every per-user route answers 404 for unknown ids."""

from __future__ import annotations

import uuid

import httpx
import pytest

from playlog_api.app import create_app
from playlog_api.settings import ApiSettings

UNKNOWN = uuid.uuid4()
PER_USER = [
    ("GET", "/admin/users/{id}"),
    ("DELETE", "/admin/users/{id}"),
    ("POST", "/admin/users/{id}/pause"),
    ("POST", "/admin/users/{id}/resume"),
    ("POST", "/admin/users/{id}/sync-now"),
    ("POST", "/admin/users/{id}/initial-sync"),
    ("POST", "/admin/users/{id}/imports/zip"),
]
LISTS = [
    ("GET", "/admin/users"),
    ("GET", "/admin/sync-status"),
    ("GET", "/admin/job-runs"),
    ("GET", "/admin/import-jobs"),
    ("GET", "/admin/logs"),
    ("POST", "/admin/maintenance/purge-logs"),
]

# One bad value per request; the error message names the parameter.
BAD_QUERIES = [
    ("GET", "/admin/users", {"limit": "0"}),
    ("GET", "/admin/users", {"limit": "201"}),
    ("GET", "/admin/users", {"limit": "many"}),
    ("GET", "/admin/users", {"cursor": "%%%"}),
    ("GET", "/admin/job-runs", {"job_type": "download"}),
    ("GET", "/admin/job-runs", {"status": "failed"}),
    ("GET", "/admin/job-runs", {"user_id": "not-a-uuid"}),
    ("GET", "/admin/job-runs", {"limit": "-1"}),
    ("GET", "/admin/job-runs", {"cursor": "bm90LWpzb24"}),
    ("GET", "/admin/import-jobs", {"status": "failed"}),
    ("GET", "/admin/import-jobs", {"user_id": "not-a-uuid"}),
    ("GET", "/admin/import-jobs", {"limit": "0"}),
    ("GET", "/admin/logs", {"level": "LOUD"}),
    ("GET", "/admin/logs", {"level": "warning"}),
    ("GET", "/admin/logs", {"user_id": "42"}),
    ("GET", "/admin/logs", {"q": ""}),
    ("GET", "/admin/logs", {"q": "x" * 201}),
    ("GET", "/admin/logs", {"service": "s" * 65}),
    ("GET", "/admin/logs", {"since": "yesterday"}),
    ("GET", "/admin/logs", {"limit": "500"}),
    ("GET", "/admin/logs", {"cursor": "W10"}),
    ("POST", "/admin/maintenance/purge-logs", {"older_than_days": "0"}),
    ("POST", "/admin/maintenance/purge-logs", {"older_than_days": "3651"}),
    ("POST", "/admin/maintenance/purge-logs", {"older_than_days": "soon"}),
]


def admin_routes(settings: ApiSettings) -> list[tuple[str, str]]:
    """Every operation the app serves under /admin, read from the app's own schema."""
    paths = create_app(settings).openapi()["paths"]
    return sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/admin")
        for method in operations
    )


async def test_every_admin_route_needs_the_admin(
    client: httpx.AsyncClient, api_settings: ApiSettings
) -> None:
    routes = admin_routes(api_settings)
    # The hand-written lists below are a subset: new routes are covered here too.
    assert {(m, p.replace("{id}", "{user_id}")) for m, p in PER_USER + LISTS} <= set(routes)
    for method, path in routes:
        url = path.format(user_id=UNKNOWN, job_id=UNKNOWN, token_id=UNKNOWN)
        response = await client.request(method, url)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "unauthorized"
        wrong = await client.request(method, url, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401, (method, path)


@pytest.mark.parametrize(("method", "path"), PER_USER)
async def test_unknown_user_is_404(
    client: httpx.AsyncClient, admin: dict[str, str], method: str, path: str
) -> None:
    response = await client.request(method, path.format(id=UNKNOWN), headers=admin)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert str(UNKNOWN) in error["message"]


@pytest.mark.parametrize(("method", "path"), PER_USER)
async def test_malformed_user_id_is_422(
    client: httpx.AsyncClient, admin: dict[str, str], method: str, path: str
) -> None:
    response = await client.request(method, path.format(id="not-a-uuid"), headers=admin)
    assert response.status_code == 422
    assert "user_id" in response.json()["error"]["message"]


async def test_openapi_describes_the_admin_api(
    client: httpx.AsyncClient, api_settings: ApiSettings
) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for method, path in admin_routes(api_settings):
        operation = paths[path][method.lower()]
        assert operation["description"], f"{method} {path} has no description"
    assert "202" in paths["/admin/users/{user_id}/sync-now"]["post"]["responses"]
    assert "204" in paths["/admin/users/{user_id}"]["delete"]["responses"]
    # Each route that loads one user or import job says it may answer 404.
    for method, path in admin_routes(api_settings):
        responses = paths[path][method.lower()]["responses"]
        assert {"401", "403"} <= set(responses), f"{method} {path}"
        if "{user_id}" in path or "{job_id}" in path:
            assert "404" in responses, f"{method} {path}"


@pytest.mark.parametrize(("method", "path", "params"), BAD_QUERIES)
async def test_bad_filters_are_422(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    method: str,
    path: str,
    params: dict[str, str],
) -> None:
    response = await client.request(method, path, headers=admin, params=params)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert next(iter(params)) in error["message"]
