"""The admin API (``/v1/...``): OAuth2 applications and accounts over JSON, EmailEngine-like.

Routes (all under a bearer token, compared in constant time):

====== ============================ ==================================================
GET    /v1/oauth2                   list applications (never their secrets)
POST   /v1/oauth2                   register an application
GET    /v1/oauth2/{app}             one application
PUT    /v1/oauth2/{app}             rename, or rotate the client secret / certificate
DELETE /v1/oauth2/{app}             remove an application without accounts
POST   /v1/account                  add an account; answers the local password once
GET    /v1/accounts                 list accounts
GET    /v1/account/{id}             one account
PUT    /v1/account/{id}             change name, email, login, sendAs, oauth2.auth.user
DELETE /v1/account/{id}             remove an account
====== ============================ ==================================================

Errors are ``{"error": code, "message": sentence, "statusCode": n}``; the sentence never
contains a secret or internal exception text.

May import aiohttp, ``bridge.store``, ``bridge.secrets``, ``bridge.config`` and
``bridge.errors``.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bridge.config import Config, secret_box
from bridge.logsetup import register_secret
from bridge.secrets import SecretBox, SecretBoxError, generate_password, hash_password
from bridge.store import accounts as acc
from bridge.store.db import Store

log = logging.getLogger(__name__)

AccountHook = Callable[["acc.Account"], Awaitable[None] | None]
AppHook = Callable[["acc.OAuth2App"], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class AdminContext:
    store: Store
    config: Config
    token: bytes
    sealer: SecretBox
    on_account_added: AccountHook | None
    on_account_updated: AccountHook | None
    on_account_removed: AccountHook | None
    on_app_updated: AppHook | None


ADMIN: web.AppKey[AdminContext] = web.AppKey("bridge.admin", AdminContext)
_TASKS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("bridge.admin.tasks")


class ApiError(Exception):
    """An error answered as JSON with ``status`` and a machine-readable ``code``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"error": code, "message": message, "statusCode": status}, status=status
    )


_STATUS_CODES = {
    400: "InputValidationError",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
}


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every /v1 failure becomes the JSON error shape; other paths keep their own."""
    if not request.path.startswith("/v1/") and request.path != "/v1":
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except acc.NotFound as exc:
        return error_response(404, "NotFound", str(exc))
    except (acc.AccountExists, acc.AppInUse) as exc:
        return error_response(409, "Conflict", str(exc))
    except acc.StoreValueError as exc:
        return error_response(400, "InputValidationError", str(exc))
    except SecretBoxError as exc:
        return error_response(500, "SecretUnavailable", str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "HttpError")
        return error_response(exc.status, code, f"{exc.reason}.")
    except Exception:
        log.exception("admin API request failed", extra={"path": request.path})
        return error_response(500, "InternalError", "the request failed; see the bridge's log.")


@web.middleware
async def _auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bearer token on /v1 only: webhooks, /metrics and /health are mounted unauthenticated."""
    if not request.path.startswith("/v1/") and request.path != "/v1":
        return await handler(request)
    expected = request.app[ADMIN].token
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    # hmac.compare_digest: the time taken does not reveal how much of the token matched.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        response = error_response(
            401,
            "Unauthorized",
            "a valid admin token is required: send 'Authorization: Bearer <token>' "
            "(the token is admin.token in the config, or the admin-token file in state_dir).",
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="graph-mail-bridge"'
        return response
    return await handler(request)


# --------------------------------------------------------------------------- JSON shapes


def app_json(app: acc.OAuth2App) -> dict[str, Any]:
    """An application as the API shows it: never a secret, only what kind it has."""
    return {
        "id": app.id,
        "name": app.name,
        "provider": app.provider,
        "cloud": app.cloud,
        "authority": app.tenant_id,
        "clientId": app.client_id,
        "loginUrl": app.login_url,
        "graphUrl": app.graph_url,
        "caFile": app.ca_file,
        "credential": app.credential_kind,
        "certificateThumbprint": app.certificate_thumbprint,
        "secretEncrypted": app.secret_encrypted,
        "secretUpdated": app.secret_updated_at,
        "created": app.created_at,
    }


def account_json(account: acc.Account) -> dict[str, Any]:
    return {
        "account": account.id,
        "name": account.name,
        "email": account.email,
        "oauth2": {"provider": account.app_id, "auth": {"user": account.auth_user}},
        "login": account.login,
        "sendAs": list(account.send_as),
        "state": account.state.value,
        "lastError": (
            {"message": account.last_error, "time": account.last_error_at}
            if account.last_error
            else None
        ),
        "mailboxId": account.mailbox_id,
        "stateChanged": account.state_changed_at,
        "created": account.created_at,
        "updated": account.updated_at,
    }


# --------------------------------------------------------------------------- input helpers


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "InputValidationError", "the request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "InputValidationError", "the request body must be a JSON object.")
    return data


def _str(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ApiError(400, "InputValidationError", f'"{key}" is required.')
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "InputValidationError", f'"{key}" must be a non-empty string.')
    return value


def _str_list(data: dict[str, Any], key: str) -> list[str] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ApiError(400, "InputValidationError", f'"{key}" must be a list of strings.')
    return value


async def _run_hook(request: web.Request, hook: Callable[[Any], Any] | None, item: Any) -> None:
    """Call a lifecycle hook; a coroutine runs in the background so the response is not
    held up by Graph (resolving a mailbox can take seconds)."""
    if hook is None:
        return
    result = hook(item)
    if inspect.isawaitable(result):
        tasks = request.app[_TASKS]

        async def runner() -> None:
            try:
                await result
            except Exception:
                log.exception("admin API hook failed", extra={"id": getattr(item, "id", "")})

        task = asyncio.get_running_loop().create_task(runner())
        tasks.add(task)
        task.add_done_callback(tasks.discard)


# --------------------------------------------------------------------------- handlers


async def list_apps(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    apps = await ctx.store.read(acc.list_apps)
    return web.json_response(
        {"total": len(apps), "page": 0, "pages": 1, "apps": [app_json(a) for a in apps]}
    )


async def create_app(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    data = await _body(request)
    provider = data.get("provider", acc.PROVIDER)
    if provider != acc.PROVIDER:
        raise ApiError(
            400, "InputValidationError", f'"provider" must be "{acc.PROVIDER}" (Microsoft Graph).'
        )
    secret = _str(data, "clientSecret")
    cert_key = _str(data, "certificateKey")
    for value in (secret, cert_key):
        register_secret(value)
    name = _str(data, "name", required=True) or ""
    client_id = _str(data, "clientId", required=True) or ""
    tenant_id = _str(data, "authority", required=True) or ""
    cloud = _str(data, "cloud") or "global"
    thumbprint = _str(data, "certificateThumbprint")
    login_url, graph_url = _str(data, "loginUrl"), _str(data, "graphUrl")
    ca_file, wanted_id = _str(data, "caFile"), _str(data, "id")
    app = await ctx.store.write(
        lambda db: acc.create_app(
            db,
            name=name,
            client_id=client_id,
            tenant_id=tenant_id,
            sealer=ctx.sealer,
            cloud=cloud,
            client_secret=secret,
            certificate_key_pem=cert_key,
            certificate_thumbprint=thumbprint,
            login_url=login_url,
            graph_url=graph_url,
            ca_file=ca_file,
            app_id=wanted_id,
        )
    )
    log.info("application added", extra={"app": app.id, "cloud": app.cloud})
    return web.json_response({"id": app.id, "created": True, "app": app_json(app)})


async def get_app(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    app_id = request.match_info["app"]
    app = await ctx.store.read(lambda db: acc.get_app(db, app_id))
    return web.json_response(app_json(app))


async def update_app(request: web.Request) -> web.Response:
    """Rename or rotate the credential (a new secret, or a new certificate)."""
    ctx = request.app[ADMIN]
    app_id = request.match_info["app"]
    data = await _body(request)
    secret, cert_key = _str(data, "clientSecret"), _str(data, "certificateKey")
    for value in (secret, cert_key):
        register_secret(value)
    name, thumbprint = _str(data, "name"), _str(data, "certificateThumbprint")
    app = await ctx.store.write(
        lambda db: acc.update_app(
            db,
            app_id,
            sealer=ctx.sealer,
            name=name,
            client_secret=secret,
            certificate_key_pem=cert_key,
            certificate_thumbprint=thumbprint,
        )
    )
    log.info("application updated", extra={"app": app.id})
    await _run_hook(request, ctx.on_app_updated, app)
    return web.json_response({"id": app.id, "updated": True, "app": app_json(app)})


async def delete_app(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    app_id = request.match_info["app"]
    await ctx.store.write(lambda db: acc.delete_app(db, app_id))
    log.info("application removed", extra={"app": app_id})
    return web.json_response({"id": app_id, "deleted": True})


async def create_account(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    data = await _body(request)
    oauth2 = data.get("oauth2")
    if not isinstance(oauth2, dict) or not isinstance(oauth2.get("auth"), dict):
        raise ApiError(
            400,
            "InputValidationError",
            '"oauth2" must be {"provider": "<application id>", "auth": {"user": "<mailbox>"}}.',
        )
    app_id = _str(oauth2, "provider", required=True)
    user = _str(oauth2["auth"], "user", required=True)
    assert app_id is not None and user is not None
    account_id = _str(data, "account") or acc.new_app_id()
    email = _str(data, "email") or (user if "@" in user else None)
    login = _str(data, "login") or email or account_id
    send_as = _str_list(data, "sendAs") or []
    given_password = _str(data, "password")
    password = given_password or generate_password()
    register_secret(password)
    password_hash = await asyncio.to_thread(hash_password, password)
    account = await ctx.store.write(
        lambda db: acc.create_account(
            db,
            account_id=account_id,
            app_id=app_id,
            auth_user=user,
            login=login,
            password_hash=password_hash,
            name=_str(data, "name"),
            email=email,
            send_as=send_as,
        )
    )
    log.info("account added", extra={"account": account.id, "app": app_id})
    await _run_hook(request, ctx.on_account_added, account)
    credentials: dict[str, str] = {"login": account.login}
    if given_password is None:
        # The only time the generated password is ever shown; only its hash is kept.
        credentials["password"] = password
    return web.json_response(
        {"account": account.id, "state": account.state.value, "credentials": credentials}
    )


async def list_accounts(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    accounts = await ctx.store.read(acc.list_accounts)
    return web.json_response(
        {
            "total": len(accounts),
            "page": 0,
            "pages": 1,
            "accounts": [account_json(a) for a in accounts],
        }
    )


async def get_account(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    account_id = request.match_info["id"]
    account = await ctx.store.read(lambda db: acc.get_account(db, account_id))
    return web.json_response(account_json(account))


async def update_account(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    account_id = request.match_info["id"]
    data = await _body(request)
    user: str | None = None
    oauth2 = data.get("oauth2")
    if oauth2 is not None:
        if not isinstance(oauth2, dict) or not isinstance(oauth2.get("auth", {}), dict):
            raise ApiError(400, "InputValidationError", '"oauth2" must be {"auth": {"user": ...}}.')
        if oauth2.get("provider") is not None:
            current = await ctx.store.read(lambda db: acc.get_account(db, account_id))
            if oauth2["provider"] != current.app_id:
                raise ApiError(
                    400,
                    "InputValidationError",
                    "an account cannot move to another application; remove it and add it again.",
                )
        user = _str(oauth2.get("auth", {}), "user")
    name, email, login = _str(data, "name"), _str(data, "email"), _str(data, "login")
    send_as = _str_list(data, "sendAs")
    account = await ctx.store.write(
        lambda db: acc.update_account(
            db, account_id, name=name, email=email, login=login, send_as=send_as, auth_user=user
        )
    )
    log.info("account updated", extra={"account": account.id})
    await _run_hook(request, ctx.on_account_updated, account)
    return web.json_response({"account": account.id, "state": account.state.value})


async def delete_account(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    account_id = request.match_info["id"]
    account = await ctx.store.read(lambda db: acc.get_account(db, account_id))
    await ctx.store.write(lambda db: acc.delete_account(db, account_id))
    log.info("account removed", extra={"account": account_id})
    await _run_hook(request, ctx.on_account_removed, account)
    return web.json_response({"account": account_id, "deleted": True})


ADMIN_ROUTES = [
    web.get("/v1/oauth2", list_apps),
    web.post("/v1/oauth2", create_app),
    web.get("/v1/oauth2/{app}", get_app),
    web.put("/v1/oauth2/{app}", update_app),
    web.delete("/v1/oauth2/{app}", delete_app),
    web.post("/v1/account", create_account),
    web.get("/v1/accounts", list_accounts),
    web.get("/v1/account/{id}", get_account),
    web.put("/v1/account/{id}", update_account),
    web.delete("/v1/account/{id}", delete_account),
]


async def _cancel_hooks(app: web.Application) -> None:
    pending: set[asyncio.Task[None]] = app[_TASKS]
    tasks = list(pending)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def make_http_app(
    store: Store,
    config: Config,
    *,
    admin_token: str,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    on_account_added: AccountHook | None = None,
    on_account_updated: AccountHook | None = None,
    on_account_removed: AccountHook | None = None,
    on_app_updated: AppHook | None = None,
    sealer: SecretBox | None = None,
) -> web.Application:
    """The one aiohttp application of the HTTP listener.

    The admin API lives under ``/v1`` behind ``admin_token``. Everything else — webhooks,
    ``/metrics``, ``/health`` — is added by the composition root, unauthenticated: pass
    ``extra_routes`` (``web.get(...)``, ``web.post(...)``), or call ``app.router.add_*`` /
    ``app.add_subapp(prefix, sub)`` on the returned app before it starts.
    ``on_account_*`` hooks receive the ``Account`` after the change is committed;
    ``on_app_updated`` the ``OAuth2App`` after a rename or credential rotation (drop any
    cached token client for it). Coroutine hooks run in the background.
    """
    if len(admin_token) < 16:
        raise ValueError("the admin token must be at least 16 characters")
    register_secret(admin_token)
    app = web.Application(middlewares=[_errors, _auth], client_max_size=4 * 1024 * 1024)
    app[ADMIN] = AdminContext(
        store=store,
        config=config,
        token=admin_token.encode(),
        sealer=sealer if sealer is not None else secret_box(config),
        on_account_added=on_account_added,
        on_account_updated=on_account_updated,
        on_account_removed=on_account_removed,
        on_app_updated=on_app_updated,
    )
    app[_TASKS] = set()
    app.on_cleanup.append(_cancel_hooks)
    app.add_routes(ADMIN_ROUTES)
    app.add_routes(list(extra_routes))
    return app
