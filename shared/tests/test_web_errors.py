"""One envelope for every error; unexpected failures reveal nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from playlog.errors import NotFound, Unauthorized
from playlog.web.errors import install_error_handlers

SECRET = "refresh-token-AQD-very-secret"


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.delete("/items/{item_id}", status_code=204)
    async def remove(item_id: int) -> None:
        return None

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise NotFound("item 0 does not exist", details={"item_id": 0})
        if item_id == 1:
            raise Unauthorized("no", headers={"WWW-Authenticate": 'Bearer realm="x"'})
        if item_id == 2:
            raise RuntimeError(f"database password is {SECRET}")
        return {"item_id": item_id}

    return app


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_app_error_renders_its_status_and_details(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/0")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "item 0 does not exist",
            "details": {"item_id": 0},
        }
    }


async def test_app_error_headers_are_sent(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/1")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="x"'


async def test_validation_error_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/not-a-number")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith("item_id:")
    assert error["details"][0]["location"] == ["path", "item_id"]


async def test_unknown_route_uses_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_unexpected_error_is_a_bare_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/items/2")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }
    assert SECRET not in response.text
    assert "unhandled error on GET /items/2" in caplog.text


async def test_a_405_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    # The router named only the first route's (DELETE) of a path with two.
    response = await client.put("/items/5")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, DELETE"
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_the_openapi_document_describes_the_envelope_errors_are_sent_in(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    # FastAPI's own 422 model names a "detail" list that no answer holds.
    assert "HTTPValidationError" not in schemas
    assert schemas["ErrorResponse"]["properties"]["error"]["$ref"].endswith("/ErrorInfo")
    answer = spec["paths"]["/items/{item_id}"]["get"]["responses"]["422"]
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    sent = (await client.get("/items/x")).json()
    assert set(sent) == set(schemas["ErrorResponse"]["required"]) == {"error"}
    assert set(sent["error"]) <= set(schemas["ErrorInfo"]["properties"])
