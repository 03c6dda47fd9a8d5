"""Command line for the simulator: ``python -m bridge.simulator`` (and, mounted by the
bridge's own CLI, ``graph-mail-bridge simulator``).

Owns: argument parsing, seeding a demo tenant from a YAML/JSON file or flags, printing
the values a bridge configuration needs, and running until interrupted. Must not import
anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from .faults import Faults
from .simulator import AppHandle, Simulator, TenantHandle

WELCOME = (
    "From: Graph Simulator <simulator@{domain}>\r\nTo: {address}\r\n"
    "Subject: Welcome to the Graph simulator\r\nDate: Mon, 01 Jan 2024 09:00:00 +0000\r\n"
    "Message-ID: <welcome-{n}@{domain}>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    "This mailbox lives in the Microsoft Graph simulator.\r\n"
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bridge.simulator",
        description="Run the Microsoft Graph mail simulator (HTTPS on loopback).",
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (loopback only)")
    p.add_argument("--port", type=int, default=0, help="listen port (0 = a free port)")
    p.add_argument("--state-dir", type=Path, help="keeps the CA, certificates and mail")
    p.add_argument("--no-persist", action="store_true", help="do not save mail on exit")
    p.add_argument("--seed", type=Path, help="YAML or JSON file describing tenant/app/users")
    p.add_argument("--domain", default="contoso.example", help="tenant domain when seeding")
    p.add_argument("--tenant-id", help="tenant id when seeding (default: random GUID)")
    p.add_argument("--client-id", help="app client id when seeding (default: random GUID)")
    p.add_argument("--secret", help="app client secret when seeding (default: generated)")
    p.add_argument("--user", action="append", default=[], help="mailbox UPN to create (repeatable)")
    p.add_argument("--shared", action="append", default=[], help="shared mailbox UPN (repeatable)")
    p.add_argument("--token-lifetime", type=int, default=3600, help="access token seconds")
    p.add_argument("--budget", type=int, default=10_000, help="requests per window per mailbox")
    p.add_argument("--budget-window", type=float, default=600.0, help="budget window, seconds")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent requests per mailbox")
    p.add_argument("--page-size", type=int, default=10, help="default page size")
    p.add_argument("--latency", type=float, default=0.0, help="added latency per request, s")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 503")
    p.add_argument(
        "--print-only",
        action="store_true",
        help="start, seed, print the settings and exit (for scripts)",
    )
    return p


def load_seed(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the seed must be a mapping")
    return data


def seed(sim: Simulator, spec: dict[str, Any]) -> tuple[TenantHandle, AppHandle, list[str]]:
    """Create (or find, after a restart) the tenant, app and users a spec describes."""
    tspec = spec.get("tenant") or {}
    domain = str(tspec.get("domain", "contoso.example"))
    existing = sim.world.find_tenant(tspec.get("id") or domain)
    fresh = existing is None
    tenant = (
        sim.add_tenant(domain, tspec.get("id"))
        if existing is None
        else TenantHandle(existing.id, existing.domain)
    )
    aspec = spec.get("app") or {}
    app: AppHandle | None = None
    for a in sim.world.apps.values():
        if a.tenant_id == tenant.id and (
            not aspec.get("client_id") or a.client_id == aspec["client_id"]
        ):
            app = AppHandle(a.client_id, a.secret, None)
            break
    if app is None:
        app = sim.add_app(
            tenant.id,
            roles=tuple(aspec.get("roles", ("Mail.ReadWrite", "Mail.Send", "User.Read.All"))),
            secret=aspec.get("secret"),
            client_id=aspec.get("client_id"),
        )
    users: list[str] = []
    for n, u in enumerate(spec.get("users") or []):
        upn = str(u["upn"] if isinstance(u, dict) else u)
        info = u if isinstance(u, dict) else {}
        if sim.world.find_user(upn) is None:
            sim.add_user(
                tenant.id,
                upn,
                display_name=info.get("display_name"),
                shared=bool(info.get("shared", False)),
            )
            if fresh:
                sim.deliver(upn, WELCOME.format(domain=domain, address=upn, n=n).encode())
        users.append(upn)
    for u in spec.get("users") or []:
        if isinstance(u, dict):
            for grantee in u.get("send_as", []):
                sim.grant_send_as(mailbox=u["upn"], to=grantee)
    return tenant, app, users


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.seed:
        return load_seed(args.seed)
    users: list[Any] = list(args.user) or [f"alice@{args.domain}", f"bob@{args.domain}"]
    first = users[0]
    users += [{"upn": s, "shared": True, "send_as": [first]} for s in args.shared]
    return {
        "tenant": {"domain": args.domain, "id": args.tenant_id},
        "app": {"client_id": args.client_id, "secret": args.secret},
        "users": users,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("the simulator only listens on loopback", file=sys.stderr)
        return 2
    faults = Faults(latency=args.latency, error_rate=args.error_rate)
    sim = Simulator(
        state_dir=args.state_dir,
        host=args.host,
        port=args.port,
        token_lifetime=args.token_lifetime,
        budget=args.budget,
        budget_window=args.budget_window,
        concurrency=args.concurrency,
        default_page_size=args.page_size,
        faults=faults,
        persist=args.state_dir is not None and not args.no_persist,
    )
    try:
        spec = spec_from_args(args)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"cannot read seed: {exc}", file=sys.stderr)
        return 2
    sim.start()
    try:
        tenant, app, users = seed(sim, spec)
        settings = {
            "login_url": sim.login_url,
            "graph_url": sim.graph_url,
            "ca_file": str(sim.ca_file),
            "tenant_id": tenant.id,
            "client_id": app.client_id,
            "client_secret": app.secret,
            "users": users,
            "control_url": f"{sim.base_url}/_sim",
        }
        print(json.dumps(settings, indent=2), flush=True)
        if args.print_only:
            return 0
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        while not done.wait(0.5):
            pass
        return 0
    finally:
        sim.stop()
