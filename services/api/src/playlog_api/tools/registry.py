"""The one registry of AI tools. MCP, ``/mcp/tools``, ``/mcp/call``, the per-tool REST
routes and ``/openapi-gpt.json`` are all generated from it.

A tool is an async handler ``(ToolContext, Input) -> Output`` with Pydantic models on
both sides. Its docstring is the description an LLM reads; the first sentence doubles as
the OpenAPI summary, so it must say what the tool answers in ≤ 300 characters.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool

from playlog.crypto import TokenCipher
from playlog.db.models import User
from playlog.spotify.client import SpotifyClient


class ToolArgs(BaseModel):
    """Base of every tool's input: unknown arguments are refused, never ignored."""

    model_config = ConfigDict(extra="forbid")


In = TypeVar("In", bound=ToolArgs)
Out = TypeVar("Out", bound=BaseModel)
A = TypeVar("A")
B = TypeVar("B")

# Every statement of a tool call, on each of its sessions, gives up after this long.
STATEMENT_TIMEOUT_MS = 15_000
# The driver prepares every statement, and after five runs PostgreSQL may switch a
# prepared statement to a generic plan, chosen without the bound values. A generic plan
# cannot fit both a one-day and a ten-year window of the same query (the 90-day top
# artists of a user with a million plays: 51 ms planned for the values, 75 ms generic),
# so the tools' statements are planned for their values (0.9-1.3 ms for that one). JIT
# costs more than it saves on statements of this size (the all-time year in review:
# 430 ms with it, 350 ms without). Only the tools' transactions are set so: elsewhere
# generic plans are what the server's own foreign-key checks need (forced custom plans
# made them 2.5 times slower in an import).
_TOOL_SETTINGS = text(
    "SELECT set_config('statement_timeout', :timeout, true),"
    " set_config('plan_cache_mode', 'force_custom_plan', true), set_config('jit', 'off', true)"
)


async def prepare_tool_session(session: AsyncSession) -> None:
    """Start ``session``'s transaction as a tool's: its statement timeout, and plans
    made for each statement's values."""
    await session.execute(_TOOL_SETTINGS, {"timeout": f"{STATEMENT_TIMEOUT_MS}ms"})


def aside_permits(sessionmaker: async_sessionmaker[AsyncSession]) -> asyncio.Semaphore | None:
    """How many tool calls at once may take a second connection (:meth:`Sessions.both`):
    the pool's base size, half of what it can hand out, so calls that hold one
    connection can never all wait for another; none where sessions share one connection
    (tests bind them to theirs)."""
    bind = sessionmaker.kw.get("bind")
    if isinstance(bind, AsyncEngine) and isinstance(bind.pool, QueuePool):
        return asyncio.Semaphore(bind.pool.size())
    return None


NAME = re.compile(r"^[a-z0-9_]{1,64}$")
SUMMARY_LIMIT = 300

# Every surface takes the user beside a tool's own arguments (see ``invoke.parse_args``).
USER_ID_SCHEMA = {
    "type": "string",
    "format": "uuid",
    "description": "Only with the admin token: the user to act for. "
    "A personal token always acts for its own user.",
}


@dataclass(frozen=True)
class Sessions:
    """The request's session, where to open more, and the permits to (:func:`aside_permits`)."""

    session: AsyncSession
    sessionmaker: async_sessionmaker[AsyncSession]
    aside: asyncio.Semaphore | None

    async def both(
        self,
        first: Callable[[AsyncSession], Awaitable[A]],
        second: Callable[[AsyncSession], Awaitable[B]],
    ) -> tuple[A, B]:
        """Run two independent reads at once: ``first`` on the request's session,
        ``second`` on a session and connection of its own, so PostgreSQL answers both on
        two cores (compare periods, 90 days of a million plays: p50 82-100 ms in turn,
        41-46 side by side; docs/operations.md).

        Each statement sees the data committed when it starts, on one session or two
        alike. Without a free permit the two run in turn on the request's session, never
        waiting for a second connection while holding one. A failure of the first cancels
        the second; a failure of either is raised as is.
        """
        if self.aside is None or self.aside.locked():
            return await first(self.session), await second(self.session)
        # Not locked: taken at once, before any other call can look.
        await self.aside.acquire()
        permits = self.aside

        async def aside() -> B:
            try:
                async with self.sessionmaker() as session, session.begin():
                    await prepare_tool_session(session)
                    return await second(session)
            finally:
                permits.release()

        other = asyncio.ensure_future(aside())
        try:
            here = await first(self.session)
        except BaseException:
            other.cancel()
            await asyncio.gather(other, return_exceptions=True)
            raise
        return here, await other


@dataclass(frozen=True)
class ToolContext:
    """What a handler may use: the request's session and the user it acts for."""

    session: AsyncSession
    user: User
    now: datetime
    sessionmaker: async_sessionmaker[AsyncSession]
    cipher: TokenCipher
    spotify: SpotifyClient | None

    aside: asyncio.Semaphore | None

    @property
    def sessions(self) -> Sessions:
        return Sessions(self.session, self.sessionmaker, self.aside)


Handler = Callable[[ToolContext, In], Awaitable[Out]]


@dataclass(frozen=True)
class Tool(Generic[In, Out]):
    name: str
    path: str
    input: type[In]
    output: type[Out]
    handler: Handler[In, Out]
    description: str
    read_only: bool = True
    # Error answers of this tool beyond those of every tool (status: when).
    errors: Mapping[int, str] = field(default_factory=dict, compare=False)

    @property
    def summary(self) -> str:
        """The description's first sentence (OpenAPI summaries, catalog listings)."""
        return re.split(r"(?<=\.)\s", self.description, maxsplit=1)[0]

    @property
    def alias(self) -> str:
        """The dotted name of the original brief, e.g. ``history.top_artists``."""
        return self.name.replace("_", ".", 1)

    # The schemas are built once: MCP tools/list and GET /mcp/tools hand out the same
    # objects on every request, so callers must not change them.
    @cached_property
    def input_schema(self) -> dict[str, Any]:
        """JSON Schema of the arguments, ``user_id`` included, as MCP and /mcp/call take them."""
        schema: dict[str, Any] = self.input.model_json_schema()
        schema.setdefault("properties", {})["user_id"] = USER_ID_SCHEMA
        return schema

    @cached_property
    def output_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = self.output.model_json_schema()
        return schema


_TOOLS: dict[str, Tool[Any, Any]] = {}


def tool(
    name: str, *, path: str, read_only: bool = True, errors: Mapping[int, str] | None = None
) -> Callable[[Handler[In, Out]], Handler[In, Out]]:
    """Register a handler as a tool; input and output models come from its annotations."""

    def register(handler: Handler[In, Out]) -> Handler[In, Out]:
        hints = inspect.get_annotations(handler, eval_str=True)
        parameters = list(inspect.signature(handler).parameters)
        input_model = hints[parameters[1]]
        output_model = hints["return"]
        description = inspect.cleandoc(handler.__doc__ or "")
        entry = Tool(
            name=name,
            path=path,
            input=input_model,
            output=output_model,
            handler=handler,
            description=" ".join(description.split()),
            read_only=read_only,
            errors=dict(errors or {}),
        )
        _check(entry)
        _TOOLS[name] = entry
        return handler

    return register


def _check(entry: Tool[Any, Any]) -> None:
    if not NAME.match(entry.name):
        raise ValueError(f"tool name {entry.name!r} must match {NAME.pattern}")
    if entry.name in _TOOLS:
        raise ValueError(f"tool {entry.name!r} is registered twice")
    if not entry.description:
        raise ValueError(f"tool {entry.name!r} needs a docstring: it is the description")
    if len(entry.summary) > SUMMARY_LIMIT:
        raise ValueError(f"tool {entry.name!r}: first sentence over {SUMMARY_LIMIT} characters")
    if not (isinstance(entry.input, type) and issubclass(entry.input, ToolArgs)):
        raise TypeError(f"tool {entry.name!r}: its input must subclass ToolArgs")
    if not (isinstance(entry.output, type) and issubclass(entry.output, BaseModel)):
        raise TypeError(f"tool {entry.name!r}: its output must be a Pydantic model")


def _registered() -> dict[str, Tool[Any, Any]]:
    from playlog_api.tools import catalog  # noqa: F401 - importing registers the tools

    return _TOOLS


def tools() -> list[Tool[Any, Any]]:
    """Every registered tool, in the catalog's order."""
    from playlog_api.tools.catalog import ORDER

    rank = {name: index for index, name in enumerate(ORDER)}
    return sorted(
        _registered().values(), key=lambda entry: (rank.get(entry.name, len(rank)), entry.name)
    )


def find(name: str) -> Tool[Any, Any] | None:
    """A tool by its name or its dotted alias (``history.top_artists``)."""
    registered = _registered()
    if name in registered:
        return registered[name]
    aliased = registered.get(name.replace(".", "_", 1))
    return aliased if aliased is not None and aliased.alias == name else None
