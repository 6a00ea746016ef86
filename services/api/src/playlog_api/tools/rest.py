"""The tools over plain HTTP: the catalog, one generic call endpoint, a GET route per tool
(``/history/users/{user_id}/…`` for the admin, ``/me/…`` for a personal token) and an
OpenAPI document of the ``/me`` routes alone, ready for a ChatGPT action."""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from playlog import __version__
from playlog.errors import AppError, ValidationFailed
from playlog.web.db import DbSession
from playlog.web.errors import document_errors
from playlog_api.tools.access import Caller, authenticate
from playlog_api.tools.invoke import invoke, parse_args
from playlog_api.tools.registry import Tool, find, tools

ME_PREFIX = "/me"
ADMIN_PREFIX = "/history/users/{user_id}"
# The error answers of every tool route (the body of each: playlog.web.errors.ErrorResponse).
ME_ERRORS = {
    401: "Missing, invalid, expired or revoked token (with a WWW-Authenticate header).",
    422: "Invalid arguments; the message names each and says why.",
    503: "The question took too long to answer (ask about a shorter window).",
}
ADMIN_ERRORS = {
    **ME_ERRORS,
    403: "A personal access token of another user.",
    404: "No user with this id.",
}


async def get_caller(request: Request, session: DbSession) -> Caller:
    return await authenticate(request, session)


CallerDep = Annotated[Caller, Depends(get_caller)]


class ToolInfo(BaseModel):
    name: str
    alias: str = Field(description="The dotted name, also accepted by /mcp/call.")
    description: str
    read_only: bool
    me_path: str
    admin_path: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class Catalog(BaseModel):
    tools: list[ToolInfo]


class CallRequest(BaseModel):
    tool: str = Field(max_length=100, description="Tool name or dotted alias.")
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="The tool's arguments: a JSON object (a string holding one, as some "
        "clients send it, or null for none, is taken too).",
    )

    @field_validator("args", mode="before")
    @classmethod
    def _unwrap(cls, value: Any) -> Any:
        """Some clients send the arguments JSON-encoded, as a string; it must hold an object."""
        if value is None:
            return {}
        if isinstance(value, str):
            try:
                decoded = json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError("args is a string that is not JSON; send a JSON object") from None
            if not isinstance(decoded, dict):
                raise ValueError("args is a string that does not hold a JSON object")
            return decoded
        return value


class CallError(BaseModel):
    code: str
    message: str


class CallResponse(BaseModel):
    tool: str
    success: bool
    result: dict[str, Any] | None
    error: CallError | None


router = APIRouter(tags=["tools"], responses={401: {"description": ME_ERRORS[401]}})


@router.get("/mcp/tools")
async def list_tools(caller: CallerDep) -> Catalog:
    """Every tool with its JSON Schemas (the same catalog MCP's tools/list gives)."""
    return Catalog(
        tools=[
            ToolInfo(
                name=entry.name,
                alias=entry.alias,
                description=entry.description,
                read_only=entry.read_only,
                me_path=f"{ME_PREFIX}/{entry.path}",
                admin_path=f"{ADMIN_PREFIX}/{entry.path}",
                input_schema=entry.input_schema,
                output_schema=entry.output_schema,
            )
            for entry in tools()
        ]
    )


async def call_tool(
    request: Request, session: DbSession, caller: CallerDep, call: Annotated[CallRequest, Body()]
) -> JSONResponse:
    """Call any tool by name (or dotted alias) with a JSON object of arguments. Admin
    credentials must put ``user_id`` in ``args``; a personal token may omit it."""
    entry = find(call.tool)
    try:
        if entry is None:
            raise UnknownTool(f"unknown tool {call.tool[:100]!r}: see GET /mcp/tools")
        args, user_id = parse_args(entry, call.args)
        result = await invoke(
            entry, args, caller=caller, user_id=user_id, session=session, state=request.app.state
        )
    except AppError as exc:
        await session.rollback()
        body = CallResponse(
            tool=entry.name if entry else call.tool[:100],
            success=False,
            result=None,
            error=CallError(code=exc.code, message=exc.message),
        )
        # The error's headers too: Retry-After of a 429, as the tool's own route sends it.
        return JSONResponse(
            body.model_dump(mode="json"), status_code=exc.status_code, headers=exc.headers
        )
    body = CallResponse(
        tool=entry.name, success=True, result=result.model_dump(mode="json"), error=None
    )
    return JSONResponse(body.model_dump(mode="json"))


class UnknownTool(AppError):
    status_code = 404
    code = "unknown_tool"


def _endpoint(entry: Tool[Any, Any], *, admin: bool) -> Any:
    async def endpoint(
        request: Request, session: DbSession, caller: CallerDep, **params: Any
    ) -> Any:
        user_id: uuid.UUID | None = params.get("user_id")
        if not admin and caller.admin:
            raise ValidationFailed(
                f"the admin has no history of its own: use {ADMIN_PREFIX}/{entry.path}"
            )
        return await invoke(
            entry,
            params["args"],
            caller=caller,
            user_id=user_id,
            session=session,
            state=request.app.state,
        )

    parameters = [
        inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
        inspect.Parameter("session", inspect.Parameter.KEYWORD_ONLY, annotation=DbSession),
        inspect.Parameter("caller", inspect.Parameter.KEYWORD_ONLY, annotation=CallerDep),
        inspect.Parameter(
            "args", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[entry.input, Query()]
        ),
    ]
    if admin:
        parameters.append(
            inspect.Parameter(
                "user_id",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[uuid.UUID, Path(description="The user to act for.")],
            )
        )
    endpoint.__signature__ = inspect.Signature(parameters, return_annotation=entry.output)  # type: ignore[attr-defined]
    endpoint.__name__ = entry.name
    return endpoint


def _described(*sources: Mapping[int, str]) -> dict[int, str]:
    """Error statuses and when each is answered, the causes of one status joined (each
    once: tools share theirs)."""
    causes: dict[int, list[str]] = {}
    for source in sources:
        for status, cause in source.items():
            if cause not in causes.setdefault(status, []):
                causes[status].append(cause)
    return {status: " ".join(joined) for status, joined in causes.items()}


def call_failures() -> dict[int | str, dict[str, Any]]:
    """The answers of ``/mcp/call`` when the call fails, in its own envelope ("success":
    false): those of every tool route, and an unknown tool's 404. A 401 comes before any
    call, in the error envelope; so does a 422 for a body that is no call at all."""
    described = _described(
        {404: "No tool of that name (or alias)."},
        ADMIN_ERRORS,
        {422: "Admin credentials without user_id."},
        *(entry.errors for entry in tools()),
    )
    failures: dict[int | str, dict[str, Any]] = {401: {"description": described.pop(401)}}
    for status, when in sorted(described.items()):
        failures[status] = {"model": CallResponse, "description": when}
    either = [
        {"$ref": f"#/components/schemas/{model}"} for model in ("CallResponse", "ErrorResponse")
    ]
    failures[422] = {
        "description": described[422],
        "content": {"application/json": {"schema": {"anyOf": either}}},
    }
    return failures


def tool_routers() -> tuple[APIRouter, APIRouter]:
    """The ``/me`` routes (personal tokens) and the ``/history/users/{user_id}`` routes."""
    me = APIRouter(prefix=ME_PREFIX, tags=["me"])
    admin = APIRouter(prefix=ADMIN_PREFIX, tags=["history"])
    for entry in tools():
        for target, is_admin, operation_id, errors in (
            (me, False, entry.name, ME_ERRORS),
            (admin, True, f"admin_{entry.name}", ADMIN_ERRORS),
        ):
            described = _described(entry.errors, errors)
            target.add_api_route(
                f"/{entry.path}",
                _endpoint(entry, admin=is_admin),
                methods=["GET"],
                response_model=entry.output,
                operation_id=operation_id,
                summary=entry.summary,
                description=entry.summary if not is_admin else entry.description,
                responses={
                    status: {"description": described[status]} for status in sorted(described)
                },
            )
    return me, admin


def gpt_openapi(me: APIRouter, server_url: str) -> dict[str, Any]:
    """OpenAPI 3.1 of the ``/me`` tool routes only, with bearer auth: a ChatGPT action."""
    spec = get_openapi(
        title="Playlog listening history",
        version=__version__,
        description="Questions about the user's Spotify listening history.",
        routes=me.routes,
        servers=[{"url": server_url}],
    )
    spec.setdefault("components", {})["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "Personal access token (plg_…).",
        }
    }
    spec["security"] = [{"bearer": []}]
    return document_errors(spec)


def install(app: FastAPI, public_url: str) -> None:
    me, admin = tool_routers()
    app.include_router(router)
    # Here, not on the router: what a call may answer is what the registered tools may.
    app.add_api_route(
        "/mcp/call",
        call_tool,
        methods=["POST"],
        response_model=CallResponse,
        responses=call_failures(),
        tags=["tools"],
    )
    app.include_router(me)
    app.include_router(admin)
    # Built on the first request (it takes a few hundred ms) and served as is afterwards.
    document: list[bytes] = []

    @app.get("/openapi-gpt.json", include_in_schema=False)
    async def openapi_gpt() -> Response:
        if not document:
            document.append(json.dumps(gpt_openapi(me, public_url)).encode())
        return Response(document[0], media_type="application/json")
