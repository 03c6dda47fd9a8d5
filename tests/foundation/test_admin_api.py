"""The admin HTTP API over a real aiohttp test server: auth, every route, error shapes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.config import default_config, secret_box
from bridge.http import make_http_app
from bridge.secrets import verify_password
from bridge.store import Store
from bridge.store import accounts as acc

TOKEN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLIENT_SECRET = "api~client-secret-value-9d8c7b"


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


class Harness:
    def __init__(self, client: TestClient, store: Store, added: list[acc.Account]) -> None:
        self.client, self.store, self.added = client, store, added

    async def call(
        self, method: str, path: str, body: Any = None, *, auth: bool = True
    ) -> tuple[int, Any]:
        headers = AUTH if auth else {}
        async with self.client.request(method, path, json=body, headers=headers) as response:
            return response.status, await response.json()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Harness]:
    config = default_config(tmp_path)
    store = await Store.open(config.database_path)
    added: list[acc.Account] = []
    hook_ran = asyncio.Event()

    async def on_added(account: acc.Account) -> None:
        added.append(account)
        hook_ran.set()

    app = make_http_app(
        store,
        config,
        admin_token=TOKEN,
        extra_routes=[web.get("/health", _health)],
        on_account_added=on_added,
    )
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    harness = Harness(client, store, added)
    harness.hook_ran = hook_ran  # type: ignore[attr-defined]
    yield harness
    await client.close()
    await store.close()


async def _add_app(api: Harness, **extra: Any) -> str:
    body = {
        "name": "Contoso",
        "provider": "outlookService",
        "clientId": "client-1",
        "clientSecret": CLIENT_SECRET,
        "authority": "contoso.onmicrosoft.com",
    }
    body.update(extra)
    status, data = await api.call("POST", "/v1/oauth2", body)
    assert status == 200, data
    return str(data["id"])


async def test_auth_is_required(api: Harness) -> None:
    for method, path in [
        ("GET", "/v1/oauth2"),
        ("POST", "/v1/oauth2"),
        ("GET", "/v1/accounts"),
        ("DELETE", "/v1/account/x"),
        ("GET", "/v1/nothing-here"),
    ]:
        status, data = await api.call(method, path, auth=False)
        assert status == 401
        assert data["error"] == "Unauthorized" and data["statusCode"] == 401
    for header in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "):
        async with api.client.get("/v1/accounts", headers={"Authorization": header}) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # Routes mounted beside the API are not behind the token.
    async with api.client.get("/health") as resp:
        assert resp.status == 200 and await resp.json() == {"ok": True}


async def test_oauth2_routes(api: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app_id = await _add_app(api)
    status, listed = await api.call("GET", "/v1/oauth2")
    assert status == 200 and listed["total"] == 1
    (app,) = listed["apps"]
    assert app["id"] == app_id and app["authority"] == "contoso.onmicrosoft.com"
    assert app["provider"] == "outlookService" and app["credential"] == "secret"
    status, one = await api.call("GET", f"/v1/oauth2/{app_id}")
    assert status == 200 and one == app
    assert CLIENT_SECRET not in str(listed) + str(one)
    assert "application added" in caplog.text and CLIENT_SECRET not in caplog.text

    status, updated = await api.call(
        "PUT", f"/v1/oauth2/{app_id}", {"name": "Renamed", "clientSecret": "rotated-secret-42"}
    )
    assert status == 200 and updated["app"]["name"] == "Renamed"
    assert "rotated-secret-42" not in str(updated) + caplog.text
    creds = await acc.fetch_app_credentials(
        api.store, app_id, secret_box(default_config(Path("/unused")))
    )
    assert creds.client_secret == "rotated-secret-42"

    status, deleted = await api.call("DELETE", f"/v1/oauth2/{app_id}")
    assert (status, deleted) == (200, {"id": app_id, "deleted": True})
    status, error = await api.call("GET", f"/v1/oauth2/{app_id}")
    assert status == 404
    assert error == {
        "error": "NotFound",
        "message": f"no application with id {app_id!r}.",
        "statusCode": 404,
    }


async def test_oauth2_validation_errors(api: Harness) -> None:
    status, data = await api.call("POST", "/v1/oauth2", {"name": "x"})
    assert status == 400 and data["error"] == "InputValidationError"
    assert data["message"] == '"clientId" is required.'
    status, data = await api.call(
        "POST",
        "/v1/oauth2",
        {"name": "x", "clientId": "c", "authority": "common", "clientSecret": CLIENT_SECRET},
    )
    assert status == 400 and "tenant 'common'" in data["message"]
    assert CLIENT_SECRET not in data["message"]
    status, data = await api.call(
        "POST", "/v1/oauth2", {"name": "x", "provider": "gmail", "clientId": "c"}
    )
    assert status == 400 and "outlookService" in data["message"]
    async with api.client.post("/v1/oauth2", data=b"{not json", headers=AUTH) as resp:
        body = await resp.json()
        assert resp.status == 400 and body["message"] == "the request body is not valid JSON."
    status, data = await api.call("POST", "/v1/oauth2", ["a", "list"])
    assert status == 400 and data["message"] == "the request body must be a JSON object."


async def test_account_lifecycle(api: Harness) -> None:
    app_id = await _add_app(api)
    body = {
        "account": "alice",
        "name": "Alice",
        "email": "alice@contoso.com",
        "oauth2": {"provider": app_id, "auth": {"user": "alice@contoso.com"}},
        "sendAs": ["sales@contoso.com"],
    }
    status, created = await api.call("POST", "/v1/account", body)
    assert status == 200, created
    assert created["account"] == "alice" and created["state"] == "new"
    credentials = created["credentials"]
    assert credentials["login"] == "alice@contoso.com" and len(credentials["password"]) == 20
    await asyncio.wait_for(api.hook_ran.wait(), 10)  # type: ignore[attr-defined]
    assert [a.id for a in api.added] == ["alice"]

    record = await api.store.read(lambda db: acc.get_login(db, "alice@contoso.com"))
    assert record is not None and verify_password(credentials["password"], record.password_hash)

    status, listed = await api.call("GET", "/v1/accounts")
    assert status == 200 and listed["total"] == 1
    status, one = await api.call("GET", "/v1/account/alice")
    assert status == 200 and one == listed["accounts"][0]
    assert one["oauth2"] == {"provider": app_id, "auth": {"user": "alice@contoso.com"}}
    assert one["sendAs"] == ["sales@contoso.com"] and one["state"] == "new"
    assert credentials["password"] not in str(listed) + str(one)

    status, updated = await api.call(
        "PUT", "/v1/account/alice", {"name": "Alice B", "sendAs": [], "login": "alice"}
    )
    assert (status, updated) == (200, {"account": "alice", "state": "new"})
    status, one = await api.call("GET", "/v1/account/alice")
    assert (one["name"], one["sendAs"], one["login"]) == ("Alice B", [], "alice")

    status, conflict = await api.call("DELETE", f"/v1/oauth2/{app_id}")
    assert status == 409 and conflict["error"] == "Conflict" and "alice" in conflict["message"]

    status, deleted = await api.call("DELETE", "/v1/account/alice")
    assert (status, deleted) == (200, {"account": "alice", "deleted": True})
    status, missing = await api.call("GET", "/v1/account/alice")
    assert status == 404 and missing["statusCode"] == 404


async def test_account_errors(api: Harness) -> None:
    app_id = await _add_app(api)
    status, data = await api.call("POST", "/v1/account", {"account": "a", "oauth2": {}})
    assert status == 400 and '"oauth2"' in data["message"]
    status, data = await api.call(
        "POST",
        "/v1/account",
        {"account": "a", "oauth2": {"provider": "nope", "auth": {"user": "u"}}},
    )
    assert status == 404 and data["message"] == "no application with id 'nope'."
    good = {"account": "a", "oauth2": {"provider": app_id, "auth": {"user": "a@contoso.com"}}}
    assert (await api.call("POST", "/v1/account", good))[0] == 200
    status, data = await api.call("POST", "/v1/account", good)
    assert status == 409 and data["error"] == "Conflict"
    same_login = {**good, "account": "b", "login": "A@CONTOSO.COM"}
    status, data = await api.call("POST", "/v1/account", same_login)
    assert status == 409 and "login name" in data["message"]
    status, data = await api.call("PUT", "/v1/account/a", {"sendAs": "not-a-list"})
    assert status == 400 and data["message"] == '"sendAs" must be a list of strings.'
    status, data = await api.call(
        "PUT", "/v1/account/a", {"oauth2": {"provider": "other", "auth": {"user": "x"}}}
    )
    assert status == 400 and "another application" in data["message"]
    status, data = await api.call("PUT", "/v1/account/zzz", {"name": "n"})
    assert status == 404
    status, data = await api.call("PATCH", "/v1/account/a", {})
    assert status == 405 and data["error"] == "MethodNotAllowed"


async def test_new_mailbox_user_resets_state(api: Harness) -> None:
    app_id = await _add_app(api)
    body = {"account": "s", "oauth2": {"provider": app_id, "auth": {"user": "s@contoso.com"}}}
    await api.call("POST", "/v1/account", body)
    await acc.record_state(api.store, "s", acc.AccountState.CONNECTED)
    status, data = await api.call(
        "PUT", "/v1/account/s", {"oauth2": {"auth": {"user": "shared@contoso.com"}}}
    )
    assert (status, data["state"]) == (200, "new")
    status, one = await api.call("GET", "/v1/account/s")
    assert one["oauth2"]["auth"]["user"] == "shared@contoso.com"


def test_short_admin_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="16 characters"):
        make_http_app(None, default_config(tmp_path), admin_token="short")  # type: ignore[arg-type]
