"""``Simulator``: the object tests, benchmarks and the demo use.

Owns: the server thread and its event loop, wiring of the services (tokens, pipeline,
delta, uploads, subscriptions, throttle, faults), and the synchronous, thread-safe
control API ("act as Outlook would", inspect what the bridge did). Every control method
takes ``World.lock``; the server thread takes the same lock around handlers.
Must not import anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import tempfile
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from .auth import TokenService
from .certs import (
    ClientCertificate,
    certificate_thumbprints,
    ensure_tls_material,
    make_client_certificate,
)
from .context import Ctx, SimConfig, SimRequest
from .delta import DeltaService
from .faults import Faults
from .messages import message_mime, soft_delete
from .model import App, Clock, Folder, Message, SentRecord, User, World
from .persist import load_world, save_world
from .render import render_folder, render_message
from .routes import Pipeline
from .send import UploadService, deliver_mime
from .server import build_app
from .subscriptions import Delivery, Subscription, SubscriptionService
from .throttle import Counters, Throttle

DEFAULT_ROLES = ("Mail.ReadWrite", "Mail.Send", "User.Read.All")


@dataclass(frozen=True, slots=True)
class TenantHandle:
    id: str
    domain: str


@dataclass(frozen=True, slots=True)
class AppHandle:
    client_id: str
    secret: str | None
    thumbprint: str | None  # SHA-1 hex (upper case) of the registered certificate


@dataclass(frozen=True, slots=True)
class UserHandle:
    id: str
    upn: str
    mail: str | None


UserRef = UserHandle | str


class Simulator:
    """A Microsoft Graph mail simulator served over HTTPS on loopback."""

    def __init__(
        self,
        state_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token_lifetime: int = 3600,
        budget: int = 10_000,
        budget_window: float = 600.0,
        concurrency: int = 4,
        default_page_size: int = 10,
        clock: Clock | None = None,
        faults: Faults | None = None,
        persist: bool | None = None,
        subscription_max_minutes: int = 4230,
        webhook_ca_file: str | Path | None = None,
        allow_http_webhooks: bool = True,
        delta_log_limit: int = 5000,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if persist is None:
            # A caller that names a state directory wants its mail back after a restart.
            persist = state_dir is not None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="graph-sim-")
            state_dir = Path(self._tmp.name)
        self.state_dir = Path(state_dir)
        self.tls = ensure_tls_material(self.state_dir / "tls")
        self.host = host
        self.port = port
        self.persist = persist
        self.world = World(clock, delta_log_limit=delta_log_limit)
        self.config = SimConfig(
            default_page_size=default_page_size,
            subscription_max_minutes=subscription_max_minutes,
            webhook_ca_file=str(webhook_ca_file) if webhook_ca_file else None,
            allow_http_webhooks=allow_http_webhooks,
        )
        self.faults = faults or Faults()
        self.throttle = Throttle(
            lambda: self.world.clock(),  # follows a clock swapped in later by a test
            concurrency=concurrency,
            budget=budget,
            window=budget_window,
            retry_after=1.0,
        )
        self.tokens = TokenService(self.world, self.tls.signing_key_pem(), lambda: self.base_url)
        self.tokens.lifetime = token_lifetime
        self.delta = DeltaService()
        self.uploads = UploadService()
        self.subscriptions = SubscriptionService(self)
        self.world.listeners.append(self.subscriptions.on_event)
        self.pipeline = Pipeline(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._reused_port = False
        if persist and (self.state_dir / "state.json").exists():
            load_world(self.world, self.state_dir / "state.json")

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def graph_url(self) -> str:
        return self.base_url

    @property
    def login_url(self) -> str:
        return self.base_url

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file

    @property
    def token_lifetime(self) -> int:
        return self.tokens.lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: int) -> None:
        self.tokens.lifetime = seconds

    def start(self) -> None:
        """Serve in a background thread with its own event loop; return once listening."""
        if self._thread is not None:
            return
        ready = threading.Event()
        failure: list[BaseException] = []
        port_file = self.state_dir / "port"
        self._reused_port = False
        if self.persist and self.port == 0 and port_file.exists():
            # A restarted demo keeps its URLs, so an existing bridge config keeps working.
            self.port = int(port_file.read_text().strip() or 0)
            self._reused_port = True

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False)
            try:
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(
                    runner, self.host, self.port, ssl_context=self.tls.server_context()
                )
                try:
                    loop.run_until_complete(site.start())
                except OSError:
                    if not self._reused_port:
                        raise
                    # The port a persisted demo used last time is taken: take any.
                    site = web.TCPSite(runner, self.host, 0, ssl_context=self.tls.server_context())
                    loop.run_until_complete(site.start())
                server = site._server
                assert server is not None
                self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
                self.loop = loop
            except BaseException as exc:  # reported to the caller of start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.subscriptions.close())
                loop.run_until_complete(runner.cleanup())
                loop.close()
                self._stopped.set()

        self._thread = threading.Thread(target=run, name="graph-simulator", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            self._thread = None
            raise failure[0]
        if self.persist:
            port_file.write_text(str(self.port))

    def stop(self) -> None:
        if self.persist:
            self.save()
        if self._thread is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
        self._thread = None
        self.loop = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def save(self) -> Path:
        path = self.state_dir / "state.json"
        with self.world.lock:
            save_world(self.world, path)
        return path

    # ------------------------------------------------------------------ directory
    def add_tenant(
        self, domain: str = "contoso.example", tenant_id: str | None = None
    ) -> TenantHandle:
        t = self.world.add_tenant(domain, tenant_id)
        return TenantHandle(t.id, t.domain)

    def add_app(
        self,
        tenant_id: str,
        roles: Iterable[str] = DEFAULT_ROLES,
        secret: str | None = None,
        certificate_pem: bytes | None = None,
        client_id: str | None = None,
    ) -> AppHandle:
        """Register an app; a secret is generated when neither secret nor certificate is given."""
        with self.world.lock:
            if tenant_id not in self.world.tenants:
                raise KeyError(f"unknown tenant {tenant_id}")
            if secret is None and certificate_pem is None:
                secret = secrets.token_urlsafe(30)
            sha1 = sha256 = None
            if certificate_pem is not None:
                sha1, sha256 = certificate_thumbprints(certificate_pem)
            app = App(
                client_id=client_id or str(uuid.uuid4()),
                tenant_id=tenant_id,
                roles=tuple(roles),
                secret=secret,
                certificate_pem=certificate_pem,
                thumbprint_sha1=sha1,
                thumbprint_sha256=sha256,
            )
            self.world.apps[app.client_id] = app
            return AppHandle(app.client_id, secret, sha1.hex().upper() if sha1 else None)

    @staticmethod
    def make_certificate(common_name: str = "graph-mail-bridge") -> ClientCertificate:
        return make_client_certificate(common_name)

    def expire_secret(self, client_id: str) -> None:
        with self.world.lock:
            self.world.apps[client_id].secret_expired = True

    def set_roles(self, client_id: str, roles: Iterable[str]) -> None:
        """Change the app's granted roles; tokens issued afterwards carry them."""
        with self.world.lock:
            self.world.apps[client_id].roles = tuple(roles)

    def add_user(
        self,
        tenant_id: str,
        upn: str,
        display_name: str | None = None,
        shared: bool = False,
        has_mailbox: bool = True,
        mail: str | None = None,
    ) -> UserHandle:
        u = self.world.add_user(
            tenant_id,
            upn,
            display_name or upn.split("@")[0].title(),
            mail=mail,
            shared=shared,
            has_mailbox=has_mailbox,
        )
        return UserHandle(u.id, u.upn, u.mail)

    def add_alias(self, user: UserRef, address: str) -> None:
        with self.world.lock:
            self._user(user).proxy_addresses.append(f"smtp:{address}")

    def grant_send_as(self, mailbox: UserRef, to: UserRef) -> None:
        """Let ``to`` send as ``mailbox`` (Exchange Send As right, §13.6)."""
        with self.world.lock:
            owner = self._user(mailbox)
            grantee = self._user(to)
            self.world.mailbox(grantee.id).send_as |= owner.addresses()

    def set_access_policy(self, user: UserRef, client_id: str, allowed: bool) -> None:
        """Emulate an Exchange application access policy: when not allowed, the app gets
        403 ErrorAccessDenied "Access to OData is disabled." for this mailbox (§5)."""
        with self.world.lock:
            key = (client_id, self._user(user).id)
            if allowed:
                self.world.denied.discard(key)
            else:
                self.world.denied.add(key)

    def _user(self, ref: UserRef) -> User:
        key = ref.id if isinstance(ref, UserHandle) else ref
        u = self.world.find_user(key)
        if u is None:
            raise KeyError(f"unknown user {key}")
        return u

    def _mailbox_user(self, ref: UserRef) -> User:
        u = self._user(ref)
        if not u.has_mailbox:
            raise KeyError(f"user {u.upn} has no mailbox")
        return u

    def _folder(self, user: User, ref: str | None) -> Folder:
        return self.world.folder(self.world.mailbox(user.id), ref or "inbox")

    def _message(self, user: User, message_id: str) -> Message:
        return self.world.find_message(self.world.mailbox(user.id), message_id)

    def _ctx(self) -> Ctx:
        req = SimRequest("GET", "/", {}, {}, prefer=['IdType="ImmutableId"'])
        app = App(client_id="control", tenant_id="", roles=(), secret=None)
        return Ctx(
            world=self.world,
            config=self.config,
            faults=self.faults,
            throttle=self.throttle,
            req=req,
            base_url=self.base_url,
            app=app,
            claims={},
            services=self,
        )

    # ------------------------------------------------------------------ mail: inspect
    def deliver(
        self,
        user: UserRef,
        mime: bytes,
        folder: str = "inbox",
        received: dt.datetime | None = None,
        is_read: bool = False,
    ) -> str:
        """Deliver raw MIME as a received message; returns its immutable id."""
        with self.world.lock:
            u = self._mailbox_user(user)
            m = deliver_mime(self.world, u, mime, folder=folder, received=received, is_read=is_read)
            return m.immutable_id

    def folders(self, user: UserRef) -> list[dict[str, Any]]:
        """Every folder of the mailbox (hidden ones and search folders too)."""
        with self.world.lock:
            u = self._mailbox_user(user)
            mb = self.world.mailbox(u.id)
            out = []
            for f in mb.folders.values():
                if f.well_known == "root":
                    continue
                d = render_folder(self.world, mb, f)
                d["wellKnownName"] = f.well_known
                d["inIpmSubtree"] = self.world.in_ipm_subtree(mb, f)
                out.append(d)
            return out

    def messages(self, user: UserRef, folder: str = "inbox") -> list[dict[str, Any]]:
        """Graph-like JSON of a folder's messages; ``id`` is the immutable id."""
        with self.world.lock:
            u = self._mailbox_user(user)
            mb = self.world.mailbox(u.id)
            f = self._folder(u, folder)
            ctx = self._ctx()
            out = []
            for key in f.messages:
                m = mb.messages[key]
                d = render_message(ctx, m, select=None)
                d["immutableId"] = m.immutable_id
                d["restId"] = m.rest_id
                d["categories"] = list(m.categories)
                d["singleValueExtendedProperties"] = [
                    {"id": norm, "value": val} for norm, val in m.ext.values()
                ]
                d["attachmentNames"] = [a.name for a in m.attachments]
                out.append(d)
            return out

    def message(self, user: UserRef, message_id: str) -> dict[str, Any]:
        with self.world.lock:
            u = self._mailbox_user(user)
            m = self._message(u, message_id)
            d = render_message(self._ctx(), m)
            d["immutableId"] = m.immutable_id
            d["restId"] = m.rest_id
            d["singleValueExtendedProperties"] = [
                {"id": norm, "value": val} for norm, val in m.ext.values()
            ]
            d["attachmentNames"] = [a.name for a in m.attachments]
            return d

    def mime(self, user: UserRef, message_id: str) -> bytes:
        with self.world.lock:
            return message_mime(self._message(self._mailbox_user(user), message_id))

    # ------------------------------------------------------------------ mail: act as Outlook
    def _update(self, user: UserRef, message_id: str, fn: Any) -> None:
        with self.world.lock:
            u = self._mailbox_user(user)
            m = self._message(u, message_id)
            fn(m)
            self.world.touch(self.world.mailbox(u.id), m)

    def set_read(self, user: UserRef, message_id: str, read: bool = True) -> None:
        self._update(user, message_id, lambda m: setattr(m, "is_read", read))

    def set_flag(self, user: UserRef, message_id: str, flagged: bool = True) -> None:
        status = "flagged" if flagged else "notFlagged"
        self._update(user, message_id, lambda m: setattr(m, "flag", {"flagStatus": status}))

    def set_categories(self, user: UserRef, message_id: str, categories: Iterable[str]) -> None:
        cats = list(categories)
        self._update(user, message_id, lambda m: setattr(m, "categories", cats))

    def set_extended_property(
        self, user: UserRef, message_id: str, prop_id: str, value: str
    ) -> None:
        from .model import parse_ext_id

        key, norm = parse_ext_id(prop_id)
        self._update(user, message_id, lambda m: m.ext.__setitem__(key, (norm, value)))

    def edit_draft(
        self,
        user: UserRef,
        message_id: str,
        subject: str | None = None,
        body: str | None = None,
    ) -> None:
        def edit(m: Message) -> None:
            if not m.is_draft:
                raise ValueError("only drafts can be edited")
            if subject is not None:
                m.subject = subject
            if body is not None:
                m.body_type, m.body = "text", body
            m.mime = None

        self._update(user, message_id, edit)

    def move(self, user: UserRef, message_id: str, folder: str) -> str:
        """Move a message; returns its immutable id (unchanged; the REST id changes)."""
        with self.world.lock:
            u = self._mailbox_user(user)
            m = self._message(u, message_id)
            self.world.move_message(self.world.mailbox(u.id), m, self._folder(u, folder))
            return m.immutable_id

    def copy(self, user: UserRef, message_id: str, folder: str) -> str:
        with self.world.lock:
            u = self._mailbox_user(user)
            m = self._message(u, message_id)
            new = self.world.copy_message(self.world.mailbox(u.id), m, self._folder(u, folder))
            return new.immutable_id

    def delete(self, user: UserRef, message_id: str) -> None:
        """Soft delete (as Graph DELETE does): the item goes to Recoverable Items."""
        with self.world.lock:
            u = self._mailbox_user(user)
            soft_delete(self.world, self.world.mailbox(u.id), self._message(u, message_id))

    def purge(self, user: UserRef, message_id: str) -> None:
        with self.world.lock:
            u = self._mailbox_user(user)
            self.world.remove_message(self.world.mailbox(u.id), self._message(u, message_id))

    def create_folder(
        self, user: UserRef, name: str, parent: str | None = None, hidden: bool = False
    ) -> str:
        with self.world.lock:
            u = self._mailbox_user(user)
            p = self._folder(u, parent or "msgfolderroot")
            return self.world.create_folder(self.world.mailbox(u.id), p, name, hidden=hidden).id

    def create_search_folder(
        self,
        user: UserRef,
        name: str,
        filter_query: str,
        source_folders: Iterable[str] = ("inbox",),
        parent: str | None = None,
    ) -> str:
        with self.world.lock:
            u = self._mailbox_user(user)
            p = self._folder(u, parent or "msgfolderroot")
            sources = [self._folder(u, s).id for s in source_folders]
            search = {
                "filterQuery": filter_query,
                "sourceFolderIds": sources,
                "includeNestedFolders": False,
            }
            return self.world.create_folder(self.world.mailbox(u.id), p, name, search=search).id

    def rename_folder(self, user: UserRef, folder: str, name: str) -> None:
        with self.world.lock:
            u = self._mailbox_user(user)
            self.world.rename_folder(self.world.mailbox(u.id), self._folder(u, folder), name)

    def move_folder(self, user: UserRef, folder: str, parent: str) -> None:
        with self.world.lock:
            u = self._mailbox_user(user)
            mb = self.world.mailbox(u.id)
            self.world.move_folder(mb, self._folder(u, folder), self._folder(u, parent))

    def delete_folder(self, user: UserRef, folder: str, permanent: bool = False) -> None:
        with self.world.lock:
            u = self._mailbox_user(user)
            mb = self.world.mailbox(u.id)
            self.world.delete_folder(mb, self._folder(u, folder), permanent=permanent)

    # ------------------------------------------------------------------ observe the client
    def sent_log(self, user: UserRef | None = None) -> list[SentRecord]:
        with self.world.lock:
            if user is None:
                return [r for _, r in self.world.sent]
            uid = self._user(user).id
            return [r for owner, r in self.world.sent if owner == uid]

    def counters(self, user: UserRef) -> Counters:
        return self.throttle.counters(self._user(user).id)

    def reset_counters(self, user: UserRef | None = None) -> None:
        self.throttle.reset(None if user is None else self._user(user).id)

    # ------------------------------------------------------------------ faults & expiry
    def set_faults(self, **changes: Any) -> None:
        for key, value in changes.items():
            if not hasattr(self.faults, key) or key.startswith("_") or key == "rules":
                raise AttributeError(f"unknown fault knob {key}")
            setattr(self.faults, key, value)

    def expire_tokens(self) -> None:
        """Every access token issued so far becomes invalid (401 on next use)."""
        with self.world.lock:
            self.world.token_generation += 1

    def expire_delta_tokens(self, user: UserRef, folder: str | None = None) -> None:
        """Delta tokens of one folder (or every folder and the folder hierarchy) → 410."""
        with self.world.lock:
            u = self._mailbox_user(user)
            mb = self.world.mailbox(u.id)
            if folder is None:
                for f in mb.folders.values():
                    f.epoch += 1
                mb.folder_epoch += 1
            else:
                self._folder(u, folder).epoch += 1

    # ------------------------------------------------------------------ subscriptions
    def lifecycle(self, subscription_id: str, event: str) -> None:
        self.subscriptions.lifecycle(subscription_id, event)

    def wait_notifications(self, timeout: float = 10.0) -> None:
        """Block until queued webhook deliveries (including retries) are done.

        Call it from a thread other than the receiver's event loop (for example through
        ``asyncio.to_thread``) so the receiver can keep answering."""
        if self.loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.subscriptions.drain(), self.loop).result(timeout)

    def subscription_list(self) -> list[Subscription]:
        return list(self.subscriptions.subs.values())

    def expire_subscription(self, subscription_id: str) -> None:
        sub = self.subscriptions.subs[subscription_id]
        sub.expiration = self.world.now() - dt.timedelta(seconds=1)

    def deliveries(self) -> list[Delivery]:
        return list(self.subscriptions.deliveries)

    # ------------------------------------------------------------------ settings for a client
    def cloud_settings(self, tenant: TenantHandle | str, app: AppHandle) -> dict[str, str]:
        tid = tenant.id if isinstance(tenant, TenantHandle) else tenant
        return {
            "login_url": self.login_url,
            "graph_url": self.graph_url,
            "ca_file": str(self.ca_file),
            "tenant_id": tid,
            "client_id": app.client_id,
            "client_secret": app.secret or "",
        }
