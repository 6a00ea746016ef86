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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

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


async def limit_statements(session: AsyncSession) -> None:
    """Start ``session``'s transaction with the tools' statement timeout."""
    await session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))


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
    """The request's session, and where to open more."""

    session: AsyncSession
    sessionmaker: async_sessionmaker[AsyncSession]

    async def both(
        self,
        first: Callable[[AsyncSession], Awaitable[A]],
        second: Callable[[AsyncSession], Awaitable[B]],
    ) -> tuple[A, B]:
        """Run two independent reads at once: ``first`` on the request's session,
        ``second`` on a session and connection of its own, so PostgreSQL answers both on
        two cores (two 90-day periods: 66 ms one after the other, about 40 together).

        Each statement sees the data committed when it starts, on one session or two
        alike. Where the sessions share one connection (tests bind them to theirs), the
        two run in turn. A failure of the first cancels the second; a failure of either
        is raised as is.
        """
        if isinstance(self.sessionmaker.kw.get("bind"), AsyncConnection):
            return await first(self.session), await second(self.session)

        async def aside() -> B:
            async with self.sessionmaker() as session, session.begin():
                await limit_statements(session)
                return await second(session)

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

    @property
    def sessions(self) -> Sessions:
        return Sessions(self.session, self.sessionmaker)


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
    name: str, *, path: str, read_only: bool = True
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
