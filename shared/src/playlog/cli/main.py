"""``playlog`` — database, users, secrets and the development supervisor."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from playlog.cli import commands, imports, stand_in, tokens
from playlog.errors import AppError, ConfigurationError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="playlog",
        description="Playlog command line. Every command uses DATABASE_URL when it is set, "
        "else the embedded PostgreSQL under PLAYLOG_DATA_DIR (default .data).",
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    db = groups.add_parser("db", help="database migrations").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    upgrade = db.add_parser("upgrade", help="migrate to the newest schema (or REV)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=commands.db_upgrade)
    downgrade = db.add_parser("downgrade", help="migrate down to REV ('base' empties the database)")
    downgrade.add_argument("revision")
    downgrade.set_defaults(handler=commands.db_downgrade)
    current = db.add_parser("current", help="print the database's schema revision and the head")
    current.set_defaults(handler=commands.db_current)

    users = groups.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = users.add_parser("add", help="create a user and print its id")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--timezone", default="UTC", help="IANA zone, e.g. Europe/Berlin")
    add.add_argument("--spotify-id", help="Spotify user id, if known")
    add.add_argument("--json", action="store_true", help="print a JSON object instead")
    add.set_defaults(handler=commands.users_add)

    secrets = groups.add_parser("secrets", help="generate secrets").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    key = secrets.add_parser("generate-key", help="print a new TOKEN_ENCRYPTION_KEY")
    key.set_defaults(handler=commands.secrets_generate_key)
    token = secrets.add_parser("generate-token", help="print a new ADMIN_TOKEN")
    token.set_defaults(handler=commands.secrets_generate_token)

    run = groups.add_parser(
        "run", help="start api, frontend and collector for development (what `make run` does)"
    )
    run.set_defaults(handler=commands.run)

    imports.add_parser(groups)
    tokens.add_parser(groups)
    stand_in.add_parser(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        code = handler(args)
    except (AppError, ConfigurationError) as exc:
        sys.exit(f"playlog: error: {exc}")
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # Whoever read the output stopped early (`playlog import … --json | head`): the
        # work is done; no traceback, and nothing more written to the closed pipe when
        # the interpreter flushes it on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)
