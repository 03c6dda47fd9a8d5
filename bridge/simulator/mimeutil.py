"""MIME in and out of the simulated store.

Owns: turning RFC 5322/MIME bytes into message fields (what Exchange extracts on
delivery, MIME create and MIME sendMail, §12.1/§13.2) and regenerating MIME from stored
fields for ``$value`` (§8: Exchange regenerates MIME; bytes may differ from what was
uploaded). Must not import anything from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.policy
import html
import re
import secrets
from email import message_from_bytes
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from typing import Any

from .errors import invalid_base64
from .model import Attachment

_B64_CHARS = re.compile(rb"^[A-Za-z0-9+/=\s]*$")


def decode_base64_mime(body: bytes) -> bytes:
    """Decode a ``text/plain`` base64 MIME body; line-wrapped base64 is accepted (§12.1)."""
    if not body.strip() or not _B64_CHARS.match(body):
        raise invalid_base64()
    compact = re.sub(rb"\s+", b"", body)
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_base64() from None
    if not raw.strip():
        raise invalid_base64()
    return raw


def _recipients(value: str | None) -> list[dict[str, Any]]:
    if not value:
        return []
    out = []
    for name, addr in getaddresses([value]):
        if addr:
            out.append({"emailAddress": {"name": name or addr, "address": addr}})
    return out


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def parse_mime(raw: bytes) -> dict[str, Any]:
    """Extract the fields Exchange shows for a MIME item.

    Returns keyword arguments for ``World.new_message`` (subject, body, recipients,
    dates, internet_message_id, attachments, headers).
    """
    msg = message_from_bytes(raw, policy=email.policy.compat32)
    fields: dict[str, Any] = {}
    fields["subject"] = _decode_header(msg.get("Subject", ""))
    from_list = _recipients(_decode_header(msg.get("From")))
    sender_list = _recipients(_decode_header(msg.get("Sender")))
    fields["from_"] = from_list[0] if from_list else None
    fields["sender"] = sender_list[0] if sender_list else fields["from_"]
    fields["to"] = _recipients(_decode_header(msg.get("To")))
    fields["cc"] = _recipients(_decode_header(msg.get("Cc")))
    fields["bcc"] = _recipients(_decode_header(msg.get("Bcc")))
    fields["reply_to"] = _recipients(_decode_header(msg.get("Reply-To")))
    mid = str(msg.get("Message-ID") or "")
    if mid:
        fields["internet_message_id"] = mid.strip()
    date = str(msg.get("Date") or "")
    if date:
        try:
            sent = parsedate_to_datetime(date)
            if sent.tzinfo is None:
                sent = sent.replace(tzinfo=dt.UTC)
            fields["sent"] = sent.astimezone(dt.UTC).replace(microsecond=0)
        except (TypeError, ValueError):
            pass
    importance = str(msg.get("Importance") or "").strip().lower()
    priority = str(msg.get("X-Priority") or "").strip()[:1]
    if importance in ("high", "low", "normal"):
        fields["importance"] = importance
    elif priority in ("1", "2"):
        fields["importance"] = "high"
    elif priority in ("4", "5"):
        fields["importance"] = "low"
    text_body: str | None = None
    html_body: str | None = None
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        # compat32 hands back email.header.Header objects for non-ASCII (RFC 2231/2047)
        # values: str() them before treating them as text.
        disposition = str(part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        ctype = part.get_content_type()
        filename = part.get_filename()
        if disposition == "attachment" or filename or not ctype.startswith("text/"):
            data = part.get_payload(decode=True)
            attachments.append(
                Attachment(
                    id=secrets.token_urlsafe(18),
                    name=_decode_header(filename or "attachment"),
                    content_type=ctype,
                    data=data if isinstance(data, bytes) else b"",
                    is_inline=disposition == "inline"
                    or (bool(str(part.get("Content-ID") or "")) and disposition != "attachment"),
                    content_id=str(part.get("Content-ID") or "").strip("<> ") or None,
                )
            )
        elif ctype == "text/html" and html_body is None:
            html_body = _text_of(part)
        elif ctype == "text/plain" and text_body is None:
            text_body = _text_of(part)
    if html_body is not None:
        fields["body_type"], fields["body"] = "html", html_body
    else:
        fields["body_type"], fields["body"] = "text", text_body or ""
    fields["attachments"] = attachments
    fields["headers"] = [{"name": k, "value": _decode_header(v)} for k, v in msg.items()]
    return fields


def _decode_header(value: Any) -> str:
    """A header as Exchange shows it: RFC 2047 decoded, raw 8-bit read as UTF-8 (RFC 6532)."""
    if value is None:
        return ""
    from email.header import Header, decode_header, make_header

    if isinstance(value, Header):
        # compat32 wraps raw 8-bit header bytes as charset "unknown-8bit".
        chunks = decode_header(value)
        value = "".join(
            chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
            for chunk, _ in chunks
        )
    text = str(value)
    try:
        return str(make_header(decode_header(text)))
    except (UnicodeDecodeError, LookupError, binascii.Error, ValueError):
        return text


def strip_bcc(raw: bytes) -> bytes:
    """Remove the Bcc header block from raw MIME without re-serializing the rest (§13.2)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    eol = b"\r\n"
    if not sep:
        head, sep, rest = raw.partition(b"\n\n")
        eol = b"\n"
    lines = head.split(eol)
    out: list[bytes] = []
    skipping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(b"bcc:")
        if not skipping:
            out.append(line)
    return eol.join(out) + sep + rest


def html_to_text(content: str) -> str:
    text = re.sub(r"(?is)<(script|style|head).*?</\1>", "", content)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    return html.unescape(text).strip()


def text_to_html(content: str) -> str:
    # What Exchange serves for a text body when HTML is asked for (the default).
    escaped = html.escape(content.replace("\r\n", "\n")).replace("\n", "<br>\r\n")
    return (
        '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        "\r\n</head>\r\n<body>\r\n<div>" + escaped + "</div>\r\n</body>\r\n</html>\r\n"
    )


def _addr_header(recipients: list[dict[str, Any]]) -> str:
    parts = []
    for r in recipients:
        ea = r.get("emailAddress") or {}
        addr = _one_line(ea.get("address") or "")
        name = _one_line(ea.get("name") or "")
        if not addr:
            continue
        if name and name != addr:
            try:
                parts.append(str(Address(display_name=name, addr_spec=addr)))
            except (ValueError, IndexError, HeaderParseError):
                # Not a parseable addr-spec: keep what the client gave, quoted.
                parts.append(f'"{name}" <{addr}>')
        else:
            parts.append(addr)
    return ", ".join(parts)


def _one_line(text: str) -> str:
    # Header values never carry raw line breaks (no header injection through JSON).
    return " ".join(text.splitlines())


def generate_mime(
    *,
    subject: str,
    body_type: str,
    body: str,
    from_: dict[str, Any] | None,
    sender: dict[str, Any] | None,
    to: list[dict[str, Any]],
    cc: list[dict[str, Any]],
    bcc: list[dict[str, Any]],
    reply_to: list[dict[str, Any]],
    sent: dt.datetime | None,
    internet_message_id: str,
    importance: str,
    attachments: list[Attachment],
    headers: list[dict[str, str]] | None = None,
    include_bcc: bool = True,
) -> bytes:
    """Build MIME the way Exchange would regenerate it (CRLF, Exchange headers)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    if from_:
        msg["From"] = _addr_header([from_])
    if sender and from_ and sender != from_:
        msg["Sender"] = _addr_header([sender])
    if to:
        msg["To"] = _addr_header(to)
    if cc:
        msg["Cc"] = _addr_header(cc)
    if bcc and include_bcc:
        msg["Bcc"] = _addr_header(bcc)
    if reply_to:
        msg["Reply-To"] = _addr_header(reply_to)
    msg["Subject"] = _one_line(subject)
    msg["Date"] = format_datetime((sent or dt.datetime.now(dt.UTC)).astimezone(dt.UTC))
    msg["Message-ID"] = _one_line(internet_message_id)
    if importance and importance != "normal":
        msg["Importance"] = importance
    for h in headers or []:
        if h.get("name", "").lower().startswith("x-"):
            msg[_one_line(h["name"])] = _one_line(h.get("value", ""))
    # Exchange marks regenerated content; clients must not expect their own bytes back (§8).
    msg["X-MS-Has-Attach"] = "yes" if any(not a.is_inline for a in attachments) else ""
    msg["X-MS-Exchange-Organization-SCL"] = "-1"
    msg["X-MS-TNEF-Correlator"] = ""
    if body_type == "html":
        msg.set_content(body, subtype="html", charset="utf-8")
    else:
        msg.set_content(body, charset="utf-8")
    for a in attachments:
        maintype, _, subtype = a.content_type.partition("/")
        msg.add_attachment(
            a.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=a.name,
            disposition="inline" if a.is_inline else "attachment",
            cid=f"<{a.content_id}>" if a.content_id else None,
        )
    return msg.as_bytes()


def addresses_of(recipients: list[dict[str, Any]]) -> list[str]:
    return [
        r["emailAddress"]["address"]
        for r in recipients
        if isinstance(r, dict) and (r.get("emailAddress") or {}).get("address")
    ]
