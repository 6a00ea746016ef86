"""One lock per user's history, shared by the collector's page writes and imports.

Both apply the cross-source rule by reading what is stored and then inserting; the
transaction-scoped advisory lock makes the two writers take turns for the same user, so
neither can miss a row the other is about to commit.
"""

from __future__ import annotations

import uuid

# Ours among the application's advisory locks; combined with the user's id.
_NAMESPACE = 0x504C_4731  # "PLG1"

LOCK_SQL = "SELECT pg_advisory_xact_lock($1, $2)"


def history_lock_key(user_id: uuid.UUID) -> tuple[int, int]:
    """The (namespace, key) pair of ``pg_advisory_xact_lock(int, int)`` for a user."""
    return _NAMESPACE, int.from_bytes(user_id.bytes[:4], "big", signed=True)
