"""What the browser (or a non-browser client) sees at the end of a sign-in."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

# The look of the api's few pages (sign-in outcomes, the OAuth consent page).
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;"
    "color:#1b1b1b}h1{font-size:1.4rem}p{line-height:1.5}.note{color:#555}"
)
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Playlog</title><style>{style}</style>
</head><body><h1>{title}</h1><p>{message}</p><p class="note">{note}</p></body></html>"""


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def outcome(
    request: Request,
    status: int,
    title: str,
    message: str,
    *,
    code: str,
    data: dict[str, Any] | None = None,
    note: str = "You can close this window.",
) -> Response:
    if wants_json(request):
        if status >= 400:
            return JSONResponse({"error": {"code": code, "message": message}}, status)
        return JSONResponse({"status": code, "message": message, **(data or {})}, status)
    page = _PAGE.format(
        title=escape(title), message=escape(message), note=escape(note), style=STYLE
    )
    return HTMLResponse(page, status, headers={"Cache-Control": "no-store"})
