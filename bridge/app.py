"""Composition root: builds the store, Graph apps, per-account backends and sync engines,
the IMAP, SMTP and HTTP listeners; runs them; stops them cleanly.

Lifecycle of ``serve``: load config → logging → open the store → start listeners (so
clients can connect at once; an account that is still syncing answers from what is
cached) → start every account's sync in the background → READY=1 to systemd → wait for
SIGTERM/SIGINT (graceful stop: ``* BYE`` to IMAP clients, SMTP sessions finish their
current reply) or SIGHUP (reload: re-read the config for logging and sync settings and
pick up accounts added with the CLI).

This module may import everything; nothing imports it except ``bridge.cli``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bridge.push  # noqa: F401  (registers the push migrations before any Store.open)
from bridge.backend.errors import Unavailable
from bridge.backend.events import EventBus
from bridge.backend.protocol import MailBackend
from bridge.backend.remote import Remote, RemoteAuthError, RemoteError, RemoteMailbox
from bridge.backend.types import AccountIdentity
from bridge.config import (
    Config,
    is_loopback_host,
    load_config,
    plaintext_auth_allowed,
    secret_box,
)
from bridge.graph import AppCredentials as GraphCredentials
from bridge.graph import GraphApp, cloud_by_name
from bridge.logsetup import register_secret, setup_logging
from bridge.metrics import BridgeMetrics, CountingBlobCache, metrics_route
from bridge.sdnotify import Notifier
from bridge.secrets import verify_password_or_dummy
from bridge.store import Store
from bridge.store import accounts as acct
from bridge.sync import open_cached_backend  # also registers the mailstate migrations
from bridge.trace import WireTracer

log = logging.getLogger(__name__)

DB_NAME = "bridge.db"
#: How long an SMTP login waits for the send-as mailboxes to be looked up (first use).
SEND_AS_LOOKUP_WAIT = 10.0


def graph_app_for(config: Config, creds: acct.AppCredentials) -> GraphApp:
    """A GraphApp for a stored app registration (secrets already unsealed)."""
    app = creds.app
    cloud = cloud_by_name(
        app.cloud, login_url=app.login_url, graph_url=app.graph_url, ca_file=app.ca_file
    )
    for secret in (creds.client_secret, creds.certificate_key_pem):
        register_secret(secret)
    credentials = GraphCredentials(
        tenant_id=app.tenant_id,
        client_id=app.client_id,
        client_secret=creds.client_secret,
        certificate_pem=creds.certificate_key_pem,
        certificate_thumbprint=creds.certificate_thumbprint,
    )
    return GraphApp(
        cloud,
        credentials,
        max_concurrency_per_mailbox=config.sync.max_concurrency_per_mailbox,
        budget_per_window=config.sync.request_budget,
        budget_window=config.sync.request_budget_window,
    )


@dataclass(slots=True)
class AccountRuntime:
    """Everything alive for one account while the bridge runs."""

    account: acct.Account
    identity: AccountIdentity
    remote: Remote
    backend: MailBackend
    engine: Any
    bus: EventBus
    #: send-as address (casefolded) → the Remote of that address's own mailbox.
    send_as_remotes: dict[str, Remote] = field(default_factory=dict)
    #: Set once every send-as address was looked up (successfully or not).
    send_as_ready: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class _Pending:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    runtime: AccountRuntime | None = None


class Bridge:
    """The running bridge's accounts: authentication, backends, senders, sync engines.

    Implements the IMAP ``Authenticator`` and the SMTP ``SubmissionDirectory``.
    """

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.sealer = secret_box(config)
        self._apps: dict[str, GraphApp] = {}
        self._app_lock = asyncio.Lock()
        self._accounts: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._blobs: Any = None
        #: bridge.push.SubscriptionManager when webhooks are configured.
        self.push: Any = None
        self.metrics = BridgeMetrics()
        self.metrics.watch_store(store, include_hidden=config.sync.hidden_folders)
        self.tracer = WireTracer.from_config(config.logging)

    # -- Graph apps --------------------------------------------------------------------
    async def graph_app(self, app_id: str) -> GraphApp:
        async with self._app_lock:
            app = self._apps.get(app_id)
            if app is None:
                creds = await acct.fetch_app_credentials(self.store, app_id, self.sealer)
                app = graph_app_for(self.config, creds)
                self._apps[app_id] = app
                self.metrics.watch_graph(app_id, app)
            return app

    # -- accounts ----------------------------------------------------------------------
    async def runtime(self, account: acct.Account) -> AccountRuntime:
        """The account's live backend, created (and its sync started) on first use."""
        pending = self._accounts.setdefault(account.id, _Pending())
        async with pending.lock:
            if pending.runtime is None:
                pending.runtime = await self._open_account(account)
            return pending.runtime

    async def _open_account(self, account: acct.Account) -> AccountRuntime:
        graph = await self.graph_app(account.app_id)
        try:
            mailbox = await self._mailbox_of(graph, account)
        except RemoteError as exc:
            state = (
                acct.AccountState.AUTHENTICATION_ERROR
                if isinstance(exc, RemoteAuthError)
                else acct.AccountState.CONNECT_ERROR
            )
            await acct.record_state(self.store, account.id, state, str(exc))
            raise
        if account.mailbox_id != mailbox.id:
            account = await self.store.write(
                lambda db: acct.set_mailbox_id(db, account.id, mailbox.id)
            )
        remote = graph.remote(mailbox)
        identity = AccountIdentity(
            account_id=account.id,
            login=account.login,
            email=account.email,
            send_as=account.send_as,
        )
        bus = EventBus()

        async def on_state(state: str, error: str | None) -> None:
            await acct.record_state(self.store, account.id, acct.AccountState(state), error)

        backend, engine = await open_cached_backend(
            self.store,
            await self.blobs(),
            remote,
            identity,
            bus,
            config=self.config.sync,
            on_state=on_state,
        )
        log.info("account ready", extra={"account": account.id, "login": account.login})
        self.metrics.watch_sync(account.id, engine)
        runtime = AccountRuntime(account, identity, remote, backend, engine, bus)
        # In the background: with Graph down, resolving could take minutes of retries,
        # and logging in must not wait for it.
        self._spawn(self._resolve_send_as(graph, runtime))
        if self.push is not None:
            self._spawn(self._subscribe(account.id, mailbox, engine))
        return runtime

    async def _mailbox_of(self, graph: GraphApp, account: acct.Account) -> RemoteMailbox:
        """The account's mailbox. Once resolved, its object id is stored, so a restart
        while Graph is unreachable still opens the account and serves what is cached;
        the sync engine reports the outage through the account state."""
        if account.mailbox_id:
            return RemoteMailbox(
                id=account.mailbox_id,
                email=account.email or None,
                user_principal_name=account.auth_user,
                display_name=account.name,
            )
        return await graph.resolve_mailbox(account.auth_user)

    async def _resolve_send_as(self, graph: GraphApp, runtime: AccountRuntime) -> None:
        """Each send-as address that is a mailbox gets its own Remote, so mail sent as it
        goes through that mailbox's Graph path: its Sent Items, its sender (facts §13.6).
        Addresses without a mailbox (groups, aliases) send through the account's own."""
        account = runtime.account
        try:
            await self._resolve_each_send_as(graph, runtime, account)
        finally:
            runtime.send_as_ready.set()

    async def _resolve_each_send_as(
        self, graph: GraphApp, runtime: AccountRuntime, account: acct.Account
    ) -> None:
        for address in account.send_as:
            try:
                mailbox = await graph.resolve_mailbox(address)
            except RemoteError as exc:
                log.info(
                    "send-as address %s has no mailbox of its own (%s); mail from it is "
                    "sent through %s",
                    address,
                    exc,
                    account.email,
                )
                continue
            runtime.send_as_remotes[address.casefold()] = graph.remote(mailbox)

    async def _subscribe(self, account_id: str, mailbox: Any, engine: Any) -> None:
        await self.push.add_account(account_id, mailbox)
        # Later changes arrive through push_health; this one may predate the runtime.
        engine.set_push_healthy(self.push.webhooks_healthy(account_id))

    async def graph_app_for_account(self, account_id: str) -> GraphApp:
        account = await acct.fetch_account(self.store, account_id)
        return await self.graph_app(account.app_id)

    def nudge(self, account_id: str, folder_id: str | None) -> None:
        """A change notification arrived: sync that folder (or all) of the account soon.
        Ignored for accounts not running (yet): their first sync covers it."""
        runtime = self._live(account_id)
        if runtime is not None:
            runtime.engine.nudge(folder_id)

    def push_health(self, account_id: str, healthy: bool) -> None:
        """Webhooks for the account started or stopped working: adapt its polling."""
        runtime = self._live(account_id)
        if runtime is not None:
            runtime.engine.set_push_healthy(healthy)

    async def forget_account(self, account: acct.Account) -> None:
        """An account was removed through the admin API: stop its sync, drop its push."""
        pending = self._accounts.pop(account.id, None)
        if pending is not None and pending.runtime is not None:
            await pending.runtime.engine.stop()
        self.metrics.unwatch_sync(account.id)
        if self.push is not None:
            await self.push.remove_account(account.id)

    async def blobs(self) -> Any:
        """The body cache shared by all accounts (content-addressed, so sharing is safe)."""
        if self._blobs is None:
            self._blobs = await CountingBlobCache.open(
                self.config.state_dir / "blobs", self.config.sync.body_cache_mb * 1024 * 1024
            )
            self.metrics.watch_blob_cache(self._blobs)
        return self._blobs

    async def start_all(self) -> None:
        """Start every account's sync in the background; failures are per account."""
        for account in await acct.fetch_accounts(self.store):
            self._spawn(self._start_one(account))

    async def _start_one(self, account: acct.Account) -> None:
        try:
            await self.runtime(account)
        except RemoteError as exc:
            log.warning("account cannot start: %s", exc, extra={"account": account.id})
        except Exception:
            log.exception("account failed to start", extra={"account": account.id})

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- Authenticator (IMAP) ------------------------------------------------------------
    async def _login(self, login: str, password: str) -> acct.Account | None:
        return await acct.authenticate(self.store, login, password, verify=verify_password_or_dummy)

    async def authenticate(self, login: str, password: str, peer: str) -> MailBackend | None:
        account = await self._login(login, password)
        if account is None:
            return None
        try:
            return (await self.runtime(account)).backend
        except RemoteError as exc:
            # The password was right but the mailbox cannot be opened (first use while
            # Graph is unreachable, or the app lost its rights): say why, NO [UNAVAILABLE].
            raise Unavailable(str(exc)) from exc

    # -- SubmissionDirectory (SMTP) ----------------------------------------------------
    async def authenticate_submitter(
        self, login: str, password: str, peer: str
    ) -> AccountIdentity | None:
        account = await self._login(login, password)
        if account is None:
            return None
        runtime = await self.runtime(account)
        # The first submission after start may be a send-as: give the lookup of the
        # send-as mailboxes a moment, so the message takes the right Graph path.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.send_as_ready.wait(), SEND_AS_LOOKUP_WAIT)
        return runtime.identity

    def sender_remote_for(self, identity: AccountIdentity, address: str) -> Remote | None:
        """The mailbox an SMTP message from ``address`` goes out through: the account's
        own for its own address; for an allowed send-as address, that address's own
        mailbox (a running account's, or the one looked up when the account opened), so
        Sent Items and sender are right; the account's own for an alias or a group.
        None when the login may not send as ``address``."""
        wanted = address.casefold()
        own = self._live(identity.account_id)
        if own is None:
            return None
        if wanted == identity.email.casefold():
            return own.remote
        if wanted not in {a.casefold() for a in identity.send_as}:
            return None
        for pending in self._accounts.values():
            runtime = pending.runtime
            if runtime is not None and runtime.identity.email.casefold() == wanted:
                return runtime.remote
        # A mailbox of the tenant without an account here (a shared mailbox): its own
        # Remote. Otherwise an alias or a group: the own mailbox with that From:.
        return own.send_as_remotes.get(wanted, own.remote)

    def submission_directory(self) -> _SubmissionDirectory:
        return _SubmissionDirectory(self)

    def _live(self, account_id: str) -> AccountRuntime | None:
        pending = self._accounts.get(account_id)
        return pending.runtime if pending else None

    def runtimes(self) -> list[AccountRuntime]:
        return [p.runtime for p in self._accounts.values() if p.runtime is not None]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for runtime in self.runtimes():
            with contextlib.suppress(Exception):
                await runtime.engine.stop()
        for app in self._apps.values():
            with contextlib.suppress(Exception):
                await app.aclose()


class _SubmissionDirectory:
    """The SMTP server's view of the accounts (``bridge.smtp.accounts.SubmissionDirectory``)."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def authenticate(self, login: str, password: str, peer: str) -> AccountIdentity | None:
        return await self._bridge.authenticate_submitter(login, password, peer)

    def sender_remote(self, identity: AccountIdentity, from_address: str) -> Remote | None:
        return self._bridge.sender_remote_for(identity, from_address)


UNCERTAIN_SENDS = "smtp-uncertain-sends.json"


async def load_uncertain_sends(path: Path) -> Any:
    """The SMTP sends whose outcome was unknown when the bridge last stopped (or died),
    kept in a small JSON file that is rewritten atomically before every send."""
    import json
    import os

    from bridge.smtp import UncertainSend, UncertainSends

    def read() -> list[UncertainSend]:
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.error("ignoring unreadable %s: %s", path, exc)
            return []
        return [UncertainSend(r["mailbox_id"], r["message_id"], float(r["since"])) for r in rows]

    def write(entries: tuple[UncertainSend, ...]) -> None:
        data = [
            {"mailbox_id": e.mailbox_id, "message_id": e.message_id, "since": e.since}
            for e in entries
        ]
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    async def persist(entries: tuple[UncertainSend, ...]) -> None:
        await asyncio.to_thread(write, entries)

    path.parent.mkdir(parents=True, exist_ok=True)
    return UncertainSends(await asyncio.to_thread(read), persist=persist)


def server_ssl_context(config: Config) -> ssl.SSLContext | None:
    """Modern server TLS (TLS 1.2+) from the configured certificate, or None."""
    if not config.tls.enabled:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tls.cert_file), str(config.tls.key_file))
    return context


async def resolve_account_mailbox(
    store: Store, config: Config, account: acct.Account
) -> acct.Account:
    """Resolve the account's mailbox through Graph and record the state (CLI, admin API)."""
    creds = await acct.fetch_app_credentials(store, account.app_id, secret_box(config))
    graph = graph_app_for(config, creds)
    try:
        mailbox = await graph.resolve_mailbox(account.auth_user)
    except RemoteAuthError as exc:
        return await acct.record_state(
            store, account.id, acct.AccountState.AUTHENTICATION_ERROR, str(exc)
        )
    except RemoteError as exc:
        return await acct.record_state(store, account.id, acct.AccountState.CONNECT_ERROR, str(exc))
    finally:
        await graph.aclose()
    await store.write(lambda db: acct.set_mailbox_id(db, account.id, mailbox.id))
    return await acct.record_state(store, account.id, acct.AccountState.NEW)


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop, stop: asyncio.Event, reload: Callable[[], None]
) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)


def serve(config_path: str | Path) -> int:
    """``graph-mail-bridge serve``: run the daemon until SIGTERM/SIGINT."""
    config = load_config(Path(config_path))
    setup_logging(config.logging.level, config.logging.format)
    for warning in config.warnings:
        log.warning(warning)
    return asyncio.run(run_daemon(config, config_path=Path(config_path)))


@dataclass(slots=True)
class Listeners:
    """What ``run_daemon`` started, for tests and the demo to find the real ports."""

    imap: Any = None
    imaps: Any = None
    smtp: Any = None
    http_runner: Any = None
    http_port: int | None = None
    bridge: Bridge | None = None
    store: Store | None = None


async def run_daemon(
    config: Config,
    *,
    config_path: Path | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Listeners], Awaitable[None] | None] | None = None,
    notifier: Notifier | None = None,
) -> int:
    """Run the bridge until ``stop`` is set (or SIGTERM/SIGINT). Returns the exit code."""
    from bridge.imap.server import ImapServer
    from bridge.smtp import SubmissionPolicy, SubmissionServer

    loop = asyncio.get_running_loop()
    notifier = notifier or Notifier()
    stop = stop or asyncio.Event()
    listeners = Listeners()

    def reload() -> None:
        notifier.reloading()
        if config_path is not None:
            try:
                fresh = load_config(config_path)
                setup_logging(fresh.logging.level, fresh.logging.format)
                if listeners.bridge is not None:
                    for login in fresh.logging.trace_accounts:
                        listeners.bridge.tracer.enable(login)
                log.info("configuration reloaded (logging); listener changes need a restart")
            except Exception as exc:  # a bad edit must not kill a running bridge
                log.error("reload failed, keeping the running configuration: %s", exc)
        if listeners.bridge is not None:
            listeners.bridge._spawn(listeners.bridge.start_all())
        notifier.ready()

    # Signals can only be handled in the main thread (RuntimeError elsewhere: the demo's
    # and benchmarks' embedded runs) and not on every platform (NotImplementedError);
    # there ``stop`` is the way to end the daemon.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        install_signal_handlers(loop, stop, reload)

    store = await Store.open(config.state_dir / DB_NAME)
    bridge = Bridge(config, store)
    listeners.bridge, listeners.store = bridge, store
    tls = server_ssl_context(config)
    try:
        imap_kwargs: dict[str, Any] = dict(
            host=config.imap.host,
            max_connections=config.limits.max_connections,
            max_per_address=config.limits.max_connections_per_address,
            idle_timeout_auth=config.limits.idle_timeout,
            max_literal=config.limits.max_message_size,
            observer=bridge.metrics,
            wire_tap=bridge.tracer,
        )
        listeners.imap = ImapServer(
            bridge,
            port=config.imap.port,
            starttls_context=tls if config.imap.starttls else None,
            **imap_kwargs,
        )
        await listeners.imap.start()
        if tls is not None and config.imap.tls_port is not None:
            listeners.imaps = ImapServer(
                bridge, port=config.imap.tls_port, ssl_context=tls, **imap_kwargs
            )
            await listeners.imaps.start()
        smtp_plain_auth = plaintext_auth_allowed(
            config.smtp.allow_plaintext_auth,
            tls_active=False,
            peer_loopback=is_loopback_host(config.smtp.host),
        )
        smtp_port: int | None = config.smtp.port
        if tls is None and not smtp_plain_auth:
            # Nobody could authenticate on a plaintext port without STARTTLS.
            log.warning(
                "SMTP submission is off: %s without TLS refuses passwords "
                "(smtp.allow_plaintext_auth); configure tls.cert_file/tls.key_file",
                config.smtp.host,
            )
            smtp_port = None
        listeners.smtp = SubmissionServer(
            bridge.submission_directory(),
            uncertain=await load_uncertain_sends(config.state_dir / UNCERTAIN_SENDS),
            allow_plaintext_auth=smtp_plain_auth,
            host=config.smtp.host,
            port=smtp_port,
            tls_port=config.smtp.tls_port if tls is not None else None,
            ssl_context=tls,
            max_message_size=config.limits.max_message_size,
            on_outcome=bridge.metrics.record_submission,
            policy=SubmissionPolicy(uncertain_settle_seconds=config.smtp.unconfirmed_send_wait),
        )
        await listeners.smtp.start()
        if config.sync.webhook_public_url:
            bridge.push = await start_push(config, store, bridge)
        listeners.http_runner, listeners.http_port = await start_http(config, store, bridge)
        await bridge.start_all()
        notifier.ready("serving")
        watchdog = asyncio.ensure_future(notifier.run_watchdog())
        if on_ready is not None:
            result = on_ready(listeners)
            if asyncio.iscoroutine(result):
                await result
        log.info("bridge ready")
        await stop.wait()
        log.info("stopping")
        notifier.stopping()
        watchdog.cancel()
    finally:
        for server in (listeners.imap, listeners.imaps):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.stop(grace=5.0)
        if listeners.smtp is not None:
            with contextlib.suppress(Exception):
                await listeners.smtp.stop()
        if listeners.http_runner is not None:
            with contextlib.suppress(Exception):
                await listeners.http_runner.cleanup()
        if bridge.push is not None:
            with contextlib.suppress(Exception):
                await bridge.push.stop()
        await bridge.stop()
        await store.close()
    return 0


async def start_http(config: Config, store: Store, bridge: Bridge) -> tuple[Any, int]:
    """The loopback HTTP listener: admin API (``/v1``), ``/health``, ``/metrics``, webhooks."""
    from aiohttp import web

    from bridge.config import ensure_admin_token
    from bridge.http import make_http_app

    async def health(request: web.Request) -> web.Response:
        report = await health_report(bridge)
        return web.json_response(report, status=200 if report["ready"] else 503)

    async def account_added(account: acct.Account) -> None:
        await bridge.runtime(account)

    from bridge.http import error_response

    tracer = bridge.tracer

    def traced() -> web.Response:
        return web.json_response({"trace": sorted(tracer.logins)})

    async def list_traces(request: web.Request) -> web.Response:
        return traced()

    async def set_trace(request: web.Request) -> web.Response:
        login = request.match_info["login"]
        if await store.read(lambda db: acct.get_account_by_login(db, login)) is None:
            return error_response(404, "NotFound", f"no account has the login {login!r}.")
        if request.method == "PUT":
            tracer.enable(login)
            log.warning("wire trace switched on for %s", login)
        else:
            tracer.disable(login)
            log.warning("wire trace switched off for %s", login)
        return traced()

    routes = [
        web.get("/health", health),
        metrics_route(bridge.metrics),
        # Under /v1, so the admin token guards them (bridge.http's middleware).
        web.get("/v1/trace", list_traces),
        web.put("/v1/trace/{login}", set_trace),
        web.delete("/v1/trace/{login}", set_trace),
    ]
    if bridge.push is not None:
        from bridge.push import webhook_routes

        routes.extend(webhook_routes(bridge.push))
    app = make_http_app(
        store,
        config,
        admin_token=ensure_admin_token(config),
        extra_routes=routes,
        on_account_added=account_added,
        on_account_removed=bridge.forget_account,
        sealer=bridge.sealer,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.http.host, config.http.port)
    await site.start()
    # The bound port (config may say 0: tests and the demo let the kernel choose).
    port = config.http.port
    for address in runner.addresses:
        port = address[1]
        break
    return runner, port


async def start_push(config: Config, store: Store, bridge: Bridge) -> Any:
    """Webhooks: one Graph subscription per account, notifications nudge the sync engine;
    delta polling goes on underneath as the safety net."""
    from bridge.push import SubscriptionManager

    assert config.sync.webhook_public_url is not None
    manager = SubscriptionManager(
        store,
        bridge.graph_app_for_account,
        config.sync.webhook_public_url,
        on_change=bridge.nudge,
        fallback_poll_seconds=config.sync.poll_interval,
        on_health=bridge.push_health,
    )
    await manager.start()
    await manager.retain_accounts([a.id for a in await acct.fetch_accounts(store)])
    return manager


async def health_report(bridge: Bridge) -> dict[str, Any]:
    """Ready when every account is connected; per account its state and last error."""
    accounts = await acct.fetch_accounts(bridge.store)
    entries = []
    for account in accounts:
        entries.append(
            {
                "account": account.id,
                "login": account.login,
                "state": account.state.value,
                "error": account.last_error,
                "since": account.state_changed_at,
            }
        )
    problems = [e for e in entries if e["state"] != acct.AccountState.CONNECTED.value]
    return {
        "ready": not problems,
        "reasons": [
            f"{e['account']}: {e['state']}" + (f" ({e['error']})" if e["error"] else "")
            for e in problems
        ],
        "accounts": entries,
    }


def demo(args: Any) -> int:
    """``graph-mail-bridge demo`` (see bridge.demo)."""
    from bridge.demo import demo as run

    return run(args)


def check(config_path: str | Path) -> int:
    """``graph-mail-bridge check``: see bridge.doctor."""
    from bridge.doctor import check as run
    from bridge.errors import ConfigError

    try:
        config = load_config(Path(config_path))
    except ConfigError as exc:
        print(f"FAIL config: {exc}")
        return 2
    return run(config)
