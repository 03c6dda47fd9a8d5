"""SQLite state: schema, migrations, the single writer thread, UID allocation, blobs.

May import sqlite-utils and the standard library only.
"""

from bridge.store.db import Store, register_migrations

__all__ = ["Store", "register_migrations"]
