"""Test-only controls: inject faults and read back what was served.

Mounted only with ``StandInConfig.enable_control`` (``--enable-control`` on the command
line); a stand-in started for demo mode has no way to be steered from outside.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from playlog.spotify.stand_in.state import StandInState

router = APIRouter(prefix="/_control", tags=["control"])


def _state(request: Request) -> StandInState:
    state: StandInState = request.app.state.stand_in
    return state


class Throttle(BaseModel):
    seconds: float = Field(gt=0, le=86_400, description="How long the 429 storm lasts")
    retry_after: int = Field(ge=0, le=86_400, description="Retry-After sent with each 429")


class Errors(BaseModel):
    count: int = Field(ge=1, le=10_000)
    status: int = Field(default=500, ge=500, le=599)


class Account(BaseModel):
    account: str


class ClockJump(BaseModel):
    seconds: float = Field(ge=-31_536_000, le=31_536_000)


@router.post("/throttle")
async def throttle(request: Request, body: Throttle) -> dict[str, Any]:
    faults = _state(request).faults
    faults.throttle_until = time.monotonic() + body.seconds
    faults.retry_after_seconds = body.retry_after
    return {"throttled_for_seconds": body.seconds}


@router.post("/errors")
async def errors(request: Request, body: Errors) -> dict[str, Any]:
    faults = _state(request).faults
    faults.errors_remaining = body.count
    faults.error_status = body.status
    return {"failing_requests": body.count}


@router.post("/revoke")
async def revoke(request: Request, body: Account) -> dict[str, Any]:
    return {"revoked_refresh_tokens": _state(request).revoke(body.account)}


@router.post("/expire-access-tokens")
async def expire_access_tokens(request: Request) -> dict[str, Any]:
    _state(request).expire_access_tokens()
    return {"expired": True}


@router.post("/clock")
async def jump_clock(request: Request, body: ClockJump) -> dict[str, Any]:
    state = _state(request)
    state.clock.jump(body.seconds)
    return {"now": state.clock.now().isoformat()}


@router.post("/sign-in-as")
async def sign_in_as(request: Request, body: Account) -> dict[str, Any]:
    """Choose the account the next /authorize approves (a browser would ask the user)."""
    state = _state(request)
    if body.account not in state.accounts:
        raise HTTPException(404, f"unknown account {body.account}")
    state.config.authorize_as = body.account
    return {"authorize_as": body.account}


@router.get("/served/{account}")
async def served(request: Request, account: str) -> dict[str, Any]:
    """Every play the api returned to any client, and every play that was listed."""
    state = _state(request)
    listener = state.listeners[account]
    listener.advance_to(state.clock.now())
    return {
        "served": [
            {"track_id": track_id, "played_at": played_at.isoformat()}
            for track_id, played_at in state.served.get(account, {})
        ],
        "listed": [
            {"track_id": play.track.id, "played_at": play.played_at.isoformat()}
            for play in listener.listed_plays()
        ],
    }
