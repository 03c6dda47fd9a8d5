"""``graph-mail-bridge demo``: the real bridge against the built-in Graph simulator.

One command, no Microsoft account: the simulator runs in this process (in its own thread
and event loop, serving HTTPS with its own CA), seeded once with a demo tenant, an app
registration, a mailbox full of realistic mail and a shared mailbox. The bridge talks to
it exactly as it talks to Microsoft 365 — msal for the token, httpx over TLS — through
the ``custom`` cloud. Everything persists in the demo directory, so a second run shows
the same mailbox and the same UIDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge import demo_mail
from bridge.config import Config, default_config
from bridge.secrets import SecretBox, generate_password, hash_password
from bridge.store import Store
from bridge.store import accounts as acct

log = logging.getLogger(__name__)

DEMO_DOMAIN = demo_mail.DOMAIN
ALICE = f"alice@{DEMO_DOMAIN}"
SUPPORT = f"support@{DEMO_DOMAIN}"
PEERS = ("megan", "juergen", "zoe", "taro", "alex")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    directory: Path
    imap_port: int = 1143
    smtp_port: int = 1587
    http_port: int = 8025
    settings_json: Path | None = None
    new_mail_interval: float = 60.0


@dataclass(frozen=True, slots=True)
class DemoSeed:
    """What the demo remembers between runs (``demo.json`` in the demo directory)."""

    tenant_id: str
    client_id: str
    client_secret: str
    alice_password: str
    support_password: str

    @classmethod
    def load(cls, path: Path) -> DemoSeed | None:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dataclasses.asdict(self), handle, indent=2)


def _seed_simulator(sim: Any) -> DemoSeed:
    """Create the demo tenant and fill its mailboxes (first run only)."""
    tenant = sim.add_tenant(domain=DEMO_DOMAIN)
    app = sim.add_app(tenant.id, roles=("Mail.ReadWrite", "Mail.Send", "User.Read.All"))
    alice = sim.add_user(tenant.id, ALICE, display_name="Alice Demo")
    support = sim.add_user(tenant.id, SUPPORT, display_name="Support (shared)", shared=True)
    for peer in PEERS:
        sim.add_user(tenant.id, f"{peer}@{DEMO_DOMAIN}", display_name=peer.title())
    sim.grant_send_as(mailbox=support.id, to=alice.id)
    now = datetime.now(UTC)
    folders: dict[str, str] = {}
    for message in demo_mail.demo_mailbox(f"Alice Demo <{ALICE}>", now):
        folder = message.folder
        if "/" in folder:  # a demo folder path such as "Archive/2026"
            if folder not in folders:
                parent, name = folder.split("/", 1)
                folders[folder] = sim.create_folder(alice.id, name, parent=parent.lower())
            folder = folders[folder]
        sim.deliver(
            alice.id,
            message.mime,
            folder=folder,
            received=message.received,
            is_read=message.is_read,
        )
    for message in demo_mail.shared_mailbox(SUPPORT, now):
        sim.deliver(support.id, message.mime, received=message.received, is_read=False)
    return DemoSeed(
        tenant_id=tenant.id,
        client_id=app.client_id,
        client_secret=app.secret,
        alice_password=generate_password(),
        support_password=generate_password(),
    )


async def _ensure_accounts(store: Store, sim: Any, seed: DemoSeed) -> None:
    """The bridge's own records: the app (custom cloud → the simulator) and two accounts."""
    apps = await store.read(acct.list_apps)
    app = next((a for a in apps if a.client_id == seed.client_id), None)
    if app is not None and app.login_url != sim.base_url:
        # The simulator came up on another port than last time: follow it.
        app_id = app.id
        await store.write(
            lambda db: db.execute(
                "UPDATE oauth2_apps SET login_url = ?, graph_url = ?, ca_file = ? WHERE id = ?",
                [sim.base_url, sim.graph_url, str(sim.ca_file), app_id],
            )
        )
        app = await store.read(lambda db: acct.get_app(db, app_id))
    if app is None:
        # The demo keeps no encryption key: its secret is the simulator's, worth nothing.
        box = SecretBox(None)
        app = await store.write(
            lambda db: acct.create_app(
                db,
                sealer=box,
                name="demo",
                cloud="custom",
                login_url=sim.base_url,
                graph_url=sim.graph_url,
                ca_file=str(sim.ca_file),
                client_id=seed.client_id,
                tenant_id=seed.tenant_id,
                client_secret=seed.client_secret,
            )
        )
    existing = {a.login for a in await acct.fetch_accounts(store)}
    for login, email, name, password, send_as in (
        ("alice", ALICE, "Alice Demo", seed.alice_password, (SUPPORT,)),
        ("support", SUPPORT, "Support (shared)", seed.support_password, ()),
    ):
        if login in existing:
            continue
        # scrypt (about 0.1 s) off the loop and out of the single store writer thread.
        hashed = await asyncio.to_thread(hash_password, password)
        await store.write(
            functools.partial(
                acct.create_account,
                account_id=login,
                name=name,
                email=email,
                app_id=app.id,
                auth_user=email,
                login=login,
                password_hash=hashed,
                send_as=send_as,
            )
        )


def _demo_config(options: DemoOptions) -> Config:
    config = default_config(options.directory / "bridge")
    return dataclasses.replace(
        config,
        imap=dataclasses.replace(config.imap, port=options.imap_port),
        smtp=dataclasses.replace(config.smtp, port=options.smtp_port),
        http=dataclasses.replace(config.http, port=options.http_port),
        sync=dataclasses.replace(config.sync, poll_interval=5.0, background_poll_interval=30.0),
    )


def _settings(listeners: Any, seed: DemoSeed, sim: Any) -> dict[str, Any]:
    return {
        "imap": {"host": "127.0.0.1", "port": listeners.imap.port, "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": listeners.smtp.port, "security": "none"},
        "http": {"host": "127.0.0.1", "port": listeners.http_port},
        "accounts": [
            {"login": "alice", "password": seed.alice_password, "email": ALICE},
            {"login": "support", "password": seed.support_password, "email": SUPPORT},
        ],
        "simulator": {"url": sim.base_url, "ca_file": str(sim.ca_file)},
        "recipients": [f"{peer}@{DEMO_DOMAIN}" for peer in PEERS],
    }


def _print_settings(settings: dict[str, Any]) -> None:
    alice = settings["accounts"][0]
    support = settings["accounts"][1]
    print(
        f"""
graph-mail-bridge demo is running (Ctrl-C stops it).

  IMAP server   127.0.0.1  port {settings["imap"]["port"]}  (no encryption, normal password)
  SMTP server   127.0.0.1  port {settings["smtp"]["port"]}  (no encryption, normal password)
  Login         {alice["login"]}      password {alice["password"]}   ({alice["email"]})
  Shared box    {support["login"]}    password {support["password"]}   ({support["email"]})

New mail arrives in alice's INBOX regularly. Send mail to {settings["recipients"][0]}
(or any {DEMO_DOMAIN} address listed below) and it lands in that demo mailbox.
Recipients: {", ".join(settings["recipients"])}
Graph simulator: {settings["simulator"]["url"]}
""",
        flush=True,
    )


async def _deliver_periodically(sim: Any, interval: float) -> None:
    counter = 0
    while True:
        await asyncio.sleep(interval)
        counter += 1
        mime = demo_mail.new_mail(f"Alice Demo <{ALICE}>", counter)
        await asyncio.to_thread(sim.deliver, ALICE, mime)


async def run_demo(options: DemoOptions, stop: asyncio.Event | None = None) -> int:
    from bridge.app import Listeners, run_daemon
    from bridge.simulator import Simulator

    directory = options.directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    sim = Simulator(state_dir=directory / "simulator")
    await asyncio.to_thread(sim.start)
    try:
        seed_path = directory / "demo.json"
        seed = DemoSeed.load(seed_path)
        if seed is None:
            seed = await asyncio.to_thread(_seed_simulator, sim)
            seed.save(seed_path)
        config = _demo_config(dataclasses.replace(options, directory=directory))
        store = await Store.open(config.state_dir / "bridge.db")
        try:
            await _ensure_accounts(store, sim, seed)
        finally:
            await store.close()

        ticker: asyncio.Task[None] | None = None

        async def ready(listeners: Listeners) -> None:
            nonlocal ticker
            settings = _settings(listeners, seed, sim)
            if options.settings_json is not None:
                options.settings_json.write_text(json.dumps(settings, indent=2), encoding="utf-8")
            _print_settings(settings)
            if options.new_mail_interval > 0:
                ticker = asyncio.ensure_future(
                    _deliver_periodically(sim, options.new_mail_interval)
                )

        try:
            return await run_daemon(config, stop=stop, on_ready=ready)
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
    finally:
        await asyncio.to_thread(sim.stop)


def demo(args: Any) -> int:
    """Entry point for ``bridge.cli``: ``args`` carries the parsed demo options."""
    from bridge.logsetup import setup_logging

    setup_logging("INFO", "text", stream=sys.stderr)
    options = DemoOptions(
        directory=Path(getattr(args, "dir", None) or "demo-state"),
        imap_port=_opt(args, "imap_port", 1143),
        smtp_port=_opt(args, "smtp_port", 1587),
        http_port=_opt(args, "http_port", 8025),
        settings_json=Path(args.settings_json) if getattr(args, "settings_json", None) else None,
        new_mail_interval=float(_opt(args, "new_mail_interval", 60.0)),
    )
    try:
        return asyncio.run(run_demo(options))
    except KeyboardInterrupt:
        return 0


def _opt(args: Any, name: str, default: Any) -> Any:
    value = getattr(args, name, None)
    return default if value is None else value
