"""The tool registry's surfaces: access rules, /mcp/call, per-tool routes, the GPT document."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
from openapi_spec_validator import OpenAPIV31SpecValidator
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.access_tokens import create_token, revoke_token
from playlog.db.models import User
from playlog.testing.factories import add_user
from playlog.testing.history import add_listens, add_track
from playlog_api.tools.catalog import ORDER
from playlog_api.tools.registry import find, tools


async def _two_listeners(db_session: AsyncSession, listener: User) -> User:
    other = await add_user(db_session, "Other", authorized_days_ago=None, checkpoint=None)
    mine = await add_track(db_session, "Mine", "Me Artist")
    theirs = await add_track(db_session, "Theirs", "Them Artist")
    await add_listens(db_session, listener.id, mine, datetime(2026, 3, 1, 12, tzinfo=UTC))
    await add_listens(db_session, other.id, theirs, datetime(2026, 3, 1, 12, tzinfo=UTC))
    return other


WINDOW = {"start": "2026-03-01", "end": "2026-03-31"}


async def test_a_personal_token_reads_only_its_own_user(
    client: httpx.AsyncClient, db_session: AsyncSession, listener: User, personal: dict[str, str]
) -> None:
    other = await _two_listeners(db_session, listener)
    mine = await client.get("/me/top-tracks", headers=personal, params=WINDOW)
    assert mine.status_code == 200, mine.text
    assert [t["name"] for t in mine.json()["tracks"]] == ["Mine"]

    refused = await client.post(
        "/mcp/call",
        headers=personal,
        json={"tool": "history_top_tracks", "args": {**WINDOW, "user_id": str(other.id)}},
    )
    assert refused.status_code == 403
    assert refused.json()["success"] is False
    assert refused.json()["result"] is None
    assert "own user" in refused.json()["error"]["message"]

    routed = await client.get(f"/history/users/{other.id}/top-tracks", headers=personal)
    assert routed.status_code == 403


async def test_the_admin_must_name_the_user(
    client: httpx.AsyncClient, db_session: AsyncSession, listener: User, admin: dict[str, str]
) -> None:
    other = await _two_listeners(db_session, listener)
    unnamed = await client.post(
        "/mcp/call", headers=admin, json={"tool": "history_top_tracks", "args": WINDOW}
    )
    assert unnamed.status_code == 422
    assert "user_id is required" in unnamed.json()["error"]["message"]

    named = await client.post(
        "/mcp/call",
        headers=admin,
        json={"tool": "history.top_tracks", "args": {**WINDOW, "user_id": str(other.id)}},
    )
    assert named.status_code == 200, named.text
    assert named.json()["tool"] == "history_top_tracks"
    assert [t["name"] for t in named.json()["result"]["tracks"]] == ["Theirs"]

    routed = await client.get(f"/history/users/{other.id}/top-tracks", headers=admin, params=WINDOW)
    assert [t["name"] for t in routed.json()["tracks"]] == ["Theirs"]
    me = await client.get("/me/top-tracks", headers=admin)
    assert me.status_code == 422
    assert "/history/users/{user_id}/top-tracks" in me.json()["error"]["message"]


async def test_missing_invalid_and_revoked_tokens_get_401_with_a_challenge(
    client: httpx.AsyncClient, db_session: AsyncSession, listener: User
) -> None:
    issued = await create_token(db_session, listener.id, "soon revoked")
    await revoke_token(db_session, listener.id, issued.token.id)
    cases = {
        "missing": {},
        "forged": {"Authorization": "Bearer plg_" + "A" * 43},
        "revoked": {"Authorization": f"Bearer {issued.secret}"},
        "wrong admin": {"Authorization": "Bearer not-the-admin-token"},
        "empty bearer": {"Authorization": "Bearer"},
        "another scheme": {"Authorization": "Basic Zm9vOmJhcg=="},
    }
    for case, headers in cases.items():
        for method, path, body in (
            ("GET", "/me/taste-summary", None),
            ("POST", "/mcp/call", {"tool": "history_coverage", "args": {}}),
            ("GET", "/mcp/tools", None),
            ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        ):
            response = await client.request(method, path, headers=headers, json=body)
            assert response.status_code == 401, (case, path, response.text)
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer realm="), case
            assert issued.secret not in response.text
            # No error code when no token came (RFC 6750, 3.1); one when a bad one did.
            sent_a_token = case in ("forged", "revoked", "wrong admin")
            assert ('error="invalid_token"' in challenge) is sent_a_token, (case, challenge)


async def test_bad_arguments_get_a_clear_422_and_no_500(
    client: httpx.AsyncClient, personal: dict[str, str]
) -> None:
    cases = [
        ({"days": 0}, "days"),
        ({"days": 36501}, "days"),
        ({"days": "ninety"}, "days"),
        ({"days": 7, "start": "2026-01-01"}, "either days or start/end"),
        ({"start": "2026-02-01", "end": "2026-01-01"}, "is after end"),
        ({"start": "1999-12-31"}, "start must be between"),
        ({"start": "2026-02-30"}, "start"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"limit": 51}, "limit"),
        ({"bogus": 1}, "unknown argument bogus"),
        ({"user_id": "not-a-uuid"}, "user_id"),
        # JSON is read strictly: no booleans for numbers, no numbers for dates.
        ({"days": True}, "days"),
        ({"limit": True}, "limit"),
        ({"days": "90"}, "days"),
        ({"start": 1577836800, "end": "2020-01-31"}, "start"),
    ]
    for args, expected in cases:
        response = await client.post(
            "/mcp/call", headers=personal, json={"tool": "history_top_artists", "args": args}
        )
        assert response.status_code == 422, (args, response.text)
        assert expected in response.json()["error"]["message"], (args, response.text)
    rest = await client.get("/me/top-artists", headers=personal, params={"tz": "Nowhere/City"})
    assert rest.status_code == 422
    assert "unknown time zone" in rest.text
    unknown = await client.post("/mcp/call", headers=personal, json={"tool": "drop_tables"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_tool"
    malformed = await client.post("/mcp/call", headers=personal, content=b"{not json")
    assert malformed.status_code == 422
    wrong_shape = await client.post("/mcp/call", headers=personal, json={"tool": 3, "args": []})
    assert wrong_shape.status_code == 422
    for args, expected in [
        ("{days: 7}", "args is a string that is not JSON"),
        ('"{\\"days\\": 7}"', "args is a string that does not hold a JSON object"),
        ("[7]", "args is a string that does not hold a JSON object"),
        ('{"days": "7"}', "days"),
    ]:
        response = await client.post(
            "/mcp/call", headers=personal, json={"tool": "history_top_artists", "args": args}
        )
        assert response.status_code == 422, (args, response.text)
        assert expected in response.text, (args, response.text)


async def test_arguments_sent_as_a_json_string_or_null_are_taken(
    client: httpx.AsyncClient, personal: dict[str, str]
) -> None:
    """Some clients JSON-encode the arguments; they are read as the object they hold (and
    as strictly), and null or an empty string is no arguments."""
    answers = []
    encoded = ['{"days": 30, "limit": 3}', ' {"limit": 3, "days": 30} ']
    for args in [{"days": 30, "limit": 3}, *encoded]:
        response = await client.post(
            "/mcp/call", headers=personal, json={"tool": "history_top_artists", "args": args}
        )
        assert response.status_code == 200, (args, response.text)
        answers.append(response.json()["result"])
    assert answers[0]["window"]["days"] == 30
    assert answers[1:] == [answers[0], answers[0]]
    defaults = [
        await client.post("/mcp/call", headers=personal, json={"tool": "history_coverage", **body})
        for body in ({}, {"args": None}, {"args": ""}, {"args": "{}"})
    ]
    assert [response.status_code for response in defaults] == [200] * 4
    assert len({json.dumps(r.json()["result"], sort_keys=True) for r in defaults}) == 1


async def test_the_catalog_lists_every_tool_as_mcp_does(
    client: httpx.AsyncClient, personal: dict[str, str]
) -> None:
    catalog = (await client.get("/mcp/tools", headers=personal)).json()["tools"]
    listed = await client.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream", **personal},
    )
    assert listed.status_code == 200, listed.text
    # The two surfaces, each as its clients receive it: same tools, order and schemas.
    assert [
        (t["name"], t["description"], t["read_only"], t["input_schema"], t["output_schema"])
        for t in catalog
    ] == [
        (
            t["name"],
            t["description"],
            t["annotations"]["readOnlyHint"],
            t["inputSchema"],
            t["outputSchema"],
        )
        for t in listed.json()["result"]["tools"]
    ]
    assert [t["name"] for t in catalog] == list(ORDER)
    for entry in catalog:
        assert entry["alias"] == entry["name"].replace("_", ".", 1)
        assert entry["me_path"].startswith("/me/")
        assert entry["input_schema"]["type"] == "object"
        # Both accept the admin's user_id beside the tool's own arguments.
        assert entry["input_schema"]["properties"]["user_id"]["format"] == "uuid"
        assert entry["output_schema"]["type"] == "object"
        assert entry["description"]


async def test_the_gpt_action_document_holds_only_tool_operations(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi-gpt.json")).json()
    assert spec["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(spec).validate()
    operations = [op for path in spec["paths"].values() for op in path.values()]
    ids = [op["operationId"] for op in operations]
    assert sorted(ids) == sorted(t.name for t in tools())
    assert len(set(ids)) == len(ids)
    assert all(path.startswith("/me/") for path in spec["paths"])
    for op in operations:
        assert len(op["description"]) <= 300
        assert len(op["summary"]) <= 300
    assert spec["security"] == [{"bearer": []}]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["servers"] == [{"url": "http://testserver"}]
    assert len(str(spec)) < 100_000
    # Every error answer is described, with the body it has.
    for op in operations:
        errors = {status: answer for status, answer in op["responses"].items() if status >= "4"}
        assert {"401", "422", "503"} <= set(errors), op["operationId"]
        for answer in errors.values():
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
    live = spec["paths"]["/me/spotify-top"]["get"]["responses"]
    assert {"409", "429", "502", "503"} <= set(live)
    assert "Retry-After" in live["429"]["description"]


def test_the_registry_holds_exactly_the_catalog() -> None:
    names = [entry.name for entry in tools()]
    assert names == list(ORDER)
    assert len(names) == 19
    for entry in tools():
        assert len(entry.summary) <= 300
        assert entry.input.model_config.get("extra") == "forbid"


async def test_the_full_openapi_document_is_valid_with_unique_operation_ids(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    OpenAPIV31SpecValidator(spec).validate()
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    call = spec["paths"]["/mcp/call"]["post"]["responses"]
    assert call["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/CallResponse")
    # What any tool may answer, the Spotify tools' statuses among them, each cause once.
    assert {"401", "403", "404", "409", "422", "429", "502", "503"} <= set(call)
    assert call["502"]["description"] == "Spotify refused the call."
    admin = spec["paths"]["/history/users/{user_id}/top-artists"]["get"]["responses"]
    assert {"401", "403", "404", "422", "503"} <= set(admin)


def test_tools_are_found_by_name_or_exact_alias_only() -> None:
    assert find("history.taste_summary") is find("history_taste_summary") is not None
    assert find("spotify.get_top") is find("spotify_get_top") is not None
    for wrong in ("history_taste.summary", "history.taste.summary", "History_taste_summary", ""):
        assert find(wrong) is None, wrong


async def test_bodies_over_the_cap_are_refused_before_anyone_reads_them(
    client: httpx.AsyncClient, personal: dict[str, str]
) -> None:
    big = b'{"tool": "history_coverage", "args": {"q": "' + b"a" * (2 * 1024 * 1024) + b'"}}'

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    for path, headers in (
        ("/mcp/call", {}),  # refused before the missing token is even looked at
        ("/mcp/call", personal),
        ("/mcp", personal),
        ("/admin/users/00000000-0000-0000-0000-000000000000/tokens", {}),
    ):
        for body in (big, chunks()):
            response = await client.post(
                path, headers={**headers, "Content-Type": "application/json"}, content=body
            )
            assert response.status_code == 413, (path, response.text)
            assert response.json()["error"] == {
                "code": "payload_too_large",
                "message": "the request body is larger than 1024 KB",
            }
            assert response.headers["x-request-id"]
    # Just under the cap is read as usual (and refused for what it says).
    fits = b'{"tool": "history_coverage", "args": {"q": "' + b"a" * (1000 * 1024) + b'"}}'
    response = await client.post(
        "/mcp/call", headers={**personal, "Content-Type": "application/json"}, content=fits
    )
    assert response.status_code == 422
    assert "unknown argument q" in response.json()["error"]["message"]


async def test_mcp_answers_only_post(client: httpx.AsyncClient, personal: dict[str, str]) -> None:
    # A stateless server offers no stream on GET and no session to end on DELETE.
    for method in ("GET", "DELETE"):
        # What this guards against is a GET stream that never ends: fail, do not hang.
        async with asyncio.timeout(60):
            response = await client.request(
                method, "/mcp", headers={**personal, "Accept": "text/event-stream"}
            )
        assert response.status_code == 405, (method, response.text)
        assert response.headers["allow"] == "POST"
