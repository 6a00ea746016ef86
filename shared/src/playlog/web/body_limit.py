"""A cap on request bodies, applied before any route reads, parses or authenticates one.

FastAPI reads and parses a JSON body before it runs the dependencies that check the
caller, so without a cap anyone could make the api hold a body of any size in memory
(three unauthenticated 100 MB posts took 733 MB). A declared ``Content-Length`` over the
cap is answered 413 at once; a body sent without one is counted as it arrives and cut off
there. Routes that take large uploads (an export ZIP) stream them and enforce their own
cap; they are exempt by path.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from playlog.web.errors import error_response

MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the cap; FastAPI lets an HTTPException
    raised while it reads the body through, so the error handlers answer it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit // 1024} KB")


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES, exempt: str | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = re.compile(exempt) if exempt else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt and self.exempt.fullmatch(scope["path"])):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLarge(self.limit)
        response = error_response(
            413, "payload_too_large", str(error.detail), headers={"Connection": "close"}
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
