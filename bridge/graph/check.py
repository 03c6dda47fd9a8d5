"""``graph-mail-bridge check``: is the app registration ready for the bridge?

Owns ``diagnose``: acquire a token, report which of the needed application permissions
the token carries, resolve each configured mailbox and list its well-known folders.
Each result is a ``Finding`` with one sentence an admin can act on; nothing here raises
for a Graph problem. Imports: the sibling modules of ``bridge.graph`` and the stdlib.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.backend.remote import RemoteError
from bridge.graph.client import GraphApp
from bridge.graph.errors import CONSENT_HINT, REQUIRED_ROLES, missing_roles
from bridge.graph.model import WELL_KNOWN


@dataclass(frozen=True, slots=True)
class Finding:
    ok: bool
    subject: str  # "token", "permissions", or the configured user
    sentence: str


async def diagnose(app: GraphApp, users: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    client = app.credentials.client_id
    try:
        roles = await app.token_roles()
    except RemoteError as exc:
        return [Finding(False, "token", str(exc))]
    findings.append(
        Finding(
            True,
            "token",
            f"App {client} obtained a token from {app.cloud.login_url} "
            f"({app.credentials.kind} credential).",
        )
    )
    missing = missing_roles(roles)
    present = sorted(r for r in roles if r in REQUIRED_ROLES)
    if not roles:
        findings.append(
            Finding(
                False,
                "permissions",
                "The token carries no application permissions: admin consent has not been "
                f"granted; {CONSENT_HINT} ({', '.join(REQUIRED_ROLES)}).",
            )
        )
    elif missing:
        findings.append(
            Finding(
                False,
                "permissions",
                f"The app has {', '.join(present) or 'none of the needed permissions'} but "
                f"lacks {', '.join(missing)}; {CONSENT_HINT}.",
            )
        )
    else:
        findings.append(Finding(True, "permissions", f"The app has {', '.join(REQUIRED_ROLES)}."))
    for user in users:
        try:
            mailbox = await app.resolve_mailbox(user)
            folders = await app.remote(mailbox).well_known_folders()
        except RemoteError as exc:
            findings.append(Finding(False, user, str(exc)))
            continue
        found = [name for name in WELL_KNOWN if name in folders]
        findings.append(
            Finding(
                True,
                user,
                f"Mailbox {mailbox.user_principal_name} ({mailbox.id}) is reachable; "
                f"well-known folders: {', '.join(found) or 'none'}.",
            )
        )
    return findings
