"""A request id on every request: in the log context, in ``request.state`` and in the answer.

An incoming ``X-Request-ID`` (from a proxy or a client) is kept when it looks like an id,
so one request can be followed across services; anything else is replaced, because the
value ends up in log lines and response headers.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from playlog.logging import log_context

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
_VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _HEADER_KEY:
            text = value.decode("latin-1")
            return text if _VALID.fullmatch(text) else None
    return None


class RequestIdMiddleware:
    """Pure ASGI, so the id is in the context of everything the request runs and logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        # The 500 handler runs outside this middleware (Starlette puts it outermost) and
        # reads the id from here.
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        with log_context(request_id=request_id):
            await self.app(scope, receive, send_with_id)
