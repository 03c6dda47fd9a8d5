"""Applications and accounts in the store; password hashes; secrets sealed at rest."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.secrets import (
    SecretBox,
    SecretBoxError,
    decode_key,
    generate_key,
    generate_password,
    hash_password,
    verify_password,
    verify_password_or_dummy,
)
from bridge.store import Store
from bridge.store import accounts as acc

CLIENT_SECRET = "Qx8~client-secret-for-tests-6f1c"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(tmp_path / "bridge.db")
    yield store
    await store.close()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(decode_key(generate_key()))


async def _app(store: Store, sealer: SecretBox, **extra: object) -> acc.OAuth2App:
    fields: dict[str, object] = {
        "name": "Contoso",
        "client_id": "00000000-0000-0000-0000-000000000001",
        "tenant_id": "contoso.onmicrosoft.com",
        "client_secret": CLIENT_SECRET,
    }
    fields.update(extra)
    return await store.write(lambda db: acc.create_app(db, sealer=sealer, **fields))  # type: ignore[arg-type]


async def _account(store: Store, app_id: str, account_id: str, login: str) -> acc.Account:
    password_hash = hash_password("correct horse battery", n=2**10)
    return await store.write(
        lambda db: acc.create_account(
            db,
            account_id=account_id,
            app_id=app_id,
            auth_user=f"{account_id}@contoso.com",
            login=login,
            password_hash=password_hash,
            send_as=["Sales@contoso.com"],
        )
    )


async def test_migrations_create_the_tables_once(tmp_path: Path) -> None:
    first = await Store.open(tmp_path / "b.db")
    await first.close()
    again = await Store.open(tmp_path / "b.db")
    version = await again.read(
        lambda db: db.execute(
            "SELECT version FROM schema_versions WHERE component = 'accounts'"
        ).fetchone()[0]
    )
    tables = await again.read(lambda db: set(db.table_names()))
    await again.close()
    assert version == 1
    assert {"oauth2_apps", "accounts"} <= tables


async def test_application_crud(store: Store, box: SecretBox) -> None:
    app = await _app(store, box)
    assert len(app.id) >= 8 and app.provider == "outlookService" and app.cloud == "global"
    assert app.has_client_secret and not app.has_certificate and app.secret_encrypted
    assert CLIENT_SECRET not in repr(app)
    assert await store.read(acc.list_apps) == [app]
    creds = await acc.fetch_app_credentials(store, app.id, box)
    assert creds.client_secret == CLIENT_SECRET and CLIENT_SECRET not in repr(creds)
    await store.write(lambda db: acc.delete_app(db, app.id))
    with pytest.raises(acc.NotFound):
        await store.read(lambda db: acc.get_app(db, app.id))


async def test_application_validation(store: Store, box: SecretBox) -> None:
    with pytest.raises(acc.StoreValueError, match="common"):
        await _app(store, box, tenant_id="common")
    with pytest.raises(acc.StoreValueError, match="custom cloud"):
        await _app(store, box, cloud="custom")
    with pytest.raises(acc.StoreValueError, match="either a client secret or a certificate"):
        await _app(store, box, certificate_key_pem="PEM", certificate_thumbprint="AB")
    with pytest.raises(acc.StoreValueError, match="unknown"):
        await _app(store, box, cloud="mars")
    custom = await _app(
        store, box, cloud="custom", login_url="https://127.0.0.1:1", graph_url="https://127.0.0.1:2"
    )
    assert custom.login_url == "https://127.0.0.1:1"
    cert = await _app(
        store,
        box,
        client_secret=None,
        certificate_key_pem="-----BEGIN PRIVATE KEY-----x",
        certificate_thumbprint="AB12",
    )
    assert cert.credential_kind == "certificate" and cert.certificate_thumbprint == "AB12"
    creds = await acc.fetch_app_credentials(store, cert.id, box)
    assert creds.certificate_key_pem == "-----BEGIN PRIVATE KEY-----x"


async def test_account_crud_and_states(store: Store, box: SecretBox) -> None:
    app = await _app(store, box)
    account = await _account(store, app.id, "alice", "Alice")
    assert account.state is acc.AccountState.NEW
    assert account.email == "alice@contoso.com" and account.send_as == ("Sales@contoso.com",)
    assert account.may_send_as("sales@CONTOSO.com") and not account.may_send_as("x@contoso.com")

    failed = await acc.record_state(
        store, "alice", acc.AccountState.CONNECT_ERROR, "Graph could not be reached."
    )
    assert failed.state is acc.AccountState.CONNECT_ERROR
    assert failed.last_error == "Graph could not be reached." and failed.last_error_at
    healthy = await acc.record_state(store, "alice", acc.AccountState.CONNECTED)
    assert healthy.state is acc.AccountState.CONNECTED and healthy.last_error is None

    resolved = await store.write(lambda db: acc.set_mailbox_id(db, "alice", "object-id-1"))
    assert resolved.mailbox_id == "object-id-1"
    moved = await store.write(
        lambda db: acc.update_account(db, "alice", auth_user="bob@contoso.com", name="A")
    )
    # Another mailbox: the resolved id is forgotten and the state starts over.
    assert moved.mailbox_id is None and moved.state is acc.AccountState.NEW and moved.name == "A"

    with pytest.raises(acc.AppInUse):
        await store.write(lambda db: acc.delete_app(db, app.id))
    await store.write(lambda db: acc.delete_account(db, "alice"))
    assert await acc.fetch_accounts(store) == []
    with pytest.raises(acc.NotFound):
        await acc.fetch_account(store, "alice")


async def test_logins_are_unique_ignoring_case(store: Store, box: SecretBox) -> None:
    app = await _app(store, box)
    await _account(store, app.id, "alice", "Alice@Contoso.com")
    with pytest.raises(acc.AccountExists, match="login name"):
        await _account(store, app.id, "alice2", "alice@contoso.COM")
    with pytest.raises(acc.AccountExists, match="account with id"):
        await _account(store, app.id, "alice", "other")
    bob = await _account(store, app.id, "bob", "bob")
    with pytest.raises(acc.AccountExists):
        await store.write(lambda db: acc.update_account(db, bob.id, login="ALICE@contoso.com"))
    with pytest.raises(acc.StoreValueError, match="login"):
        await _account(store, app.id, "carol", "has space")
    found = await store.read(lambda db: acc.get_account_by_login(db, "ALICE@CONTOSO.COM"))
    assert found is not None and found.id == "alice"


async def test_authenticate(store: Store, box: SecretBox) -> None:
    app = await _app(store, box)
    await _account(store, app.id, "alice", "alice")
    ok = await acc.authenticate(
        store, "ALICE", "correct horse battery", verify=verify_password_or_dummy
    )
    assert ok is not None and ok.id == "alice"
    wrong = await acc.authenticate(store, "alice", "wrong", verify=verify_password_or_dummy)
    assert wrong is None
    seen: list[str | None] = []

    def spy(password: str, stored: str | None) -> bool:
        seen.append(stored)
        return verify_password_or_dummy(password, stored)

    # An unknown login still goes through the verifier (same work, no early return).
    assert await acc.authenticate(store, "nobody", "x", verify=spy) is None
    assert seen == [None]


def test_password_hash_format_and_verify() -> None:
    stored = hash_password("pässwörd-1")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert len(base64.urlsafe_b64decode(digest + "==")) == 32
    assert (scheme, n, r, p) == ("scrypt", str(2**15), "8", "1")
    assert len(base64.urlsafe_b64decode(salt + "==")) == 16
    assert verify_password("pässwörd-1", stored)
    assert not verify_password("pässwörd-2", stored)
    assert hash_password("pässwörd-1") != stored  # fresh salt each time
    assert not verify_password("x", "garbage")
    assert not verify_password("x", "scrypt$1$2$3$%%%$%%%")
    assert not verify_password_or_dummy("anything", None)


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    import bridge.secrets as secrets_module

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(secrets_module.hmac, "compare_digest", spy)
    stored = hash_password("pw-123456", n=2**10)
    assert not verify_password("pw-654321", stored)
    assert len(calls) == 1 and len(calls[0][0]) == len(calls[0][1]) == 32
    expected = hashlib.scrypt(
        b"pw-654321",
        salt=base64.urlsafe_b64decode(stored.split("$")[4] + "=="),
        n=2**10,
        r=8,
        p=1,
        dklen=32,
    )
    assert calls[0][0] == expected


def test_generated_passwords_are_strong() -> None:
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) == 20
        assert all(c.isalnum() or c in "-_" for c in password)


def test_secret_box_round_trip_and_failures() -> None:
    key = decode_key(generate_key())
    box = SecretBox(key)
    sealed = box.encrypt("hello")
    assert sealed.startswith("v1:") and "hello" not in sealed
    assert box.encrypt("hello") != sealed  # random nonce
    assert box.decrypt(sealed) == "hello"
    with pytest.raises(SecretBoxError, match="cannot be decrypted"):
        SecretBox(decode_key(generate_key())).decrypt(sealed)
    with pytest.raises(SecretBoxError, match="no encryption key"):
        SecretBox(None).decrypt(sealed)
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretBoxError):
        box.decrypt(tampered)
    clear = SecretBox(None).encrypt("hello")
    assert clear == "plain:hello" and box.decrypt(clear) == "hello"
    with pytest.raises(ValueError, match="32 bytes"):
        decode_key(base64.b64encode(b"short").decode())
    assert repr(box) == "SecretBox(encrypting=True)"


async def test_raw_database_file_never_holds_the_secret_when_a_key_is_set(
    tmp_path: Path, box: SecretBox
) -> None:
    store = await Store.open(tmp_path / "enc.db")
    app = await _app(store, box)
    creds = await acc.fetch_app_credentials(store, app.id, box)
    await store.close()
    assert creds.client_secret == CLIENT_SECRET
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("enc.db"))
    assert CLIENT_SECRET.encode() not in raw
    column = (
        sqlite3.connect(tmp_path / "enc.db")
        .execute("SELECT client_secret FROM oauth2_apps")
        .fetchone()[0]
    )
    assert column.startswith("v1:")


async def test_without_a_key_the_secret_is_stored_marked_plain(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "plain.db")
    app = await _app(store, SecretBox(None))
    await store.close()
    assert not app.secret_encrypted
    column = (
        sqlite3.connect(tmp_path / "plain.db")
        .execute("SELECT client_secret FROM oauth2_apps")
        .fetchone()[0]
    )
    assert column == "plain:" + CLIENT_SECRET


def test_generated_ids_never_look_like_options() -> None:
    ids = {acc.new_app_id() for _ in range(300)}
    assert len(ids) == 300
    assert all(i[0].isalnum() and len(i) == 11 for i in ids)


async def test_rotate_credentials(store: Store, box: SecretBox) -> None:
    app = await _app(store, box)
    rotated = await store.write(
        lambda db: acc.update_app(db, app.id, sealer=box, client_secret="new-secret-value-1")
    )
    creds = await acc.fetch_app_credentials(store, app.id, box)
    assert creds.client_secret == "new-secret-value-1" and rotated.secret_encrypted
    assert rotated.secret_updated_at is not None
    to_cert = await store.write(
        lambda db: acc.update_app(
            db, app.id, sealer=box, certificate_key_pem="PEM-KEY", certificate_thumbprint="AA"
        )
    )
    assert to_cert.has_certificate and not to_cert.has_client_secret
    renamed = await store.write(lambda db: acc.update_app(db, app.id, sealer=box, name="New"))
    assert renamed.name == "New" and renamed.has_certificate
    with pytest.raises(acc.StoreValueError, match="not both"):
        await store.write(
            lambda db: acc.update_app(
                db,
                app.id,
                sealer=box,
                client_secret="x",
                certificate_key_pem="k",
                certificate_thumbprint="t",
            )
        )
