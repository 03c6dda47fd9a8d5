"""OAuth2 applications and accounts: their tables and the functions that read and write them.

The model mirrors the seed's (EmailEngine's): an **application** is one Entra app
registration (tenant id — the seed's ``authority`` —, client id, a client secret or a
certificate, the cloud), and an **account** maps a local login to one mailbox of that
tenant (``auth_user``: UPN, address or object id) with a local password hash, the extra
addresses it may send as, and its connection state.

Every function that takes ``db`` is synchronous and meant to run inside
``store.write(fn)`` / ``store.read(fn)`` (use ``functools.partial`` or a lambda);
the ``async`` conveniences at the end do that for you.

Secrets never reach this module in clear form unless the caller hands them in with a
``Sealer`` (``bridge.secrets.SecretBox`` satisfies it): the column holds what
``sealer.encrypt`` returned. Password hashes are computed by the caller
(``bridge.secrets.hash_password``) — this module never sees a password.

May import sqlite-utils and the standard library only (see tests/test_layering.py).
"""

from __future__ import annotations

import asyncio
import enum
import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlite_utils

from bridge.errors import BridgeError
from bridge.store.db import Store, register_migrations

__all__ = [
    "CLOUDS",
    "Account",
    "AccountExists",
    "AccountState",
    "AppCredentials",
    "AppInUse",
    "LoginRecord",
    "NotFound",
    "OAuth2App",
    "Sealer",
    "StoreValueError",
    "authenticate",
    "create_account",
    "create_app",
    "delete_account",
    "delete_app",
    "fetch_account",
    "fetch_accounts",
    "fetch_app_credentials",
    "get_account",
    "get_account_by_login",
    "get_app",
    "get_app_credentials",
    "get_login",
    "list_accounts",
    "list_apps",
    "new_app_id",
    "record_state",
    "set_account_state",
    "set_mailbox_id",
    "set_password_hash",
    "update_account",
    "update_app",
]

CLOUDS = ("global", "gcc-high", "dod", "china", "custom")
PROVIDER = "outlookService"


class AccountState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    AUTHENTICATION_ERROR = "authenticationError"
    CONNECT_ERROR = "connectError"
    DISCONNECTED = "disconnected"


class NotFound(BridgeError):
    """No application or account with that id (``str()`` is a sentence)."""


class AccountExists(BridgeError):
    """An account id or a login name is already taken."""


class AppInUse(BridgeError):
    """An application still has accounts and cannot be removed."""


class StoreValueError(BridgeError):
    """A value that cannot be stored (bad id, missing field, unknown cloud)."""


class Sealer(Protocol):
    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, stored: str) -> str: ...


# --------------------------------------------------------------------------- schema

_V1 = """
CREATE TABLE oauth2_apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    provider TEXT NOT NULL DEFAULT 'outlookService',
    cloud TEXT NOT NULL DEFAULT 'global',
    login_url TEXT,
    graph_url TEXT,
    ca_file TEXT,
    client_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    client_secret TEXT,
    certificate_key TEXT,
    certificate_thumbprint TEXT,
    secret_updated_at TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    app_id TEXT NOT NULL REFERENCES oauth2_apps(id),
    auth_user TEXT NOT NULL,
    login TEXT NOT NULL,
    login_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    send_as TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL DEFAULT 'new',
    last_error TEXT,
    last_error_at TEXT,
    state_changed_at TEXT,
    mailbox_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX accounts_app ON accounts(app_id);
"""

register_migrations("accounts", [_V1])


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class OAuth2App:
    """An application as anyone may see it: no secret material, only whether it exists."""

    id: str
    name: str
    provider: str
    cloud: str
    login_url: str | None
    graph_url: str | None
    ca_file: str | None
    client_id: str
    tenant_id: str
    has_client_secret: bool
    has_certificate: bool
    certificate_thumbprint: str | None
    # True when the stored secret is sealed with the encryption key (False: stored clear).
    secret_encrypted: bool
    secret_updated_at: str | None
    created_at: str

    @property
    def credential_kind(self) -> str:
        return "certificate" if self.has_certificate else "secret"


@dataclass(frozen=True, slots=True)
class AppCredentials:
    """What the Graph client needs to get a token. repr() never shows the secret."""

    app: OAuth2App
    client_secret: str | None = field(default=None, repr=False)
    certificate_key_pem: str | None = field(default=None, repr=False)
    certificate_thumbprint: str | None = None


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    email: str
    app_id: str
    auth_user: str
    login: str
    send_as: tuple[str, ...]
    state: AccountState
    last_error: str | None
    last_error_at: str | None
    state_changed_at: str | None
    mailbox_id: str | None
    created_at: str
    updated_at: str

    def may_send_as(self, address: str) -> bool:
        """The account's own address and its send_as list, compared case-insensitively."""
        wanted = address.casefold()
        return wanted == self.email.casefold() or any(wanted == a.casefold() for a in self.send_as)


@dataclass(frozen=True, slots=True)
class LoginRecord:
    account: Account
    password_hash: str = field(repr=False)


# --------------------------------------------------------------------------- helpers

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LOGIN = re.compile(r"[^\s\"\\\x00-\x1f\x7f]{1,128}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_app_id() -> str:
    """A short url-safe random id (11 characters, 64 bits) that starts with a letter or
    digit, so it never looks like a command-line option."""
    while True:
        candidate = secrets.token_urlsafe(8)
        if candidate[0].isalnum():
            return candidate


def _check_id(kind: str, value: str) -> None:
    if not _ID.fullmatch(value):
        raise StoreValueError(
            f"{kind} id {value!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )


def _check_login(value: str) -> None:
    # No spaces, quotes or backslashes: the login must be typeable as an IMAP atom
    # (RFC 3501 §9 "atom") so every client can send it without quoting bugs.
    if not _LOGIN.fullmatch(value):
        raise StoreValueError(
            f"login {value!r} is not valid: use 1-128 characters without spaces, quotes, "
            "backslashes or control characters."
        )


def _app_from_row(row: dict[str, Any]) -> OAuth2App:
    sealed = row["client_secret"] or row["certificate_key"] or ""
    return OAuth2App(
        id=row["id"],
        name=row["name"],
        provider=row["provider"],
        cloud=row["cloud"],
        login_url=row["login_url"],
        graph_url=row["graph_url"],
        ca_file=row["ca_file"],
        client_id=row["client_id"],
        tenant_id=row["tenant_id"],
        has_client_secret=row["client_secret"] is not None,
        has_certificate=row["certificate_key"] is not None,
        certificate_thumbprint=row["certificate_thumbprint"],
        secret_encrypted=sealed.startswith("v1:"),
        secret_updated_at=row["secret_updated_at"],
        created_at=row["created_at"],
    )


def _account_from_row(row: dict[str, Any]) -> Account:
    return Account(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        app_id=row["app_id"],
        auth_user=row["auth_user"],
        login=row["login"],
        send_as=tuple(json.loads(row["send_as"] or "[]")),
        state=AccountState(row["state"]),
        last_error=row["last_error"],
        last_error_at=row["last_error_at"],
        state_changed_at=row["state_changed_at"],
        mailbox_id=row["mailbox_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _rows(db: sqlite_utils.Database, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cursor = db.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


# --------------------------------------------------------------------------- applications


def create_app(
    db: sqlite_utils.Database,
    *,
    name: str,
    client_id: str,
    tenant_id: str,
    sealer: Sealer,
    cloud: str = "global",
    client_secret: str | None = None,
    certificate_key_pem: str | None = None,
    certificate_thumbprint: str | None = None,
    login_url: str | None = None,
    graph_url: str | None = None,
    ca_file: str | None = None,
    app_id: str | None = None,
) -> OAuth2App:
    """Insert an application. Exactly one of ``client_secret`` or the certificate pair."""
    if cloud not in CLOUDS:
        raise StoreValueError(f"cloud {cloud!r} is unknown: use one of {', '.join(CLOUDS)}.")
    if cloud == "custom" and not (login_url and graph_url):
        raise StoreValueError("a custom cloud needs both login_url and graph_url.")
    if cloud != "custom" and (login_url or graph_url):
        raise StoreValueError("login_url and graph_url are only for cloud 'custom'.")
    has_cert = certificate_key_pem is not None or certificate_thumbprint is not None
    if (client_secret is not None) == has_cert:
        raise StoreValueError(
            "give either a client secret or a certificate (private key and thumbprint), "
            "not both and not neither."
        )
    if has_cert and not (certificate_key_pem and certificate_thumbprint):
        raise StoreValueError("a certificate needs both the private key and its thumbprint.")
    if client_secret is not None and not client_secret:
        raise StoreValueError("the client secret is empty.")
    for label, value in (("name", name), ("client id", client_id), ("tenant id", tenant_id)):
        if not value or not value.strip():
            raise StoreValueError(f"the application's {label} is empty.")
    if tenant_id.strip().lower() in ("common", "organizations", "consumers"):
        # App-only tokens (client credentials) are issued by one directory; the
        # multi-tenant aliases have no directory to ask, so Entra refuses them.
        raise StoreValueError(
            f"tenant {tenant_id!r} cannot be used for app-only access: give the tenant id "
            "(a GUID) or a verified domain such as contoso.onmicrosoft.com."
        )
    app_id = app_id or new_app_id()
    _check_id("application", app_id)
    if db.execute("SELECT 1 FROM oauth2_apps WHERE id = ?", [app_id]).fetchone():
        raise AccountExists(f"an application with id {app_id!r} already exists.")
    now = _now()
    db.execute(
        "INSERT INTO oauth2_apps (id, name, provider, cloud, login_url, graph_url, ca_file,"
        " client_id, tenant_id, client_secret, certificate_key, certificate_thumbprint,"
        " secret_updated_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            app_id,
            name.strip(),
            PROVIDER,
            cloud,
            login_url,
            graph_url,
            ca_file,
            client_id.strip(),
            tenant_id.strip(),
            sealer.encrypt(client_secret) if client_secret is not None else None,
            sealer.encrypt(certificate_key_pem) if certificate_key_pem else None,
            certificate_thumbprint,
            now,
            now,
        ],
    )
    return get_app(db, app_id)


def get_app(db: sqlite_utils.Database, app_id: str) -> OAuth2App:
    rows = _rows(db, "SELECT * FROM oauth2_apps WHERE id = ?", [app_id])
    if not rows:
        raise NotFound(f"no application with id {app_id!r}.")
    return _app_from_row(rows[0])


def list_apps(db: sqlite_utils.Database) -> list[OAuth2App]:
    return [
        _app_from_row(r) for r in _rows(db, "SELECT * FROM oauth2_apps ORDER BY created_at, id")
    ]


def get_app_credentials(db: sqlite_utils.Database, app_id: str, sealer: Sealer) -> AppCredentials:
    """The application with its secret opened; only the Graph token provider needs this."""
    rows = _rows(db, "SELECT * FROM oauth2_apps WHERE id = ?", [app_id])
    if not rows:
        raise NotFound(f"no application with id {app_id!r}.")
    row = rows[0]
    return AppCredentials(
        app=_app_from_row(row),
        client_secret=sealer.decrypt(row["client_secret"]) if row["client_secret"] else None,
        certificate_key_pem=(
            sealer.decrypt(row["certificate_key"]) if row["certificate_key"] else None
        ),
        certificate_thumbprint=row["certificate_thumbprint"],
    )


def update_app(
    db: sqlite_utils.Database,
    app_id: str,
    *,
    sealer: Sealer,
    name: str | None = None,
    client_secret: str | None = None,
    certificate_key_pem: str | None = None,
    certificate_thumbprint: str | None = None,
) -> OAuth2App:
    """Rename an application or rotate its credential (secrets expire; deleting the app
    would mean deleting its accounts). A new secret replaces a certificate and vice versa."""
    get_app(db, app_id)
    has_cert = certificate_key_pem is not None or certificate_thumbprint is not None
    if client_secret is not None and has_cert:
        raise StoreValueError("give either a new client secret or a new certificate, not both.")
    if has_cert and not (certificate_key_pem and certificate_thumbprint):
        raise StoreValueError("a certificate needs both the private key and its thumbprint.")
    changes: dict[str, Any] = {}
    if name is not None:
        if not name.strip():
            raise StoreValueError("the application's name is empty.")
        changes["name"] = name.strip()
    if client_secret is not None:
        if not client_secret:
            raise StoreValueError("the client secret is empty.")
        changes.update(
            client_secret=sealer.encrypt(client_secret),
            certificate_key=None,
            certificate_thumbprint=None,
            secret_updated_at=_now(),
        )
    elif has_cert:
        assert certificate_key_pem is not None
        changes.update(
            client_secret=None,
            certificate_key=sealer.encrypt(certificate_key_pem),
            certificate_thumbprint=certificate_thumbprint,
            secret_updated_at=_now(),
        )
    if changes:
        assignments = ", ".join(f"{column} = ?" for column in changes)
        db.execute(
            f"UPDATE oauth2_apps SET {assignments} WHERE id = ?", [*changes.values(), app_id]
        )
    return get_app(db, app_id)


def delete_app(db: sqlite_utils.Database, app_id: str) -> None:
    get_app(db, app_id)
    used = [r[0] for r in db.execute("SELECT id FROM accounts WHERE app_id = ?", [app_id])]
    if used:
        raise AppInUse(
            f"application {app_id!r} is used by {len(used)} account(s) "
            f"({', '.join(used[:5])}); remove those accounts first."
        )
    db.execute("DELETE FROM oauth2_apps WHERE id = ?", [app_id])


# --------------------------------------------------------------------------- accounts


def create_account(
    db: sqlite_utils.Database,
    *,
    account_id: str,
    app_id: str,
    auth_user: str,
    login: str,
    password_hash: str,
    name: str | None = None,
    email: str | None = None,
    send_as: Sequence[str] = (),
) -> Account:
    """Insert an account in state ``new``. Login names are unique ignoring case."""
    _check_id("account", account_id)
    _check_login(login)
    if not auth_user.strip():
        raise StoreValueError("the mailbox user (auth.user) is empty.")
    get_app(db, app_id)
    if db.execute("SELECT 1 FROM accounts WHERE id = ?", [account_id]).fetchone():
        raise AccountExists(f"an account with id {account_id!r} already exists.")
    if db.execute("SELECT 1 FROM accounts WHERE login_key = ?", [login.casefold()]).fetchone():
        raise AccountExists(f"the login name {login!r} is already used by another account.")
    now = _now()
    db.execute(
        "INSERT INTO accounts (id, name, email, app_id, auth_user, login, login_key,"
        " password_hash, send_as, state, state_changed_at, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            account_id,
            name or email or auth_user.strip(),
            email or (auth_user if "@" in auth_user else ""),
            app_id,
            auth_user.strip(),
            login,
            login.casefold(),
            password_hash,
            json.dumps(list(dict.fromkeys(send_as))),
            AccountState.NEW.value,
            now,
            now,
            now,
        ],
    )
    return get_account(db, account_id)


def get_account(db: sqlite_utils.Database, account_id: str) -> Account:
    rows = _rows(db, "SELECT * FROM accounts WHERE id = ?", [account_id])
    if not rows:
        raise NotFound(f"no account with id {account_id!r}.")
    return _account_from_row(rows[0])


def get_account_by_login(db: sqlite_utils.Database, login: str) -> Account | None:
    record = get_login(db, login)
    return record.account if record else None


def get_login(db: sqlite_utils.Database, login: str) -> LoginRecord | None:
    """The account and password hash for a login name (case-insensitive), or None."""
    rows = _rows(db, "SELECT * FROM accounts WHERE login_key = ?", [login.casefold()])
    if not rows:
        return None
    return LoginRecord(_account_from_row(rows[0]), rows[0]["password_hash"])


def list_accounts(db: sqlite_utils.Database, app_id: str | None = None) -> list[Account]:
    if app_id is None:
        rows = _rows(db, "SELECT * FROM accounts ORDER BY created_at, id")
    else:
        rows = _rows(
            db, "SELECT * FROM accounts WHERE app_id = ? ORDER BY created_at, id", [app_id]
        )
    return [_account_from_row(r) for r in rows]


def update_account(
    db: sqlite_utils.Database,
    account_id: str,
    *,
    name: str | None = None,
    email: str | None = None,
    login: str | None = None,
    send_as: Sequence[str] | None = None,
    auth_user: str | None = None,
) -> Account:
    """Change the given fields (None = keep). A new ``auth_user`` forgets the resolved
    mailbox id and sets the state back to ``new``, since it now names another mailbox."""
    current = get_account(db, account_id)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if email is not None:
        changes["email"] = email
    if login is not None and login != current.login:
        _check_login(login)
        clash = db.execute(
            "SELECT id FROM accounts WHERE login_key = ? AND id != ?",
            [login.casefold(), account_id],
        ).fetchone()
        if clash:
            raise AccountExists(f"the login name {login!r} is already used by another account.")
        changes["login"] = login
        changes["login_key"] = login.casefold()
    if send_as is not None:
        changes["send_as"] = json.dumps(list(dict.fromkeys(send_as)))
    if auth_user is not None and auth_user != current.auth_user:
        if not auth_user.strip():
            raise StoreValueError("the mailbox user (auth.user) is empty.")
        changes.update(
            auth_user=auth_user.strip(),
            mailbox_id=None,
            state=AccountState.NEW.value,
            state_changed_at=_now(),
        )
    if changes:
        changes["updated_at"] = _now()
        assignments = ", ".join(f"{column} = ?" for column in changes)
        db.execute(
            f"UPDATE accounts SET {assignments} WHERE id = ?", [*changes.values(), account_id]
        )
    return get_account(db, account_id)


def set_password_hash(db: sqlite_utils.Database, account_id: str, password_hash: str) -> None:
    get_account(db, account_id)
    db.execute(
        "UPDATE accounts SET password_hash = ?, updated_at = ? WHERE id = ?",
        [password_hash, _now(), account_id],
    )


def set_account_state(
    db: sqlite_utils.Database,
    account_id: str,
    state: AccountState,
    error: str | None = None,
) -> Account:
    """Record a state change. ``error`` (one sentence, no secrets) is kept with its time;
    moving to a healthy state clears it."""
    get_account(db, account_id)
    now = _now()
    if error is not None:
        db.execute(
            "UPDATE accounts SET state = ?, last_error = ?, last_error_at = ?,"
            " state_changed_at = ?, updated_at = ? WHERE id = ?",
            [state.value, error, now, now, now, account_id],
        )
    else:
        healthy = state in (AccountState.CONNECTED, AccountState.NEW, AccountState.CONNECTING)
        db.execute(
            "UPDATE accounts SET state = ?, state_changed_at = ?, updated_at = ?"
            + (", last_error = NULL, last_error_at = NULL" if healthy else "")
            + " WHERE id = ?",
            [state.value, now, now, account_id],
        )
    return get_account(db, account_id)


def set_mailbox_id(db: sqlite_utils.Database, account_id: str, mailbox_id: str) -> Account:
    """Remember the Graph user object id the account's ``auth_user`` resolved to."""
    get_account(db, account_id)
    db.execute(
        "UPDATE accounts SET mailbox_id = ?, updated_at = ? WHERE id = ?",
        [mailbox_id, _now(), account_id],
    )
    return get_account(db, account_id)


def delete_account(db: sqlite_utils.Database, account_id: str) -> None:
    get_account(db, account_id)
    db.execute("DELETE FROM accounts WHERE id = ?", [account_id])


# --------------------------------------------------------------------------- async helpers


async def authenticate(
    store: Store,
    login: str,
    password: str,
    *,
    verify: Callable[[str, str | None], bool],
) -> Account | None:
    """The account for ``login`` if ``password`` is right, else None.

    ``verify`` is ``bridge.secrets.verify_password_or_dummy``: it is handed in because
    the store may not import the bridge's crypto, and it must spend the same time on an
    unknown login as on a wrong password. The hash check runs in a worker thread.
    """
    record = await store.read(lambda db: get_login(db, login))
    stored = record.password_hash if record else None
    ok = await asyncio.to_thread(verify, password, stored)
    return record.account if ok and record else None


async def fetch_accounts(store: Store, app_id: str | None = None) -> list[Account]:
    return await store.read(lambda db: list_accounts(db, app_id))


async def fetch_account(store: Store, account_id: str) -> Account:
    return await store.read(lambda db: get_account(db, account_id))


async def fetch_app_credentials(store: Store, app_id: str, sealer: Sealer) -> AppCredentials:
    return await store.read(lambda db: get_app_credentials(db, app_id, sealer))


async def record_state(
    store: Store, account_id: str, state: AccountState, error: str | None = None
) -> Account:
    return await store.write(lambda db: set_account_state(db, account_id, state, error))
