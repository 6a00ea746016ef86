"""The tools as a real MCP server: Streamable HTTP, stateless, JSON responses, at ``/mcp``.

The endpoint is a plain route (not a mount), so ``/mcp`` answers itself instead of
redirecting to ``/mcp/``. Every request is authenticated before the MCP machinery sees
it: without valid credentials the client gets a 401 with a ``WWW-Authenticate``
challenge. Host and Origin headers are checked against API_PUBLIC_URL and loopback
addresses (DNS-rebinding protection).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

import mcp_types as types
from fastapi import FastAPI
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import HTTPConnection
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from playlog import __version__
from playlog.errors import AppError
from playlog_api.tools.access import Caller, authenticate
from playlog_api.tools.invoke import invoke, parse_args
from playlog_api.tools.registry import Tool, find, tools

log = logging.getLogger(__name__)

CALLER_KEY = "playlog.caller"
INSTRUCTIONS = (
    "Playlog answers questions about one person's Spotify listening history: years of "
    "imported exports plus everything polled since. Windows are whole local days: pass "
    "days (e.g. 90; 36500 for all time) or start/end dates. A play lasted 30 seconds or "
    "more (or its length is unknown); shorter rows are skips, reported apart."
)


def mcp_tool(entry: Tool[Any, Any]) -> types.Tool:
    return types.Tool(
        name=entry.name,
        title=entry.name.replace("_", " ").capitalize(),
        description=entry.description,
        input_schema=entry.input_schema,
        output_schema=entry.output_schema,
        annotations=types.ToolAnnotations(
            read_only_hint=entry.read_only, open_world_hint=entry.name.startswith("spotify_")
        ),
    )


def _failure(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def build_server(app: FastAPI) -> Server[Any]:
    # The registry is complete once the app is built: list it once, not per request.
    listed = types.ListToolsResult(tools=[mcp_tool(entry) for entry in tools()])

    async def list_tools(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listed

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        caller: Caller = ctx.request.scope[CALLER_KEY]
        entry = find(params.name)
        if entry is None:
            return _failure(f"unknown tool {params.name[:100]!r}")
        async with app.state.sessionmaker() as session:
            try:
                args, user_id = parse_args(entry, params.arguments or {})
                result = await invoke(
                    entry, args, caller=caller, user_id=user_id, session=session, state=app.state
                )
                await session.commit()
            except AppError as exc:
                await session.rollback()
                return _failure(exc.message)
            except Exception:
                await session.rollback()
                log.exception("tool %s failed", entry.name)
                return _failure(f"{entry.name} failed with an internal error; it was logged")
        structured = result.model_dump(mode="json")
        return types.CallToolResult(
            content=[types.TextContent(text=json.dumps(structured, separators=(",", ":")))],
            structured_content=structured,
        )

    return Server(
        "playlog",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


DEFAULT_PORTS = {"http": 80, "https": 443}


def security(public_url: str) -> TransportSecuritySettings:
    parts = urlsplit(public_url)
    assert parts.hostname is not None
    # Clients leave a default port out of Host and Origin: accept both spellings.
    public_hosts = {parts.netloc}
    if parts.port in (None, DEFAULT_PORTS.get(parts.scheme)):
        public_hosts |= {parts.hostname, f"{parts.hostname}:{DEFAULT_PORTS[parts.scheme]}"}
    loopback = ("127.0.0.1", "localhost", "[::1]")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*sorted(public_hosts), *loopback, *(f"{host}:*" for host in loopback)],
        allowed_origins=[
            *(f"{parts.scheme}://{host}" for host in sorted(public_hosts)),
            *(f"http://{host}" for host in loopback),
            *(f"http://{host}:*" for host in loopback),
        ],
    )


class McpEndpoint:
    """ASGI app of ``/mcp``: authenticate, then hand over to the session manager."""

    def __init__(self, app: FastAPI, manager: StreamableHTTPSessionManager) -> None:
        self.app = app
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A refusal propagates to the app's AppError handler: the 401 and its challenge.
        async with self.app.state.sessionmaker() as session:
            caller = await authenticate(HTTPConnection(scope), session)
            await session.commit()
        scope[CALLER_KEY] = caller
        await self.manager.handle_request(scope, receive, send)


def install(app: FastAPI, public_url: str) -> StreamableHTTPSessionManager:
    """Add ``/mcp`` to ``app``; the caller runs the returned manager in the lifespan."""
    manager = StreamableHTTPSessionManager(
        build_server(app),
        json_response=True,
        stateless=True,
        security_settings=security(public_url),
    )
    # POST only: a stateless server has no stream to offer on GET (the SDK would hold one
    # open and silent until the client gave up) and no session to end on DELETE; the
    # protocol's answer to both is 405, which clients take as "not offered".
    app.router.routes.append(Route("/mcp", endpoint=McpEndpoint(app, manager), methods=["POST"]))
    return manager
