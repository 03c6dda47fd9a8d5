"""The push component's table: one row per Graph subscription the bridge holds.

Owns the ``push_subscriptions`` table (migrations component ``"push"``). A row keeps
what is needed to verify notifications and to renew, reuse or delete the subscription
after a restart: its id, the account and mailbox it watches, the notification URL it was
created with, the expiry Graph granted, and the ``clientState`` secret (GRAPH-MAIL-FACTS
§19.1). The secret never leaves this table except to compare it in constant time.

Also owns one read of the mail state (``message_folder``): which folder the store holds a
message in, used to route an ``updated``/``deleted`` notification to its folder without a
Graph call. It reads ``ms_messages`` of ``bridge.store.mailstate`` and answers None when
that table does not exist.

Imports: the standard library, sqlite-utils and ``bridge.store`` only.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlite_utils

from bridge.store.db import register_migrations

_SCHEMA_1 = """
CREATE TABLE push_subscriptions (
    subscription_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    mailbox_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    notification_url TEXT NOT NULL,
    client_state TEXT NOT NULL,
    expires TEXT NOT NULL,
    lifetime_minutes INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX push_subscriptions_by_account ON push_subscriptions(account_id);
"""

register_migrations("push", [_SCHEMA_1])

_COLUMNS = (
    "subscription_id, account_id, mailbox_id, resource, notification_url, client_state,"
    " expires, lifetime_minutes, created_at"
)


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """One subscription as the bridge remembers it."""

    subscription_id: str
    account_id: str
    mailbox_id: str
    resource: str
    notification_url: str
    client_state: str = field(repr=False)  # a secret: kept out of repr and logs
    expires: datetime
    lifetime_minutes: int  # what Graph granted at the last create/renew
    created_at: datetime


def _dt(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: tuple) -> SubscriptionRecord:  # type: ignore[type-arg]
    return SubscriptionRecord(
        subscription_id=row[0],
        account_id=row[1],
        mailbox_id=row[2],
        resource=row[3],
        notification_url=row[4],
        client_state=row[5],
        expires=_dt(row[6]),
        lifetime_minutes=int(row[7]),
        created_at=_dt(row[8]),
    )


def load_all(db: sqlite_utils.Database) -> list[SubscriptionRecord]:
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM push_subscriptions ORDER BY account_id, created_at"
    ).fetchall()
    return [_record(r) for r in rows]


def save(db: sqlite_utils.Database, record: SubscriptionRecord) -> None:
    """Insert or replace the row of ``record.subscription_id``."""
    db.execute(
        f"INSERT OR REPLACE INTO push_subscriptions ({_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            record.subscription_id,
            record.account_id,
            record.mailbox_id,
            record.resource,
            record.notification_url,
            record.client_state,
            record.expires.astimezone(UTC).isoformat(),
            record.lifetime_minutes,
            record.created_at.astimezone(UTC).isoformat(),
        ],
    )


def delete(db: sqlite_utils.Database, subscription_id: str) -> None:
    db.execute("DELETE FROM push_subscriptions WHERE subscription_id = ?", [subscription_id])


def message_folder(db: sqlite_utils.Database, account_id: str, message_id: str) -> str | None:
    """The folder the mail state holds ``message_id`` in, if any (immutable ids, facts §17)."""
    try:
        row = db.execute(
            "SELECT folder_id FROM ms_messages WHERE account_id = ? AND message_id = ? LIMIT 1",
            [account_id, message_id],
        ).fetchone()
    except sqlite3.OperationalError:  # the mail state is not part of this database
        return None
    return str(row[0]) if row else None
