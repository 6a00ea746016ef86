"""``playlog tokens create|list|revoke``: a user's personal access tokens.

The token functions (and with them the ORM models) are imported by the handlers, so the
other commands start without them.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.cli.database import database_url, run_on_database
from playlog.db.engine import create_sessionmaker, db_now
from playlog.errors import ValidationFailed

if TYPE_CHECKING:
    from playlog.access_tokens import ListedToken

DEFAULT_NAME = "cli"


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = groups.add_parser(
        "tokens", help="personal access tokens of a user (for AI clients and scripts)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create", help="create a token and print it (it is shown this once only)"
    )
    create.add_argument("--user", required=True, help="id of the user the token acts as")
    create.add_argument("--name", default=DEFAULT_NAME, help="what the token is for")
    create.add_argument("--json", action="store_true", help="print a JSON object instead")
    create.set_defaults(handler=create_command)

    listing = actions.add_parser("list", help="list a user's tokens, newest first")
    listing.add_argument("--user", required=True, help="id of the user")
    listing.add_argument("--json", action="store_true", help="print a JSON array instead")
    listing.set_defaults(handler=list_command)

    revoke = actions.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("--user", required=True, help="id of the user the token belongs to")
    revoke.add_argument("token_id", help="id of the token (see `playlog tokens list`)")
    revoke.set_defaults(handler=revoke_command)


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed(f"{what} must be an id (a UUID), not {value!r}") from None


def create_command(args: argparse.Namespace) -> int:
    from playlog.access_tokens import create_token

    user_id = _uuid(args.user, "--user")

    async def create(engine: AsyncEngine) -> dict[str, str]:
        async with create_sessionmaker(engine).begin() as session:
            issued = await create_token(session, user_id, args.name)
            return {
                "id": str(issued.token.id),
                "name": issued.token.name,
                "prefix": issued.token.prefix,
                "token": issued.secret,
            }

    with database_url() as url:
        created = run_on_database(url, create)
    if args.json:
        print(json.dumps(created))
    else:
        print(created["token"])
        print(
            f"playlog: token {created['id']} created; it is shown only this once, store it now",
            file=sys.stderr,
        )
    return 0


def _status(row: ListedToken, now: datetime) -> str:
    token = row.token
    if row.active:
        return "active"
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "ended"  # issued through OAuth, and the token it was issued for no longer works


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def list_command(args: argparse.Namespace) -> int:
    from playlog.access_tokens import list_tokens

    user_id = _uuid(args.user, "--user")

    async def read(engine: AsyncEngine) -> list[dict[str, Any]]:
        async with create_sessionmaker(engine).begin() as session:
            rows = await list_tokens(session, user_id)
            now = await db_now(session)
            return [
                {
                    "id": str(row.token.id),
                    "name": row.token.name,
                    "prefix": row.token.prefix,
                    "created_at": _iso(row.token.created_at),
                    "last_used_at": _iso(row.token.last_used_at),
                    "expires_at": _iso(row.token.expires_at),
                    "revoked_at": _iso(row.token.revoked_at),
                    "status": _status(row, now),
                }
                for row in rows
            ]

    with database_url() as url:
        tokens = run_on_database(url, read)
    if args.json:
        print(json.dumps(tokens, ensure_ascii=False))
        return 0
    if not tokens:
        print("no tokens", file=sys.stderr)
    for token in tokens:
        used = token["last_used_at"] or "never used"
        print(
            f"{token['id']}  {token['prefix']}…  {token['status']:<7}  "
            f"created {token['created_at']}  {used}  {token['name']}"
        )
    return 0


def revoke_command(args: argparse.Namespace) -> int:
    from playlog.access_tokens import revoke_token

    user_id = _uuid(args.user, "--user")
    token_id = _uuid(args.token_id, "TOKEN_ID")

    async def revoke(engine: AsyncEngine) -> None:
        async with create_sessionmaker(engine).begin() as session:
            await revoke_token(session, user_id, token_id)

    with database_url() as url:
        run_on_database(url, revoke)
    print(f"token {token_id} revoked")
    return 0
