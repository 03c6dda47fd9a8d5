"""``graph-mail-bridge check``: everything an operator must get right, one sentence each.

Config (loading already proved it), encryption of secrets at rest, the TLS certificate's
expiry, each app's token, roles and client-secret age, every account's mailbox, and —
when webhooks are configured — whether the public URL really reaches this bridge (the
same validation round-trip Graph performs before it creates a subscription).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

from bridge.config import Config
from bridge.graph.check import Finding, diagnose
from bridge.store import Store
from bridge.store import accounts as acct

#: Entra client secrets live at most 24 months; warn well before a typical expiry.
SECRET_AGE_WARNING_DAYS = 300
CERT_EXPIRY_WARNING_DAYS = 21


@dataclass(frozen=True, slots=True)
class Report:
    findings: list[Finding]

    @property
    def problems(self) -> int:
        return sum(not f.ok for f in self.findings)


def tls_finding(config: Config, now: datetime) -> Finding | None:
    if not config.tls.enabled or config.tls.cert_file is None:
        return None
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(Path(config.tls.cert_file).read_bytes())
    except (OSError, ValueError) as exc:
        return Finding(False, "tls", f"Cannot read the certificate {config.tls.cert_file}: {exc}.")
    expires = cert.not_valid_after_utc
    days = (expires - now).days
    if expires <= now:
        return Finding(
            False,
            "tls",
            f"The TLS certificate expired on {expires:%Y-%m-%d}; "
            "clients will refuse to connect. Fix: install a renewed certificate.",
        )
    if days < CERT_EXPIRY_WARNING_DAYS:
        return Finding(
            False,
            "tls",
            f"The TLS certificate expires in {days} days ({expires:%Y-%m-%d}). Fix: renew it now.",
        )
    return Finding(True, "tls", f"The TLS certificate is valid until {expires:%Y-%m-%d}.")


def secret_age_finding(app: acct.OAuth2App, now: datetime) -> Finding | None:
    if not app.has_client_secret or not app.secret_updated_at:
        return None
    stored = datetime.fromisoformat(app.secret_updated_at.replace("Z", "+00:00"))
    days = (now - stored).days
    if days >= SECRET_AGE_WARNING_DAYS:
        return Finding(
            False,
            "client secret",
            f"The client secret of app {app.id} was stored {days} days ago; Entra secrets "
            "expire after at most 24 months. Fix: create a new secret in Entra and store it "
            "with `graph-mail-bridge app update`.",
        )
    return Finding(True, "client secret", f"The client secret was stored {days} days ago.")


async def webhook_finding(config: Config) -> Finding | None:
    """POST a validation token to the public notification URL, as Graph will, and check
    that this bridge echoes it. If the bridge is not running, a temporary responder on
    the HTTP listener's address answers instead, so the proxy path is what is tested."""
    public = config.sync.webhook_public_url
    if not public:
        return None
    from aiohttp import web

    from bridge.push import NOTIFICATION_PATH

    token = f"Validation: graph-mail-bridge check {secrets.token_hex(8)}"
    url = f"{public.rstrip('/')}{NOTIFICATION_PATH}?validationToken={quote(token)}"
    runner: web.AppRunner | None = None
    if not _listening(config.http.host, config.http.port):

        async def echo(request: web.Request) -> web.Response:
            return web.Response(text=request.query.get("validationToken", ""))

        app = web.Application()
        app.router.add_post(NOTIFICATION_PATH, echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, config.http.host, config.http.port).start()
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.post(url, headers={"Content-Type": "text/plain"})
    except httpx.HTTPError as exc:
        return Finding(
            False,
            "webhooks",
            f"{public}{NOTIFICATION_PATH} cannot be reached ({type(exc).__name__}); Graph will "
            "not be able to deliver notifications and the bridge falls back to polling. Fix: "
            f"route {public} to http://{config.http.host}:{config.http.port}/ through the "
            "reverse proxy.",
        )
    finally:
        if runner is not None:
            await runner.cleanup()
    if response.status_code != 200 or response.text != token:
        return Finding(
            False,
            "webhooks",
            f"{public}{NOTIFICATION_PATH} answered {response.status_code} without echoing the "
            "validation token, so Graph would refuse the subscription. Fix: make the reverse "
            f"proxy forward {NOTIFICATION_PATH} (with its query string) to the bridge.",
        )
    if not public.startswith("https://"):
        return Finding(
            False,
            "webhooks",
            f"{public} answers, but Graph only delivers to https:// URLs. Fix: terminate TLS "
            "at the reverse proxy and configure the https:// address.",
        )
    return Finding(True, "webhooks", f"{public} reaches this bridge (validation round-trip).")


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


async def run_checks(config: Config, *, now: datetime | None = None) -> Report:
    from bridge.app import DB_NAME, graph_app_for
    from bridge.config import secret_box

    now = now or datetime.now(UTC)
    findings = [Finding(True, "config", f"{config.source or 'defaults'} is valid.")]
    findings += [Finding(False, "config", warning) for warning in config.warnings]
    if config.secrets.encryption_key is None:
        findings.append(
            Finding(
                False,
                "secrets",
                "secrets.encryption_key is not set, so client secrets are stored unencrypted "
                "in the database. Fix: set secrets.encryption_key_file to a file holding 32 "
                "random bytes in base64.",
            )
        )
    tls = tls_finding(config, now)
    if tls is not None:
        findings.append(tls)
    database = config.state_dir / DB_NAME
    if not database.exists():
        findings.append(
            Finding(
                False,
                "accounts",
                f"There is no database at {database} yet. Fix: add an app and an account "
                "(graph-mail-bridge app add …, account add …).",
            )
        )
        return Report(findings)
    store = await Store.open(database)
    try:
        apps = await store.read(acct.list_apps)
        if not apps:
            findings.append(
                Finding(
                    False, "apps", "No app registration is stored. Fix: graph-mail-bridge app add …"
                )
            )
        for app in apps:
            age = secret_age_finding(app, now)
            if age is not None:
                findings.append(age)
            users = [a.auth_user for a in await acct.fetch_accounts(store, app.id)]
            creds = await acct.fetch_app_credentials(store, app.id, secret_box(config))
            graph = graph_app_for(config, creds)
            try:
                findings += [
                    Finding(f.ok, f"app {app.id}: {f.subject}", f.sentence)
                    for f in await diagnose(graph, users)
                ]
            finally:
                await graph.aclose()
    finally:
        await store.close()
    webhook = await webhook_finding(config)
    if webhook is not None:
        findings.append(webhook)
    return Report(findings)


def print_report(report: Report) -> None:
    for finding in report.findings:
        mark = "ok  " if finding.ok else "FAIL"
        print(f"{mark} {finding.subject}: {finding.sentence}")
    print(f"{report.problems} problem(s) found." if report.problems else "Everything looks right.")


def check(config: Config) -> int:
    report = asyncio.run(run_checks(config))
    print_report(report)
    return 1 if report.problems else 0
