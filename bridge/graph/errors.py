"""Graph and Entra ID errors → the ``bridge.backend.remote`` exception tree, in words.

Owns: parsing Graph's error JSON (``innerError`` matched case-insensitively, facts §3),
reading an MSAL error dict (facts §1.3), decoding the roles of an access token without
verifying it, and the one-sentence explanations a tenant admin can act on. Every message
built here is safe to log: no secret, no token, no message content ever goes into one.
Imports: the standard library and ``bridge.backend.remote`` only.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.backend.remote import (
    DeltaTokenExpired,
    OutcomeUnknown,
    RemoteAuthError,
    RemoteConflict,
    RemoteError,
    RemoteNotFound,
    RemotePermissionError,
    RemoteRejected,
    RemoteUnavailable,
)

# The application permissions the bridge needs (facts §5, §13).
MAIL_READWRITE = "Mail.ReadWrite"
MAIL_SEND = "Mail.Send"
USER_READ_ALL = "User.Read.All"
REQUIRED_ROLES = (MAIL_READWRITE, MAIL_SEND, USER_READ_ALL)

CONSENT_HINT = (
    "add them under Entra > App registrations > API permissions (Microsoft Graph, "
    "application permissions) and grant admin consent"
)


@dataclass(frozen=True, slots=True)
class GraphErrorInfo:
    """The useful parts of ``{"error": {...}}``."""

    code: str | None
    message: str
    inner_code: str | None = None
    request_id: str | None = None

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c for c in (self.code, self.inner_code) if c)

    def has_code(self, *names: str) -> bool:
        # Facts §3: Outlook says ErrorItemNotFound, Graph itemNotFound; compare loosely.
        wanted = {n.lower() for n in names}
        return any(c.lower() in wanted for c in self.codes)


def _ci_get(mapping: Mapping[str, Any], key: str) -> Any:
    lowered = key.lower()
    for k, v in mapping.items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return None


def parse_graph_error(body: bytes | str | Mapping[str, Any] | None) -> GraphErrorInfo:
    """Parse a Graph error body; tolerate HTML, empty bodies and odd shapes."""
    data: Any = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
    if not isinstance(data, Mapping):
        return GraphErrorInfo(None, "")
    err = _ci_get(data, "error")
    if not isinstance(err, Mapping):
        return GraphErrorInfo(None, "")
    raw_code, raw_message = err.get("code"), err.get("message")
    code = raw_code if isinstance(raw_code, str) else None
    message = raw_message if isinstance(raw_message, str) else ""
    inner_code = None
    request_id = None
    inner = _ci_get(err, "innerError")
    depth = 0
    while isinstance(inner, Mapping) and depth < 5:  # innerError may nest (facts §3)
        if isinstance(inner.get("code"), str) and not inner_code:
            inner_code = inner["code"]
        rid = _ci_get(inner, "request-id") or _ci_get(inner, "requestId")
        if isinstance(rid, str) and not request_id:
            request_id = rid
        inner = _ci_get(inner, "innerError")
        depth += 1
    return GraphErrorInfo(code, message, inner_code, request_id)


def token_claims(token: str) -> dict[str, Any]:
    """The JWT payload, decoded WITHOUT signature verification (only to read ``roles``).

    Graph validates the token; we only look at what it says to explain a 403.
    """
    parts = token.split(".")
    if len(parts) < 2:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):
        return {}
    return data if isinstance(data, dict) else {}


def token_roles(token: str) -> frozenset[str]:
    roles = token_claims(token).get("roles")
    if not isinstance(roles, list):
        return frozenset()
    return frozenset(r for r in roles if isinstance(r, str))


def missing_roles(roles: Iterable[str], needed: Iterable[str] = REQUIRED_ROLES) -> list[str]:
    """Needed roles absent from ``roles``. ``Mail.ReadWrite`` also covers reading."""
    have = {r.lower() for r in roles}
    return [r for r in needed if r.lower() not in have]


def permission_sentence(roles: frozenset[str], needed: Iterable[str]) -> str | None:
    """Why a 403 happened, if the token explains it; None when the roles look fine."""
    if not roles:
        return (
            "The app's token carries no application permissions at all: admin consent has "
            f"not been granted; {CONSENT_HINT} ({', '.join(REQUIRED_ROLES)})."
        )
    missing = missing_roles(roles, needed)
    if missing:
        return f"The app lacks the application permission {', '.join(missing)}; {CONSENT_HINT}."
    return None


# --- Entra ID (AADSTS) ------------------------------------------------------------------

_AADSTS = re.compile(r"AADSTS(\d+)")


def _first_line(text: str) -> str:
    # Facts §1.3: descriptions end with "\r\nTrace ID: ...". Keep the first line only.
    return text.splitlines()[0].strip() if text else ""


def aadsts_codes(result: Mapping[str, Any]) -> list[int]:
    codes = [c for c in result.get("error_codes") or [] if isinstance(c, int)]
    if not codes:
        codes = [int(m) for m in _AADSTS.findall(str(result.get("error_description", "")))]
    return codes


def auth_error_sentence(
    codes: Iterable[int], description: str, *, tenant_id: str, client_id: str, cloud: str
) -> str:
    """One sentence for a failed token request (facts §1.3)."""
    code_set = set(codes)
    if 7000215 in code_set:
        return (
            f"Entra ID rejected the client secret of app {client_id} (AADSTS7000215): "
            "configure the secret's Value, not its Secret ID, or create a new secret."
        )
    if 7000222 in code_set:
        return (
            f"The client secret of app {client_id} has expired (AADSTS7000222): create a new "
            "one in Entra > App registrations > Certificates & secrets and update the bridge "
            "configuration."
        )
    if 700016 in code_set:
        return (
            f"App {client_id} is not known in tenant {tenant_id} (AADSTS700016): check the "
            "client id and the tenant id, and that an administrator of that tenant has "
            "consented to the app."
        )
    if 90002 in code_set:
        return (
            f"Tenant {tenant_id} does not exist in the {cloud} cloud (AADSTS90002): check the "
            "tenant id (a GUID or verified domain) and the configured cloud."
        )
    if code_set & {700027, 700024, 7000274, 700021, 700023, 700212}:
        return (
            f"Entra ID rejected the certificate credential of app {client_id} "
            f"(AADSTS{min(code_set)}): upload the certificate to the app registration "
            "and check the configured thumbprint."
        )
    first = re.sub(r"^AADSTS\d+:\s*", "", _first_line(description)).rstrip(". ")
    label = f"AADSTS{min(code_set)}" if code_set else "no AADSTS code"
    return f"Entra ID refused a token for app {client_id} ({label}): {first or 'no details'}."


def auth_error_from_msal(
    result: Mapping[str, Any], *, tenant_id: str, client_id: str, cloud: str
) -> RemoteError:
    """Map an MSAL error dict to an exception; server trouble is transient."""
    codes = aadsts_codes(result)
    error = str(result.get("error", ""))
    description = str(result.get("error_description", ""))
    sentence = auth_error_sentence(
        codes, description, tenant_id=tenant_id, client_id=client_id, cloud=cloud
    )
    if error in {"temporarily_unavailable", "server_error"}:
        return RemoteUnavailable(sentence, code=error)
    return RemoteAuthError(sentence, code=f"AADSTS{codes[0]}" if codes else error or None)


# --- Graph responses ----------------------------------------------------------------------


def throttle_sentence(retry_after: float | None) -> str:
    wait = f"{retry_after:g} s" if retry_after is not None else "a back-off delay"
    return f"Graph is throttling this mailbox; the bridge retries after {wait}."


def network_sentence(host: str, exc: BaseException) -> str:
    return (
        f"Cannot reach {host} ({type(exc).__name__}); check the proxy (HTTPS_PROXY), DNS and "
        "the firewall."
    )


def is_tls_failure(exc: BaseException) -> bool:
    """Did certificate verification fail somewhere in this exception's chain?"""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(cur):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def tls_sentence(host: str) -> str:
    return (
        f"The TLS certificate of {host} is not trusted; check ca_file and any TLS-inspecting proxy."
    )


def outcome_unknown_sentence(what: str, host: str) -> str:
    return (
        f"The connection to {host} broke after the {what} request was sent, so it may or may "
        "not have taken effect; check before repeating it."
    )


def graph_error(
    status: int,
    info: GraphErrorInfo,
    *,
    mailbox: str | None,
    retry_after: float | None = None,
    roles: frozenset[str] | None = None,
    needs: Iterable[str] = (MAIL_READWRITE,),
    request_id: str | None = None,
) -> RemoteError:
    """Map a Graph error answer to the remote exception tree with an actionable sentence.

    ``roles`` are the token's roles (to explain a 403); ``needs`` the permissions the call
    requires.
    """
    who = f"mailbox {mailbox}" if mailbox else "the directory"
    kw: dict[str, Any] = {
        "code": info.inner_code if info.code in (None, "") else info.code,
        "status": status,
        "request_id": request_id or info.request_id,
    }
    detail = f"{info.code}: {info.message}" if info.code else (info.message or f"HTTP {status}")
    message_lower = info.message.lower()

    if status == 429 or status in (502, 503, 504) or status >= 500:
        if status == 429:
            sentence = throttle_sentence(retry_after)
        else:
            sentence = f"Graph is temporarily unavailable for {who} (HTTP {status}); retry later."
        return RemoteUnavailable(sentence, retry_after=retry_after, **kw)
    if status == 401:
        return RemoteAuthError(
            "Graph rejected the app's access token even after renewing it "
            f"({detail}); check that the tenant and cloud match the app registration.",
            **kw,
        )
    if status == 403:
        if "odata is disabled" in message_lower:
            return RemotePermissionError(
                f"An Exchange application access policy blocks the app from {who} "
                "('Access to OData is disabled'); add the mailbox to the policy's group or "
                "change the policy (changes take up to 30 minutes).",
                **kw,
            )
        if info.has_code("ErrorSendAsDenied"):
            return RemotePermissionError(
                f"{who.capitalize()} has no Send As or Send on Behalf right for the From "
                "address (ErrorSendAsDenied); grant it in Exchange or send from the mailbox's "
                "own address.",
                **kw,
            )
        explained = permission_sentence(roles, needs) if roles is not None else None
        if explained:
            return RemotePermissionError(explained, **kw)
        return RemotePermissionError(
            f"Graph denied access to {who} ({detail}); check the app's permissions and any "
            "Exchange application access policy or RBAC for Applications scope.",
            **kw,
        )
    if status == 404:
        if info.has_code("MailboxNotEnabledForRESTAPI"):
            return RemoteNotFound(
                f"{who.capitalize()} cannot be used through Graph "
                "(MailboxNotEnabledForRESTAPI): it is inactive, soft-deleted, unlicensed or "
                "hosted on-premises; license it or move it to Exchange Online.",
                **kw,
            )
        if info.has_code("Request_ResourceNotFound", "ErrorInvalidUser"):
            return RemoteNotFound(
                f"The user {mailbox or ''} does not exist in this tenant ({info.code}); check "
                "the configured user principal name, address or object id.".replace("  ", " "),
                **kw,
            )
        if info.has_code("ResourceNotFound"):
            return RemoteNotFound(
                f"Graph found no Exchange Online mailbox for {who} (ResourceNotFound); check "
                "that the user has a mailbox.",
                **kw,
            )
        if info.has_code("ErrorSyncFolderNotFound"):
            return RemoteNotFound(f"The folder no longer exists in {who}.", **kw)
        return RemoteNotFound(f"The item no longer exists in {who} ({detail}).", **kw)
    if status == 409:
        return RemoteConflict(f"Graph reports a conflict in {who} ({detail}).", **kw)
    if status == 410:
        return DeltaTokenExpired(
            f"The delta token for a folder of {who} expired ({detail}); a full resync of "
            "that folder is needed.",
            **kw,
        )
    if status == 413 or info.has_code("ErrorMessageSizeExceeded"):
        return RemoteRejected(f"Graph refused the message as too large for {who} ({detail}).", **kw)
    if status == 400 and info.has_code("ErrorMimeContentInvalidBase64String"):
        return RemoteRejected("Graph could not read the message's MIME content.", **kw)
    if status == 507 or info.has_code("ErrorQuotaExceeded"):
        return RemoteRejected(f"{who.capitalize()} is full ({detail}).", **kw)
    return RemoteRejected(f"Graph refused the request for {who} ({detail}).", **kw)


def outcome_unknown(what: str, host: str, **kw: Any) -> OutcomeUnknown:
    return OutcomeUnknown(outcome_unknown_sentence(what, host), **kw)
