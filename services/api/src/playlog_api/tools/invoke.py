"""Running one tool call, the same way for MCP, ``/mcp/call`` and the REST routes.

Arguments are validated against the tool's input model, the target user is decided by
the caller's credentials, and the handler runs with a statement timeout so one heavy
question cannot hold a connection for long. Errors that reach a client are domain
errors with messages written here; anything unexpected is logged (redacted) and
reported as an internal error with the request id, never with its text or traceback.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import State

from playlog.errors import ServiceUnavailable, ValidationFailed, reason
from playlog.users import find_user
from playlog_api.tools.access import Caller
from playlog_api.tools.registry import STATEMENT_TIMEOUT_MS, Tool, ToolContext, prepare_tool_session

QUERY_CANCELED = "57014"


def describe(error: ValidationError) -> str:
    """A validation error as one line, naming fields but never echoing their values."""
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()))
        if item.get("type") == "extra_forbidden":
            parts.append(f"unknown argument {location}")
            continue
        field = location or "arguments"
        parts.append(f"{field}: {reason(item)}")
    return "; ".join(parts)


def parse_args(tool: Tool[Any, Any], args: Mapping[str, Any]) -> tuple[BaseModel, uuid.UUID | None]:
    """The tool's input model and the ``user_id`` named alongside, from a JSON object."""
    values = dict(args)
    raw_user = values.pop("user_id", None)
    user_id: uuid.UUID | None = None
    if raw_user is not None:
        try:
            user_id = uuid.UUID(str(raw_user))
        except ValueError:
            raise ValidationFailed("user_id: not a valid user id (a UUID)") from None
    try:
        # Read as the JSON it came as, strictly: a number must be a number and a date a
        # date's text (lax reading took true for 1 and 1577836800 for a date).
        return tool.input.model_validate_json(json.dumps(values), strict=True), user_id
    except ValidationError as exc:
        raise ValidationFailed(f"invalid arguments for {tool.name}: {describe(exc)}") from None


async def invoke(
    tool: Tool[Any, Any],
    args: BaseModel,
    *,
    caller: Caller,
    user_id: uuid.UUID | None,
    session: AsyncSession,
    state: State,
) -> BaseModel:
    """Run ``tool`` for the user ``caller`` may act for; the session's owner commits."""
    target = caller.target(user_id)
    user = await find_user(session, target)
    await prepare_tool_session(session)
    context = ToolContext(
        session=session,
        user=user,
        now=datetime.now(UTC),
        sessionmaker=state.sessionmaker,
        cipher=state.cipher,
        spotify=state.spotify,
        aside=state.aside_permits,
    )
    try:
        result: BaseModel = await tool.handler(context, args)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED:
            raise ServiceUnavailable(
                f"{tool.name} took longer than {STATEMENT_TIMEOUT_MS // 1000} s to answer; "
                "ask about a shorter window"
            ) from None
        raise
    return result
