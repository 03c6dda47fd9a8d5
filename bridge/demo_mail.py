"""The demo tenant's mail: a small, realistic mailbox built with the stdlib ``email`` package.

Threads, an attachment, non-ASCII subjects and names, HTML alternatives, a forwarded
message, a few folders, and a shared mailbox. Deterministic for a given start time, so a
demo directory reseeded later looks the same.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

DOMAIN = "contoso.example"


@dataclass(frozen=True, slots=True)
class DemoMessage:
    folder: str  # well-known name or a display name of a demo folder
    mime: bytes
    received: datetime
    is_read: bool


def _message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    date: datetime,
    html: str | None = None,
    reply_to_id: str | None = None,
    attachment: tuple[str, str, bytes] | None = None,
    forwarded: bytes | None = None,
    msgid: str | None = None,
) -> tuple[bytes, str]:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    digest = hashlib.sha256(f"{sender}|{to}|{subject}|{date.isoformat()}".encode()).hexdigest()
    message_id = msgid or f"<{digest[:24]}@{DOMAIN}>"
    msg["Message-ID"] = message_id
    if reply_to_id:
        msg["In-Reply-To"] = reply_to_id
        msg["References"] = reply_to_id
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        filename, ctype, data = attachment
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    if forwarded is not None:
        from email import message_from_bytes

        inner = message_from_bytes(forwarded, policy=SMTP)
        msg.add_attachment(inner)
    # Fixed boundaries keep the demo reproducible (email picks random ones).
    for level, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_demo_{digest[:16]}_{level}")
    return msg.as_bytes(), message_id


def _pdf_like(seed: int, size: int = 24_000) -> bytes:
    """Bytes that look like a small PDF; content is deterministic filler."""
    body = bytes((i * 31 + seed) % 251 for i in range(size))
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + body + b"\n%%EOF\n"


def demo_mailbox(owner: str, now: datetime | None = None) -> list[DemoMessage]:
    """The demo user's mailbox: about thirty messages over the last two weeks."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    out: list[DemoMessage] = []
    people = [
        ("Megan Bowen", f"megan@{DOMAIN}"),
        ("Jürgen Müller", f"juergen@{DOMAIN}"),
        ("Zoë Ångström", f"zoe@{DOMAIN}"),
        ("山田 太郎", f"taro@{DOMAIN}"),
        ("Alex Wilber", f"alex@{DOMAIN}"),
    ]
    cycle = itertools.cycle(people)
    topics = [
        "Quarterly numbers",
        "Lunch on Friday?",
        "Réunion de projet — compte rendu",
        "Übergabe der Schlüssel",
        "Build server maintenance window",
        "Offsite agenda 🚀",
        "新しいプロジェクトについて",
        "Invoice 2026-1142",
    ]
    when = now - timedelta(days=14)
    for index, topic in enumerate(topics):
        name, address = next(cycle)
        first, first_id = _message(
            sender=f"{name} <{address}>",
            to=owner,
            subject=topic,
            text=f"Hello,\n\nA few words about {topic.lower()}.\n\nBest,\n{name}\n",
            html=f"<p>Hello,</p><p>A few words about <b>{topic}</b>.</p><p>Best,<br>{name}</p>",
            date=when,
        )
        out.append(DemoMessage("inbox", first, when, is_read=index % 3 != 0))
        when += timedelta(hours=9)
        reply, _ = _message(
            sender=owner,
            to=f"{name} <{address}>",
            subject=f"Re: {topic}",
            text=f"Thanks {name.split()[0]}, noted.\n\n> A few words about {topic.lower()}.\n",
            date=when,
            reply_to_id=first_id,
        )
        out.append(DemoMessage("sentitems", reply, when, is_read=True))
        when += timedelta(hours=7)
    invoice, _ = _message(
        sender=f"Accounts <billing@{DOMAIN}>",
        to=owner,
        subject="Your invoice (PDF attached)",
        text="Please find the invoice attached.\n",
        attachment=("invoice-2026-1142.pdf", "application/pdf", _pdf_like(7)),
        date=when,
    )
    out.append(DemoMessage("inbox", invoice, when, is_read=False))
    forwarded, _ = _message(
        sender=f"Megan Bowen <megan@{DOMAIN}>",
        to=owner,
        subject="Fwd: Your invoice (PDF attached)",
        text="FYI, forwarding this.\n",
        forwarded=invoice,
        date=when + timedelta(hours=1),
    )
    out.append(DemoMessage("inbox", forwarded, when + timedelta(hours=1), is_read=False))
    for index in range(6):
        at = now - timedelta(days=30 + index)
        old, _ = _message(
            sender=f"Newsletter <news@{DOMAIN}>",
            to=owner,
            subject=f"Monthly newsletter #{40 + index}",
            text="What happened this month.\n" * 20,
            date=at,
        )
        out.append(DemoMessage("Archive/2026", old, at, is_read=True))
    spam, _ = _message(
        sender="Prize Office <winner@lottery.invalid>",
        to=owner,
        subject="You have won!!!",
        text="Send us your bank details.\n",
        date=now - timedelta(days=2),
    )
    out.append(DemoMessage("junkemail", spam, now - timedelta(days=2), is_read=False))
    return out


def shared_mailbox(address: str, now: datetime | None = None) -> list[DemoMessage]:
    """The demo shared mailbox (support@): a handful of customer requests."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    out = []
    for index, subject in enumerate(["Order 4711 has not arrived", "Adresse geändert", "Refund"]):
        at = now - timedelta(days=3 - index)
        mime, _ = _message(
            sender=f"Customer {index + 1} <customer{index + 1}@example.net>",
            to=address,
            subject=subject,
            text=f"Hello support,\n\n{subject}.\n\nRegards\n",
            date=at,
        )
        out.append(DemoMessage("inbox", mime, at, is_read=False))
    return out


def new_mail(owner: str, counter: int, now: datetime | None = None) -> bytes:
    """One fresh message for the demo's periodic delivery (so IDLE can be seen working)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    mime, _ = _message(
        sender=f"Demo Ticker <ticker@{DOMAIN}>",
        to=owner,
        subject=f"Demo message #{counter} at {now:%H:%M:%S} UTC",
        text=f"This message was delivered by the demo tenant at {now.isoformat()}.\n",
        date=now,
    )
    return mime
