"""Handlers of the ``playlog`` subcommands. Each returns the process exit code.

Alembic, the ORM models and the development supervisor are imported by the handlers that
use them: every other command, ``playlog import`` above all, starts without them.
"""

from __future__ import annotations

import argparse
import json
import secrets

from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.cli.database import database_url, run_on_database
from playlog.crypto import generate_key
from playlog.db.engine import create_sessionmaker


def db_upgrade(args: argparse.Namespace) -> int:
    from playlog.db import migrate

    with database_url() as url:
        run_on_database(url, lambda engine: migrate.upgrade(engine, args.revision))
    print(f"database upgraded to {args.revision}")
    return 0


def db_downgrade(args: argparse.Namespace) -> int:
    from playlog.db import migrate

    with database_url() as url:
        run_on_database(url, lambda engine: migrate.downgrade(engine, args.revision))
    print(f"database downgraded to {args.revision}")
    return 0


def db_current(_: argparse.Namespace) -> int:
    from playlog.db import migrate

    async def read(engine: AsyncEngine) -> str | None:
        async with engine.connect() as connection:
            return await migrate.current_revision(connection)

    with database_url() as url:
        current = run_on_database(url, read)
    print(f"current: {current or 'none (empty database)'}")
    print(f"head:    {migrate.head_revision()}")
    return 0


def users_add(args: argparse.Namespace) -> int:
    from playlog.users import create_user

    async def add(engine: AsyncEngine) -> dict[str, str | None]:
        async with create_sessionmaker(engine).begin() as session:
            user = await create_user(
                session,
                display_name=args.name,
                timezone=args.timezone,
                spotify_user_id=args.spotify_id,
            )
            return {
                "id": str(user.id),
                "display_name": user.display_name,
                "timezone": user.timezone,
                "spotify_user_id": user.spotify_user_id,
            }

    with database_url() as url:
        created = run_on_database(url, add)
    print(json.dumps(created) if args.json else created["id"])
    return 0


def secrets_generate_key(_: argparse.Namespace) -> int:
    print(generate_key())
    return 0


def secrets_generate_token(_: argparse.Namespace) -> int:
    print(secrets.token_urlsafe(32))
    return 0


def run(_: argparse.Namespace) -> int:
    from playlog.cli.supervisor import run_development

    return run_development()
